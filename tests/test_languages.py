"""The language Asterisk is told for a language pack (``xvbd.engine.languages``)."""

from __future__ import annotations

import pytest

from xvbd.engine.languages import asterisk_language, language_code


@pytest.mark.parametrize(("pack", "told", "code"), [
    ("xvb.EN-Female", "en_xvb.EN-Female", "en"),   # the seed's packs: Asterisk's rules
    ("xvb.RU-Female", "ru_xvb.RU-Female", "ru"),
    ("xvb.de", "de_xvb.de", "de"),
    ("ru", "ru", "ru"),                            # an Asterisk language is kept
    ("en_GB", "en_GB", "en"),
    ("pt_BR_female", "pt_BR_female", "pt"),
    ("Klingon", "Klingon", ""),                    # no code: told as it is
])
def test_a_pack_is_told_with_its_language_first(pack: str, told: str, code: str) -> None:
    assert asterisk_language(pack) == told
    assert language_code(pack) == code
