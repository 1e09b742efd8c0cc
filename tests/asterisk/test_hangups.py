"""The caller hangs up during every kind of AGI command, on the real Asterisk: each call
leaves exactly one CDR summary, xvbd sends nothing after Asterisk's HANGUP but what a dead
channel takes (and the one CHANNEL STATUS that tells a hang-up from a missing file), and
neither Asterisk nor xvbd logs a warning (the rig checks both logs)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.asterisk.caller import Call
from tests.asterisk.rig import Rig, steps_text

DEAD_OK = ("SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "NOOP",
           "CHANNEL STATUS")
MAIN, MORE = "STREAM FILE demo-instruct", "STREAM FILE demo-moreinfo"

#: (what the caller leaves in, how to get there): the number called and the keys.
Scenario = tuple[str, str, Callable[[Call], None]]


def _keys(*steps: tuple[str, str]) -> Callable[[Call], None]:
    def go(call: Call) -> None:
        for command, keys in steps:
            call.answer_prompt(command, keys)
    return go


SCENARIOS: list[Scenario] = [
    ("GET DATA agent-user", "613", _keys()),
    ("GET DATA agent-pass", "613", _keys(("GET DATA agent-user", "10001#"))),
    (MAIN, "100", _keys()),
    ("WAIT FOR DIGIT", "100", _keys((MAIN, "6"))),                  # voting
    ("RECORD FILE", "100", _keys((MAIN, "1"))),                      # voicemail
    ("EXEC Dial", "100", _keys((MAIN, "3"))),                        # follow-me, ringing
    ('EXEC Wait "2"', "100", _keys((MAIN, "9"), (MORE, "2"))),       # pause
    ("EXEC Dial \"Local/1@xvb-conf-default", "100", _keys((MAIN, "0"))),  # conference
    ("GET DATA", "100", _keys((MAIN, "9"), (MORE, "8"))),            # dtmf2email
]


def test_hang_up_during_every_kind_of_command(rig: Rig) -> None:
    rig.start()
    for left_in, number, reach in SCENARIOS:
        summaries = sum(", TYPE=XVB," in line for line in rig.cdr_lines())
        call = rig.call(number, caller_id=f"7916{len(rig.calls):07d}")
        reach(call)
        call.wait_command(left_in)
        time.sleep(0.7)  # in the middle of it
        call.hang_up()
        call.wait_gone()
        deadline = time.monotonic() + 10
        while (sum(", TYPE=XVB," in line for line in rig.cdr_lines()) == summaries
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert sum(", TYPE=XVB," in line for line in rig.cdr_lines()) == summaries + 1, \
            (left_in, steps_text(call))
        wire = call.wire()
        hung = next((i for i, (_, reply) in enumerate(wire) if reply == "HANGUP"), None)
        later = [c for c, _ in wire[hung + 1:]] if hung is not None else []
        # The reply after which HANGUP came is that of the command the caller left in.
        after = [c for c in later if not c.upper().startswith(DEAD_OK)]
        assert after == [], (left_in, after, steps_text(call))
    time.sleep(1)
    assert rig.server is not None
    _, seconds = rig.server.terminate(timeout=15)
    assert seconds < 5, f"xvbd took {seconds:.1f} s to stop: a call was left open"
