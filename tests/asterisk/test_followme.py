"""FollowMe through the real Asterisk: the demo tenant's key 3 rings its two phones through
the shipped dialout context (``PJSIP/…@gateway``, the header ``XVB-AC`` added), one after
another; an answer bridges the caller, nobody answering leads to the voicemail."""

from __future__ import annotations

import time

from tests.asterisk.caller import loud_seconds
from tests.asterisk.rig import Rig, steps_text

PHONE_A, PHONE_B = "79001234567", "79007654321"


def test_the_second_phone_answers_and_hears_the_caller(rig: Rig) -> None:
    rig.start()
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "answer")
    mark = rig.ami.seen()
    call = rig.call("100")  # the private DID: straight to the menu
    call.answer_prompt("STREAM FILE demo-instruct", "3")
    rang_a = rig.wait_phone(PHONE_A, after=mark)
    assert rang_a["AC"] == "10001", rang_a  # the gateway knows the tenant
    rig.wait_phone(PHONE_B, "XvbtPhoneUp", after=mark)
    time.sleep(0.5)
    call.say("demo-thanks")  # the caller talks to the one who answered
    call.hang_up()
    call.wait_gone()
    heard = sorted(rig.phones_dir.glob(f"phone-{PHONE_B}-*-heard.wav"))
    for _ in range(50):
        if heard and heard[0].stat().st_size > 44:
            break
        time.sleep(0.1)
        heard = sorted(rig.phones_dir.glob(f"phone-{PHONE_B}-*-heard.wav"))
    assert heard, list(rig.phones_dir.iterdir())
    assert loud_seconds(heard[0]) >= 2.0, "the phone heard the caller speak"
    dials = [c for c in call.commands() if c.startswith("EXEC Dial")]
    assert len(dials) == 2, steps_text(call)
    assert f"Local/{PHONE_A}@xvb-dialout-default" in dials[0], dials
    assert f"Local/{PHONE_B}@xvb-dialout-default" in dials[1], dials
    line = rig.wait_cdr("TYPE=FollowMe")[0]
    # Every phone tried, in order, the answered one too.
    assert f"ATTEMPTS={PHONE_A}:BUSY:0 {PHONE_B}:ANSWER:" in line, line


def test_nobody_answers_and_the_caller_leaves_a_message(rig: Rig) -> None:
    rig.start()
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "fail")
    call = rig.call("100")
    call.answer_prompt("STREAM FILE demo-instruct", "3")
    call.wait_command("STREAM FILE vm-nobodyavail")
    call.wait_command("RECORD FILE", timeout=20)
    time.sleep(0.5)
    call.say("demo-thanks")
    call.press("#")
    call.wait_command("STREAM FILE vm-msgsaved")
    call.hang_up()
    call.wait_gone()
    rows = rig.query("SELECT duration FROM messages")
    assert len(rows) == 1 and rows[0][0] >= 5, (rows, steps_text(call))
    statuses = [c for c in call.wire() if c[0].startswith("GET VARIABLE DIALSTATUS")]
    assert [r for _, r in statuses] == ["200 result=1 (BUSY)", "200 result=1 (CONGESTION)"], \
        steps_text(call)
