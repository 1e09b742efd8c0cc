"""Two nodes, proven: two real Asterisks and two real ``twistd xvbd`` processes on one
MariaDB database and one Redis (``twonodes.py``), each xvbd with its own SERVER_ID and its
own Asterisk.  What must hold across them: a group's concurrent-call limit, a CallBlast
phone dialed once, a call's price and the periodic fees charged once, each node's own call
limit, and the slots of a node that dies given back when their lease runs out.

Calls come in through each node's own Asterisk to the private DID 100 (the demo tenant's
menu), as a SIP dispatcher in front of the two would send them (``etc/kamailio/``).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

from tests.asterisk.caller import Call
from tests.asterisk.rig import Rig, steps_text
from tests.asterisk.twonodes import NODE_A, NODE_B, TwoNodes, nodes
from xvbd.accounting.cdr import money

__all__ = ["nodes"]  # the fixture

ALL_BUSY = "STREAM FILE tt-allbusy"
MENU = "STREAM FILE demo-instruct"


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout} s: {what}")
        time.sleep(0.2)


def _menu_waits(rig: Rig) -> None:
    """The root menu waits 60 s for a key: a call held in it keeps its slots."""
    rig.change_extension("", timeout=60)


def _held(rig: Rig) -> Call:
    """A call to DID 100 on ``rig``'s node that is in the menu, and stays there."""
    call = rig.call("100")
    call.wait_command(MENU)
    return call


def _refused(rig: Rig) -> Call:
    """A call to DID 100 on ``rig``'s node that hears all lines are busy and is put down."""
    call = rig.call("100")
    call.wait_command(ALL_BUSY)
    call.wait_gone()
    assert call.reply_to(ALL_BUSY).startswith("200 result=0 endpos="), steps_text(call)
    assert not [c for c in call.commands() if "demo-instruct" in c], steps_text(call)
    return call


def test_a_group_limit_holds_across_both_nodes(nodes: TwoNodes) -> None:
    def limited(rig: Rig) -> None:
        rig.query("UPDATE user_groups SET max_inbound_calls = 1 WHERE id = 1")
        _menu_waits(rig)
    nodes.start(before=limited)
    a, b = nodes.nodes
    held = _held(a)  # node A's call has the group's one slot
    assert [s.split(":")[0] for s in nodes.slots("calls:group:1")] == [NODE_A]
    refused = _refused(b)  # … so node B's caller hears all lines are busy
    assert "RESULT=BUSY" in b.wait_cdr("TYPE=XVB")[0]
    held.hang_up()
    held.wait_gone()
    a.wait_cdr("TYPE=XVB")
    _wait(lambda: nodes.slots("calls:group:1") == [], 5, "node A's slot given back")
    served = _held(b)  # the slot is free: node B serves the group again
    assert [s.split(":")[0] for s in nodes.slots("calls:group:1")] == [NODE_B]
    served.hang_up()
    served.wait_gone()
    assert refused.line_uid != served.line_uid
    lines = [x for x in b.cdr_lines() if "TYPE=XVB" in x]
    assert len(lines) == 2 and "RESULT=BUSY" in lines[0] and "RESULT=" not in lines[1], lines
    # the database has each node's summaries, told by their SERVER_ID
    rows = a.query("SELECT server_id, COUNT(*) FROM cdrs WHERE type = 'XVB' "
                   "GROUP BY server_id ORDER BY server_id")
    assert rows == [(NODE_A, 1), (NODE_B, 2)], rows


