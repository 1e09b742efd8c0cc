"""Calls xvbd places, through the real Asterisk: an AMI Originate of
``Local/<phone>@xvb-dialout-default/n`` tracked to its end, the answered side coming back
over FastAGI from the shipped ``xvb-callblast`` / ``xvb-callback`` contexts.

CallBlast with ``[CALLBLAST] CHECK_AMD = 1`` runs the real ``app_amd``: an answering
machine (a long greeting) hears the message and is hung up on; a person (one word, then
silence) hears the message and goes on into the menu (the default group has advanced
callblast)."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from tests.asterisk.caller import loud_seconds
from tests.asterisk.rig import Rig, steps_text
from tests.support.web import login_form
from xvbd.demo import ACCESS_CODE, PIN, VOICE_NUMBER

PHONE_A, PHONE_B = "79001234567", "79007654321"


def _active_all_day(rig: Rig) -> None:
    rig.query("UPDATE callblast_items SET status = 'active', settings = ? WHERE user_id = 1",
              json.dumps({"retries": 0, "start": "00:00", "end": "23:59"}))


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not in {timeout} s: {what}")


def _heard(rig: Rig, phone: str) -> float:
    files = sorted(rig.phones_dir.glob(f"phone-{phone}-*-heard.wav"))
    return loud_seconds(files[0]) if files else 0.0


def test_callblast_tells_a_machine_from_a_person(rig: Rig) -> None:
    rig.xvb_extra = "[CALLBLAST]\nCHECK_AMD = 1\nSLEEP = 0.5"
    rig.start(before=_active_all_day)
    rig.phone(PHONE_A, "machine")
    rig.phone(PHONE_B, "person")
    originated = rig.ami.wait_for(lambda e: e.get("Event") == "OriginateResponse", 30,
                                  what="xvbd's first Originate")[1]
    assert originated["Channel"].startswith("Local/"), originated
    results = _wait(lambda: dict(rig.query(
        "SELECT phone, result FROM callblast_results WHERE user_id = 1")) if len(rig.query(
            "SELECT id FROM callblast_results")) == 2 else None, 60, "both results")
    assert results == {PHONE_A: "machine", PHONE_B: "answered"}, results
    # The person goes on into the menu 9 after the message (advanced callblast).
    rig.ami.wait_for(lambda e: e.get("Event") == "AGIExecStart"
                     and e.get("Command", "").startswith("STREAM FILE demo-moreinfo"), 40,
                     what="the person in the sub-menu")
    amd = [e for e in rig.ami.events if e.get("Event") == "VarSet"
           and e.get("Variable") == "AMDSTATUS"]
    assert sorted(e["Value"] for e in amd) == ["HUMAN", "MACHINE"], amd
    for channel in {e["Channel"] for e in rig.ami.events
                    if e.get("Event") == "Newchannel" and "xvbgw" in e.get("Channel", "")}:
        rig.ami.action("Hangup", Channel=channel)
    lines = _wait(lambda: [x for x in rig.cdr_lines() if "CALL_TYPE=callblast" in x]
                  if sum("CALL_TYPE=callblast" in x for x in rig.cdr_lines()) == 2 else None,
                  30, "two callblast summaries")
    assert all("ACCESS_CODE=10001" in line for line in lines), lines
    steps = [x for x in rig.cdr_lines() if "TYPE=CallBlast" in x]
    assert any("AMD=MACHINE" in x and PHONE_A in x for x in steps), steps
    # demo-thanks plays 5.5 s, 3.9 s of it speech
    assert _heard(rig, PHONE_A) >= 3.0, "the machine got the message"
    assert _heard(rig, PHONE_B) >= 3.0, "the person got the message"
    phones = dict(rig.query("SELECT phone, status FROM callblast_phones"))
    assert phones == {PHONE_A: "done", PHONE_B: "done"}, phones


def test_callblast_busy_is_tried_again_and_never_twice_at_once(rig: Rig) -> None:
    rig.xvb_extra = "[CALLBLAST]\nSLEEP = 0.5"
    rig.start(before=lambda r: r.query(
        "UPDATE callblast_items SET status = 'active', settings = ? WHERE user_id = 1",
        json.dumps({"retries": 1, "retry_interval": 60, "start": "00:00", "end": "23:59"})))
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "busy")
    results = _wait(lambda: rig.query("SELECT phone, result FROM callblast_results")
                    if len(rig.query("SELECT id FROM callblast_results")) >= 2 else None,
                    40, "two busy results")
    assert sorted(results) == [(PHONE_A, "busy"), (PHONE_B, "busy")], results
    rung = rig.phones_rung()
    assert sorted(e["Phone"] for e in rung) == [PHONE_A, PHONE_B], rung  # once each
    pending = rig.query("SELECT phone, status, attempts FROM callblast_phones ORDER BY phone")
    assert pending == [(PHONE_A, "pending", 1), (PHONE_B, "pending", 1)], pending


class TenantPages:
    """The demo tenant in ``/ui`` of the running xvbd, as a browser: logged in with the
    voice number, AccessCode and PIN, posting forms with the session's CSRF token."""

    def __init__(self, port: int) -> None:
        self.port = port
        token, self.cookie = login_form(
            http.client.HTTPConnection("127.0.0.1", self.port, timeout=10), "/ui/login")
        answer = self.request("POST", "/ui/login", {
            "voice_number": VOICE_NUMBER, "access_code": ACCESS_CODE, "secret": PIN,
            "_csrf": token})
        assert answer[0] in (302, 303), answer
        assert self.cookie, "no session cookie after the login"

    def request(self, method: str, path: str, fields: dict[str, str] | None = None
                ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body, headers)
        answer = conn.getresponse()
        text = answer.read().decode()
        for name, value in answer.getheaders():
            if name.lower() == "set-cookie" and value.startswith("xvbd_ui="):
                self.cookie = value.split(";", 1)[0]
        conn.close()
        return answer.status, text

    def press(self, page: str, action: str) -> int:
        """Open ``page`` and submit its form that posts to ``action``."""
        status, text = self.request("GET", page)
        assert status == 200, (status, text[:300])
        assert f'action="{action}"' in text, f"no form posting to {action} on {page}"
        csrf = re.search(r'name="_csrf" value="([^"]+)"', text)
        assert csrf, text[:300]
        return self.request("POST", action, {"_csrf": csrf[1]})[0]


