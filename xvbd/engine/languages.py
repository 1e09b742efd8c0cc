"""Language packs (``xvb.EN-Female``, ``xvb.RU-Female`` …) and the language Asterisk is told.

Asterisk reads a channel's language twice: ``main/say.c`` picks its rules for numbers,
dates and ordinals by the first two letters (and logs a WARNING for each number said in a
language it does not know), and ``main/file.c`` finds a sound in ``sounds/<language>/``,
then in that name cut at its last ``_`` (``en_GB`` → ``en``), then in the default.  A pack's
name is the operator's (the seed's ``xvb.EN-Female``) and starts with no language code, so
xvbd tells Asterisk ``en_xvb.EN-Female``: English rules, the pack's own recordings when
``sounds/en_xvb.EN-Female/`` holds them, Asterisk's ``sounds/en/`` core prompts otherwise.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: An Asterisk language already (``en``, ``ru``, ``en_GB``, ``pt_BR_female``).
_ASTERISK = re.compile(r"[a-z]{2}(_[A-Za-z0-9.-]+)*")
#: The code inside a pack's name: ``xvb.EN-Female`` -> EN.
_PACK_CODE = re.compile(r"(?:^|[.])([A-Za-z]{2})(?:[-_]|$)")


@lru_cache(maxsize=256)
def language_code(pack: str) -> str:
    """The two-letter code of a pack (``xvb.RU-Female`` → ``ru``); '' when it names none."""
    if _ASTERISK.fullmatch(pack):
        return pack[:2]
    match = _PACK_CODE.search(pack.rsplit(".", 1)[-1] if "." in pack else pack)
    return match[1].lower() if match else ""


@lru_cache(maxsize=256)
def asterisk_language(pack: str) -> str:
    """What ``CHANNEL(language)`` is set to for ``pack`` (see the module's text)."""
    if _ASTERISK.fullmatch(pack):
        return pack
    code = language_code(pack)
    return f"{code}_{pack}" if code else pack