def test_each_node_has_its_own_limit(nodes: TwoNodes) -> None:
    def node_a_takes_one(rig: Rig) -> None:
        rig.query("INSERT INTO nodes (id, limit_calls) VALUES (?, 1)", NODE_A)
        _menu_waits(rig)
    nodes.start(before=node_a_takes_one)
    a, b = nodes.nodes
    first = _held(a)
    _refused(a)  # node A is full with one call …
    assert "RESULT=BUSY" in a.wait_cdr("RESULT=BUSY")[0]
    served = [_held(b), _held(b)]  # … while node B (no limit) takes two at once
    assert len(nodes.slots(f"calls:node:{NODE_A}")) == 1
    assert len(nodes.slots(f"calls:node:{NODE_B}")) == 2
    assert nodes.slots("calls:group:1") and len(nodes.slots("calls:group:1")) == 3
    for call in (first, *served):
        call.hang_up()
        call.wait_gone()
    _wait(lambda: len([x for x in b.cdr_lines() if "TYPE=XVB" in x]) == 2, 15,
          "node B's two summaries")
    assert not [x for x in b.cdr_lines() if "RESULT=BUSY" in x], b.cdr_lines()
    assert len([x for x in a.cdr_lines() if "TYPE=XVB" in x]) == 2


def test_a_node_that_dies_gives_its_slots_back_within_the_lease(nodes: TwoNodes) -> None:
    lease = 3
    nodes.configure(f"[TIMEOUT]\nCOUNTER_LEASE = {lease}")

    def limited(rig: Rig) -> None:
        rig.query("UPDATE user_groups SET max_inbound_calls = 1 WHERE id = 1")
        _menu_waits(rig)
    nodes.start(before=limited)
    a, b = nodes.nodes
    held = _held(a)
    _refused(b)
    # node A's slot outlives several renewals (every lease/3 s) while its xvbd lives
    time.sleep(lease + 1)
    assert [s.split(":")[0] for s in nodes.slots("calls:group:1")] == [NODE_A]
    _refused(b)
    assert a.server is not None
    a.server.proc.send_signal(signal.SIGKILL)
    a.server.proc.wait(10)
    killed = time.monotonic()
    # nothing gave the slot back: it is there until its lease runs out, then gone
    assert [s.split(":")[0] for s in nodes.slots("calls:group:1")] == [NODE_A]
    _wait(lambda: nodes.slots("calls:group:1") == [], lease + 2, "the dead node's lease end")
    gone_after = time.monotonic() - killed
    assert gone_after <= lease + 0.5, gone_after
    # node A's caller lost xvbd: Asterisk's fallback apologises and puts the line down
    held.wait_gone()
    apology = [e for e in a.ami.events[held.start_index:]
               if e.get("Event") == "Newexten" and e.get("Uniqueid") == held.line_uid
               and e.get("Application") == "Playback"]
    assert apology and "im-sorry" in apology[-1]["AppData"], apology
    served = _held(b)  # node B serves the group again
    served.hang_up()
    served.wait_gone()
    lines = [x for x in b.cdr_lines() if "TYPE=XVB" in x]
    assert len(lines) == 3 and "RESULT=" not in lines[-1], lines
    assert all("RESULT=BUSY" in x for x in lines[:2]), lines


TARIFF = {"daily_fee": 1000, "monthly_fee": 20000, "ivr_call": 5000}
BALANCE = 1_000_000


