"""The ways into xvbd through the real Asterisk: the public number 613 (AccessCode, then
PIN: right, wrong, throttled; a locked tenant), the private DID, and what the caller hears
on each."""

from __future__ import annotations

from tests.asterisk.rig import Rig, steps_text


def test_the_public_number_asks_the_code_then_the_pin(rig: Rig) -> None:
    rig.start()
    call = rig.call("613")
    call.answer_prompt("GET DATA agent-user", "10001#")
    call.answer_prompt("GET DATA agent-pass", "911#")
    call.wait_command("STREAM FILE demo-instruct")
    call.hang_up()
    call.wait_gone()
    wire = dict(call.wire())
    assert wire['SET VARIABLE CHANNEL(language) "en_xvb.EN-Female"'] == "200 result=1"
    assert wire["GET DATA agent-user 9000 16"] == "200 result=10001"
    assert wire["GET DATA agent-pass 9000 16"] == "200 result=911"
    assert wire['SET VARIABLE __XVB_AC "10001"'] == "200 result=1"
    summary = rig.wait_cdr("TYPE=XVB")[0]
    assert "ACCESS_CODE=10001" in summary and "CALLED_ID=613" in summary, summary
    assert "SUBSCR_ID=1" in summary and "DATA=DTMF=10001" in summary, summary
    assert "xxx" in summary, "the PIN is never written"


def test_a_wrong_pin_is_asked_again_and_three_end_the_call(rig: Rig) -> None:
    rig.start()
    call = rig.call("613")
    call.answer_prompt("GET DATA agent-user", "10001#")
    for _ in range(3):
        call.answer_prompt("GET DATA", "123#")
    call.wait_command("STREAM FILE vm-goodbye")
    call.wait_gone()
    prompts = [c for c in call.commands() if c.startswith("GET DATA")]
    assert prompts == ["GET DATA agent-user 9000 16", "GET DATA agent-pass 9000 16",
                       "GET DATA auth-incorrect 9000 16", "GET DATA auth-incorrect 9000 16"], \
        steps_text(call)
    summary = rig.wait_cdr("TYPE=XVB")[0]
    assert "SUBSCR_ID=1" not in summary, summary  # the call never became the tenant's
    # … but the operator finds the attempts by the access code tried.
    assert "ACCESS_CODE=10001" in summary and "RESULT=BADPIN" in summary, summary
    assert "demo-instruct" not in " ".join(call.commands())


def test_a_wrong_access_code_is_told_and_asked_again(rig: Rig) -> None:
    rig.start()
    call = rig.call("613")
    call.answer_prompt("GET DATA agent-user", "55555#")
    call.answer_prompt("GET DATA pbx-invalid", "10001#")
    call.answer_prompt("GET DATA agent-pass", "911#")
    call.wait_command("STREAM FILE demo-instruct")
    call.hang_up()
    call.wait_gone()


def test_a_locked_tenant_hears_it_is_not_in_service(rig: Rig) -> None:
    rig.start(before=lambda r: r.query("UPDATE users SET status = 'locked' WHERE id = 1"))
    call = rig.call("100")
    call.wait_command("STREAM FILE ss-noservice")
    call.wait_gone()
    assert call.reply_to("STREAM FILE ss-noservice").startswith("200 result=0 endpos="), \
        steps_text(call)
    assert not [c for c in call.commands() if "demo-instruct" in c], steps_text(call)
    assert "RESULT=LOCKED" in rig.wait_cdr("TYPE=XVB")[0]


def test_guessing_pins_is_throttled_across_calls(rig: Rig) -> None:
    rig.start()
    for attempt in range(2):  # 3 + 3 wrong PINs: over the limit of 5
        call = rig.call("613", caller_id=f"7916000000{attempt}")
        call.answer_prompt("GET DATA agent-user", "10001#")
        for _ in range(3):
            try:
                call.answer_prompt("GET DATA", "000#", timeout=10)
            except AssertionError:
                break
        call.wait_gone()
    call = rig.call("613")
    call.answer_prompt("GET DATA agent-user", "10001#")
    call.wait_command("STREAM FILE please-try-call-later")
    call.wait_gone()
    # the 5th wrong PIN locks this source (the caller's Local channel, whatever the caller
    # ids) out of 613#10001: one WARN for the lockout, not one per refused call
    rig.expect_xvbd(r"lockout \d+: the PIN of 613#10001 refused from Local/613@from-provider ")


def test_a_caller_who_hangs_up_at_the_pin_is_abandoned_not_unknown(rig: Rig) -> None:
    rig.start()
    call = rig.call("613")
    call.answer_prompt("GET DATA agent-user", "10001#")
    call.wait_command("GET DATA agent-pass")
    call.hang_up()
    call.wait_gone()
    assert "RESULT=ABANDONED" in rig.wait_cdr("TYPE=XVB")[0]
    assert not [c for c in call.commands() if "XVB_RESULT" in c], steps_text(call)


def test_the_private_did_goes_straight_to_the_menu(rig: Rig) -> None:
    rig.start()
    call = rig.call("100")
    call.wait_command("STREAM FILE demo-instruct")
    call.hang_up()
    call.wait_gone()
    assert not [c for c in call.commands() if c.startswith("GET DATA")], steps_text(call)
    summary = rig.wait_cdr("TYPE=XVB")[0]
    assert "CALLED_ID=100" in summary and "ACCESS_CODE=10001" in summary, summary


def test_xvbd_down_the_caller_hears_an_apology(rig: Rig) -> None:
    rig.start()
    assert rig.server is not None
    rig.server.terminate()
    call = rig.call("100")
    _, event = rig.ami.wait_for(
        lambda e: e.get("Event") == "Newexten" and e.get("Uniqueid") == call.line_uid
        and e.get("Application") == "Playback", 15, what="the apology")
    assert event["AppData"] == "im-sorry&please-try-call-later", event
    call.wait_gone()
    rig.expect_asterisk(r"Connection refused", r"Couldn't connect to any host.  FastAGI failed")