def test_a_paused_list_is_resumed_from_the_tenant_page(rig: Rig) -> None:
    rig.xvb_extra = "[CALLBLAST]\nSLEEP = 0.5"
    # The demo's list is paused; its hours are all day.
    rig.start(before=lambda r: r.query(
        "UPDATE callblast_items SET settings = ? WHERE user_id = 1",
        json.dumps({"retries": 0, "start": "00:00", "end": "23:59"})))
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "busy")
    ((item_id, status),) = rig.query("SELECT id, status FROM callblast_items")
    assert status == "paused"
    time.sleep(8)  # the run 5 s after the AMI login has passed: a paused list is not called
    assert rig.phones_rung() == []
    assert rig.server is not None
    pages = TenantPages(rig.server.web_port)
    assert pages.press(f"/ui/callblast/{item_id}", f"/ui/callblast/{item_id}/resume") == 303
    assert rig.query("SELECT status FROM callblast_items") == [("active",)]
    # the scheduler's next minute calls both phones, through the real Asterisk
    results = _wait(lambda: rig.query("SELECT phone, result FROM callblast_results")
                    if len(rig.query("SELECT id FROM callblast_results")) >= 2 else None,
                    75, "two results after the resume")
    assert sorted(results) == [(PHONE_A, "busy"), (PHONE_B, "busy")], results
    assert sorted(e["Phone"] for e in rig.phones_rung()) == [PHONE_A, PHONE_B]
    journal = rig.query("SELECT actor, field, old_value, new_value FROM journal "
                        "WHERE object_kind = 'callblast_items'")
    assert (f"{VOICE_NUMBER}#{ACCESS_CODE}", "status", "paused", "active") in journal, journal


def test_a_callback_is_placed_after_the_caller_hangs_up(rig: Rig) -> None:
    rig.start()
    caller_number = "79169998877"
    rig.phone(caller_number, "answer")
    call = rig.call("100", caller_id=caller_number)
    call.answer_prompt("STREAM FILE demo-instruct", "9")
    call.answer_prompt("STREAM FILE demo-moreinfo", "7")
    call.wait_command("STREAM FILE")  # thanks, we will call you back
    call.hang_up()
    call.wait_gone()
    rig.wait_phone(caller_number, "XvbtPhoneUp", timeout=40)
    # The called-back caller is served from the main menu, billed as a callback.
    rig.ami.wait_for(
        lambda e: e.get("Event") == "AGIExecStart" and "demo-instruct" in e.get("Command", "")
        and e.get("Uniqueid") != call.line_uid, 30, what="the menu on the callback")
    for channel in {e["Channel"] for e in rig.ami.events
                    if e.get("Event") == "Newchannel" and "xvbgw" in e.get("Channel", "")}:
        rig.ami.action("Hangup", Channel=channel)
    summary = _wait(lambda: [x for x in rig.cdr_lines() if "CALL_TYPE=callback" in x], 30,
                    "the callback's summary")[0]
    assert "ACCESS_CODE=10001" in summary and caller_number in summary, summary
    rows = rig.query("SELECT phone, status FROM callback_requests")
    assert rows and rows[0][0] == caller_number, (rows, steps_text(call))
