"""Date/Time through the real Asterisk, in each language the product offers: the caller
hears the weekday, the day and the month (and the time), from the language's own
recordings, and Asterisk knows the language's rules (it warns for each number said in a
language it does not know: the rig fails on that)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.asterisk.rig import Rig, steps_text
from xvbd.engine.languages import asterisk_language


def _played(rig: Rig, channel: str) -> list[tuple[str, str]]:
    """(file, language) of every sound Asterisk played on ``channel``."""
    found = []
    for line in rig.asterisk.full_log().splitlines():
        if f"<{channel}>" in line:
            match = re.search(r"Playing '([^']+)' .*\(language '([^']+)'\)", line)
            if match:
                found.append((match[1], match[2]))
    return found


@pytest.mark.parametrize("language", ["xvb.EN-Female", "xvb.RU-Female"])
def test_the_date_and_time_are_said(rig: Rig, language: str) -> None:
    rig.start(before=lambda r: r.query("UPDATE users SET language = ? WHERE id = 1",
                                       language))
    call = rig.call("100")
    call.answer_prompt("STREAM FILE demo-instruct", "2")
    call.wait_command("SAY DATETIME")
    now = datetime.now(ZoneInfo("Europe/Moscow"))  # the demo tenant's time zone
    call.wait_command("STREAM FILE demo-instruct")  # said, and back in the menu
    call.hang_up()
    call.wait_gone()
    say = next(s for s in call.steps() if s.command.startswith("SAY DATETIME"))
    assert say.seconds >= 2.5, steps_text(call)  # something was said
    assert " Europe/Moscow" in say.command and '""  ' not in say.command, say.command
    said = [name for name, lang in _played(rig, call.line())
            if name.startswith("digits/") and lang == asterisk_language(language)]
    weekday = f"digits/day-{now.isoweekday() % 7}.gsm"
    month = f"digits/mon-{now.month - 1}.gsm"
    assert weekday in said and month in said, (said, steps_text(call))
    assert len(said) >= 6, said  # weekday, month, day, and the time's numbers