def test_a_call_and_the_fees_are_charged_once(nodes: TwoNodes) -> None:
    def priced(rig: Rig) -> None:
        rig.query("INSERT INTO tariffs (id, name, currency_id, daily_fee, monthly_fee, "
                  "ivr_call) VALUES (2, 'Per call', 1, ?, ?, ?)", TARIFF["daily_fee"],
                  TARIFF["monthly_fee"], TARIFF["ivr_call"])
        rig.query("UPDATE user_groups SET tariff_id = 2 WHERE id = 1")
        rig.query("UPDATE users SET balance = ? WHERE id = 1", BALANCE)
        _menu_waits(rig)
    # each xvbd charges the day's and the month's fees when it starts (and every hour)
    nodes.start(before=priced)
    a, b = nodes.nodes
    calls = [_held(a), _held(b)]  # one call on each node, at the same time
    assert len(a.query("SELECT call_id FROM balance_holds")) == 2
    for call in calls:
        call.hang_up()
        call.wait_gone()
    summaries = [a.wait_cdr("TYPE=XVB")[0], b.wait_cdr("TYPE=XVB")[0]]
    for line in summaries:
        assert f"COST={money(TARIFF['ivr_call'])}," in line, line
    fees = a.query("SELECT kind, amount FROM fee_charges WHERE user_id = 1 ORDER BY kind")
    assert fees == [("daily", TARIFF["daily_fee"]), ("monthly", TARIFF["monthly_fee"])], fees
    ops = a.query("SELECT reason, amount, call_id FROM balance_ops WHERE user_id = 1 "
                  "ORDER BY id")
    reasons = sorted(reason.split(" ")[0] + " " + reason.split(" ")[1] for reason, _, _ in ops)
    assert reasons == ["call: held", "call: held", "daily fee", "monthly fee"], ops
    held = {call_id: amount for reason, amount, call_id in ops if reason == "call: held"}
    assert sorted(held.values()) == [-TARIFF["ivr_call"]] * 2, ops
    rows = a.query("SELECT call_id, server_id, cost FROM cdrs WHERE type = 'XVB'")
    assert sorted(r[1] for r in rows) == [NODE_A, NODE_B], rows
    assert {r[0]: -r[2] for r in rows} == held, (rows, ops)  # each call's cost, once
    assert a.query("SELECT call_id FROM balance_holds") == []
    ((balance,),) = a.query("SELECT balance FROM users WHERE id = 1")
    assert balance == BALANCE - sum(TARIFF.values()) - TARIFF["ivr_call"], balance


PHONES = [f"7900111000{n}" for n in range(6)]


def test_a_callblast_phone_is_dialed_once_by_two_processes(nodes: TwoNodes) -> None:
    # Both processes serve as node A (the item's group is served by one SERVER_ID): both
    # schedulers find the same item due, and both runs overlap (node B's starts 5 s after
    # its AMI login, while node A's places six calls 1.5 s apart).  The item's lock in
    # Redis and the conditional claim of each phone must keep each phone dialed once.
    nodes.same_server_id()
    nodes.configure("[CALLBLAST]\nSLEEP = 1.5")
    for rig in nodes.nodes:
        for phone in PHONES:
            rig.asterisk.globals[f"XVBT_PHONE_{phone}"] = "busy"

    def active_list(rig: Rig) -> None:
        ((item_id,),) = rig.query("SELECT id FROM callblast_items WHERE user_id = 1")
        rig.query("DELETE FROM callblast_phones WHERE item_id = ?", item_id)
        for phone in PHONES:
            rig.query("INSERT INTO callblast_phones (item_id, user_id, phone) VALUES (?, 1, ?)",
                      item_id, phone)
        rig.query("UPDATE callblast_items SET status = 'active', settings = ? WHERE id = ?",
                  json.dumps({"retries": 0, "start": "00:00", "end": "23:59"}), item_id)
    nodes.start(before=active_list)
    both_up = time.monotonic()
    a = nodes.a
    _wait(lambda: len(a.query("SELECT id FROM callblast_results")) >= len(PHONES), 60,
          "a result for every phone")
    # node B's scheduler runs 5 s after its AMI login (within a second of its start) and
    # its run, if it got the item, places six calls 1.5 s apart: let it end before counting
    time.sleep(max(0.0, both_up + 16 - time.monotonic()))
    rung = [e["Phone"] for rig in nodes.nodes for e in rig.phones_rung()]
    assert sorted(rung) == PHONES, rung  # each phone rang once, on one Asterisk or the other
    results = a.query("SELECT phone, result FROM callblast_results ORDER BY phone")
    assert results == [(phone, "busy") for phone in PHONES], results
    phones = a.query("SELECT phone, status, attempts FROM callblast_phones ORDER BY phone")
    # busy with no retry left: each phone is finished as failed, after its one attempt
    assert phones == [(phone, "failed", 1) for phone in PHONES], phones
