"""The demo tenant's menu through the real Asterisk, one key at a time (reached through the
private DID 100): what the caller hears and what is stored for each type."""

from __future__ import annotations

import time

from tests.asterisk.rig import Rig, steps_text

PHONE_A, PHONE_B = "79001234567", "79007654321"
MAIN, MORE = "STREAM FILE demo-instruct", "STREAM FILE demo-moreinfo"


def test_directory_finds_an_employee_by_number_and_rings_them(rig: Rig) -> None:
    rig.start()
    rig.phone(PHONE_A, "answer")
    mark = rig.ami.seen()
    call = rig.call("100")
    call.answer_prompt(MAIN, "5")
    call.answer_prompt("GET DATA dir-intro", "21#")
    call.wait_command("SAY DIGITS 21")
    call.answer_prompt("WAIT FOR DIGIT", "1")
    rig.wait_phone(PHONE_A, "XvbtPhoneUp", after=mark)
    call.hang_up()
    call.wait_gone()
    assert any(c.startswith(f"EXEC Dial \"Local/{PHONE_A}@xvb-dialout-default") for c in
               call.commands()), steps_text(call)
    assert "EMPLOYEE=21, STATUS=ANSWER" in rig.wait_cdr("TYPE=Directory")[0]


def test_voting_keeps_one_vote_per_caller(rig: Rig) -> None:
    rig.start()
    for attempt in range(2):
        call = rig.call("100")
        call.answer_prompt(MAIN, "6")
        if attempt == 0:
            call.answer_prompt("WAIT FOR DIGIT", "2")
            call.wait_command("STREAM FILE auth-thankyou")
        else:  # the same caller again: told what they voted, not asked
            call.wait_command("SAY DIGITS 2")
            assert not [c for c in call.commands() if c.startswith("WAIT FOR DIGIT")]
        call.hang_up()
        call.wait_gone()
    rows = rig.query("SELECT caller_id, choice FROM votes")
    assert rows == [("79161234567", "2")], rows


def test_disa_asks_its_pin_then_dials_the_number_typed(rig: Rig) -> None:
    rig.start()
    rig.phone(PHONE_B, "answer")
    mark = rig.ami.seen()
    call = rig.call("100")
    call.answer_prompt(MAIN, "8")
    call.answer_prompt("GET DATA agent-pass", "1234#")
    call.answer_prompt("GET DATA", f"{PHONE_B}#")
    rang = rig.wait_phone(PHONE_B, "XvbtPhoneRang", after=mark)
    rig.wait_phone(PHONE_B, "XvbtPhoneUp", after=mark)
    assert rang["AC"] == "10001", rang
    call.hang_up()
    call.wait_gone()
    assert f"NUMBER={PHONE_B}, STATUS=ANSWER" in rig.wait_cdr("TYPE=DISA")[0]
    summary = rig.wait_cdr("TYPE=XVB")[0]
    assert "DTMF=8 xxxx w" in summary or "DTMF=8 xxxxw" in summary, summary  # PIN hidden
    assert PHONE_B in summary.split("DATA=")[1], summary


def test_the_sub_menu_pause_greeting_variables_and_goto_if(rig: Rig) -> None:
    rig.start()
    call = rig.call("100")
    call.answer_prompt(MAIN, "9")
    call.answer_prompt(MORE, "2")  # a pause of 2 s, then back
    call.wait_command('EXEC Wait "2"')
    call.answer_prompt(MORE, "4")  # the caller's variable "code"
    call.answer_prompt("GET DATA", "42#")
    call.answer_prompt(MORE, "6")  # code is 42: to 9*1 (Date/Time)
    call.wait_command("SAY DATETIME", timeout=10)
    call.hang_up()
    call.wait_gone()
    steps = call.steps()
    pause = next(s for s in steps if s.command == 'EXEC Wait "2"')
    assert 1.8 <= pause.seconds <= 3.0, pause
    lines = rig.cdr_lines()
    assert any("TYPE=Pause" in line and "EXT_NUMBER=9*2" in line for line in lines), lines
    assert any("TYPE=UserVar" in line and "VALUE=42" in line for line in lines), lines
    assert any("TYPE=GotoIf" in line and "TARGET=9*1" in line for line in lines), lines


def test_a_stored_variable_is_said_back_on_a_later_call(rig: Rig) -> None:
    rig.start(before=lambda r: r.query(
        "INSERT INTO stored_vars (user_id, name, value, updated_at) VALUES (1, 'code', '735', 0)"))
    call = rig.call("100")
    call.answer_prompt(MAIN, "9")
    call.answer_prompt(MORE, "5")
    call.wait_command("SAY DIGITS 735")
    call.wait_command(MORE)
    call.hang_up()
    call.wait_gone()
    assert call.reply_to("SAY DIGITS 735").startswith("200 result=0"), steps_text(call)


def test_dtmf2email_keeps_the_digits(rig: Rig) -> None:
    rig.start()
    call = rig.call("100")
    call.answer_prompt(MAIN, "9")
    call.answer_prompt(MORE, "8")
    call.answer_prompt("GET DATA", "5551234#")
    call.wait_command(MORE)
    call.hang_up()
    call.wait_gone()
    assert rig.query("SELECT digits, caller_id FROM dtmf_messages") == [
        ("5551234", "79161234567")]


def test_multidialout_rings_both_phones_at_once(rig: Rig) -> None:
    rig.start()
    rig.phone(PHONE_A, "answer")
    mark = rig.ami.seen()
    call = rig.call("100")
    call.answer_prompt(MAIN, "9")
    call.answer_prompt(MORE, "9")
    rig.wait_phone(PHONE_A, "XvbtPhoneUp", after=mark)
    rung = {e["Phone"] for e in rig.phones_rung(mark)}
    assert rung == {PHONE_A, PHONE_B}, rung
    call.hang_up()
    call.wait_gone()
    dial = next(c for c in call.commands() if c.startswith("EXEC Dial"))
    assert f"Local/{PHONE_A}@xvb-dialout-default&Local/{PHONE_B}@xvb-dialout-default" in dial


def test_the_schedule_goes_where_the_hour_says(rig: Rig) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    def office_hours() -> bool:  # the demo's rule: weekdays 09:00-18:00, Europe/Moscow
        now = datetime.now(ZoneInfo("Europe/Moscow"))
        return now.isoweekday() <= 5 and (9, 0) <= (now.hour, now.minute) <= (18, 0)

    rig.start()
    before = office_hours()
    call = rig.call("100")
    call.answer_prompt(MAIN, "4")
    expected = MORE if before else "STREAM FILE vm-intro"
    call.wait_command(expected)
    call.hang_up()
    call.wait_gone()
    line = rig.wait_cdr("TYPE=Schedule")[0]
    if office_hours() == before:
        assert ("TARGET=9" if before else "TARGET=1") in line, line


def test_a_conference_room_with_a_pin_and_two_places(rig: Rig) -> None:
    rig.start(before=lambda r: r.change_extension("0", pin="4321", max_members=2))
    calls = []
    for who in range(3):
        call = rig.call("100", caller_id=f"7916111000{who}")
        call.answer_prompt(MAIN, "0")
        call.answer_prompt("GET DATA", "4321#")
        calls.append(call)
        time.sleep(2)
    joined = [e for e in rig.ami.events if e.get("Event") == "ConfbridgeJoin"]
    assert len(joined) == 2, [e.get("Channel") for e in joined]
    assert {e["Conference"] for e in joined} == {"xvb-10001-1"}
    for call in calls:
        call.hang_up()
        call.wait_gone()
    lines = [line for line in rig.cdr_lines() if "TYPE=Conference" in line]
    assert len(lines) == 3, lines


def test_a_greeting_then_back_and_the_announcement(rig: Rig) -> None:
    rig.start()
    call = rig.call("100")
    call.answer_prompt(MAIN, "9")
    call.answer_prompt(MORE, "3")   # a greeting, then back to the sub-menu
    call.wait_command("STREAM FILE demo-thanks")
    call.answer_prompt(MORE, "0")   # the CallBlast's announcement, heard on the phone too
    call.wait_command("STREAM FILE demo-thanks")
    call.wait_command(MORE)
    call.hang_up()
    call.wait_gone()
    thanks = [s for s in call.steps() if s.command.startswith("STREAM FILE demo-thanks")]
    assert len(thanks) == 2 and all(s.seconds >= 5 for s in thanks), steps_text(call)
    lines = rig.cdr_lines()
    assert any("EXT_NUMBER=9*3" in x and "TYPE=Playback" in x for x in lines), lines
    assert any("EXT_NUMBER=9*0" in x and "TYPE=CallBlast" in x for x in lines), lines
