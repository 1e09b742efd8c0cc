"""Queue through the real Asterisk: the demo tenant's key 7 is a queue of its two phones
(``xvb_q_<extension id>``) that xvbd writes into Asterisk's realtime tables and Asterisk reads
through the shipped samples of ``etc/asterisk/realtime/`` (res_config_sqlite3 on SQLite,
res_config_mysql on MariaDB, and once res_odbc).  The caller waits with music on hold while
both phones ring, one answers and hears the caller, and 0 leaves the queue for the voicemail.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.asterisk.caller import Call, loud_seconds, wav_seconds
from tests.asterisk.manager import Event
from tests.asterisk.rig import Rig, steps_text

PHONE_A, PHONE_B = "79001234567", "79007654321"
MAIN = "STREAM FILE demo-instruct"
MEMBERS = [f"Local/{PHONE_A}@xvb-dialout-default/n", f"Local/{PHONE_B}@xvb-dialout-default/n"]


def queue_of_key_7(rig: Rig) -> str:
    rows = rig.query("SELECT id FROM extensions WHERE user_id = 1 AND path = '7'")
    return f"xvb_q_{rows[0][0]}"


def queue_event(rig: Rig, call: Call, name: str, timeout: float = 15.0, **fields: str) -> Event:
    """The caller's ``name`` event of app_queue (QueueCallerJoin, AgentConnect …)."""
    assert rig.ami is not None
    _, event = rig.ami.wait_for(
        lambda e: e.get("Event") == name and e.get("Uniqueid") == call.line_uid
        and all(e.get(k) == v for k, v in fields.items()),
        timeout, after=call.start_index, what=f"{name} {fields}")
    return event


def phone_heard(rig: Rig, number: str) -> float:
    """Seconds of sound the phone ``number`` heard once it answered (its recording is
    complete a moment after its call ends)."""
    for _ in range(50):
        heard = sorted(rig.phones_dir.glob(f"phone-{number}-*-heard.wav"))
        if heard and heard[-1].stat().st_size > 44:
            return loud_seconds(heard[-1])
        time.sleep(0.1)
    raise AssertionError(f"no recording of phone {number}: {list(rig.phones_dir.iterdir())}")


def wait_recorded(call: Call) -> float:
    """The length of what the caller heard (complete once the caller's half is gone)."""
    for _ in range(50):
        if call.heard().exists() and call.heard().stat().st_size > 44:
            return wav_seconds(call.heard())
        time.sleep(0.1)
    raise AssertionError(f"no recording of what the caller heard: {call.heard()}")


def answered_after_waiting(rig: Rig) -> None:
    """Both phones busy while the caller waits; then the second one answers."""
    name = queue_of_key_7(rig)
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "busy")
    mark = rig.ami.seen()
    call = rig.call("100")
    call.answer_prompt(MAIN, "7")
    joined = queue_event(rig, call, "QueueCallerJoin", Queue=name)
    assert joined["Position"] == "1", joined
    rig.wait_phone(PHONE_A, after=mark)
    rig.wait_phone(PHONE_B, after=mark)  # ring all: both at once, both busy
    time.sleep(3)  # the caller waits, hearing the music
    rig.phone(PHONE_B, "answer")  # at the queue's next try (retry: 5 s)
    connected = queue_event(rig, call, "AgentConnect", timeout=20, Queue=name)
    assert connected["Interface"] == MEMBERS[1], connected
    assert int(connected["HoldTime"]) >= 3, connected
    time.sleep(0.5)
    call.say("demo-thanks")  # 5.5 s of speech, to the phone that answered
    call.hang_up()
    call.wait_gone()
    steps = steps_text(call)
    assert f'EXEC Queue "{name},t,,,300"' in call.commands(), steps
    assert phone_heard(rig, PHONE_B) >= 2.0, "the phone that answered heard the caller"
    # What the caller heard while waiting: the default class's music, from the moment the
    # queue took them until the phone answered (the phone itself says nothing).
    moh = (f"Started music on hold, class 'default', on channel '{call.line()}'")
    assert moh in rig.asterisk.full_log(), steps
    wait_recorded(call)
    assert loud_seconds(call.heard()) >= 3.0, "the caller heard music while waiting"
    line = rig.wait_cdr("TYPE=Queue")[0]
    assert f"QUEUE={name}, STATUS=ANSWERED" in line and "EXT_NUMBER=7" in line, line


def test_the_caller_waits_with_music_and_a_phone_answers(rig: Rig) -> None:
    rig.start()
    answered_after_waiting(rig)


def test_the_caller_presses_0_and_leaves_a_message(rig: Rig) -> None:
    rig.start()
    name = queue_of_key_7(rig)
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "busy")
    call = rig.call("100")
    call.answer_prompt(MAIN, "7")
    queue_event(rig, call, "QueueCallerJoin", Queue=name)
    time.sleep(1)
    mark = rig.ami.seen()
    call.press("5")  # not the exit digit: the caller keeps their place
    time.sleep(2)
    assert not [e for e in rig.ami.events[mark:] if e.get("Event") == "QueueCallerLeave"
                and e.get("Uniqueid") == call.line_uid], "5 is not the exit digit"
    call.press("0")
    left = queue_event(rig, call, "QueueCallerLeave", Queue=name)
    assert left["Count"] == "0", left
    call.wait_command("RECORD FILE")  # extension 1, the voicemail
    time.sleep(0.5)
    call.say("demo-thanks")
    call.press("#")
    call.wait_command("STREAM FILE vm-msgsaved")
    call.hang_up()
    call.wait_gone()
    steps = steps_text(call)
    # Asterisk sent the caller to the queue's exit context, on extension 0; xvbd saw it.
    assert call.reply_to("GET VARIABLE CONTEXT") == "200 result=1 (xvb-queue-exit-0)", steps
    assert call.reply_to("GET VARIABLE EXTEN") == "200 result=1 (0)", steps
    rows = rig.query("SELECT duration FROM messages")
    assert len(rows) == 1 and 5 <= rows[0][0] <= 9, (rows, steps)
    queue_line = rig.wait_cdr("TYPE=Queue")[0]
    assert f"QUEUE={name}, STATUS=EXIT, DIGIT=0" in queue_line, queue_line
    assert "EXT_NUMBER=1" in rig.wait_cdr("TYPE=VoiceMail")[0]


def test_asterisk_reads_the_rows_xvbd_wrote(rig: Rig) -> None:
    """The queue's rows as xvbd wrote them, and as Asterisk reads them through the shipped
    sample; a music class of xvbd's ``musiconhold`` table plays to the waiting caller."""
    moh_dir = rig.asterisk.dir / "data" / "moh"

    def tenant_music(rig: Rig) -> None:
        rig.query("INSERT INTO musiconhold (name, mode, directory) VALUES (?, ?, ?)",
                  "xvbt-lounge", "files", str(moh_dir))
        rig.change_extension("7", moh="xvbt-lounge")

    rig.start(before=tenant_music)
    name = queue_of_key_7(rig)
    assert rig.query("SELECT COUNT(*) FROM queues") == [(0,)], "written by the first call"
    rig.phone(PHONE_A, "busy")
    rig.phone(PHONE_B, "busy")
    call = rig.call("100")
    call.answer_prompt(MAIN, "7")
    queue_event(rig, call, "QueueCallerJoin", Queue=name)
    shown = rig.asterisk.cli(f"queue show {name}").stdout
    loaded = rig.asterisk.cli(f"realtime load queues name {name}").stdout
    call.hang_up()
    call.wait_gone()
    assert (f"Started music on hold, class 'xvbt-lounge', on channel '{call.line()}'"
            in rig.asterisk.full_log()), "the class came from the musiconhold table"

    ext_id = int(name.rsplit("_", 1)[1])
    columns = ("name", "extension_id", "musiconhold", "context", "timeout", "strategy",
               "ringinuse", "announce_position", "announce_frequency", "joinempty",
               "leavewhenempty")
    rows = rig.query(f"SELECT {', '.join(columns)} FROM queues")
    assert len(rows) == 1, rows
    stored = dict(zip(columns, rows[0], strict=True))
    assert stored == {"name": name, "extension_id": ext_id, "musiconhold": "xvbt-lounge",
                      "context": "xvb-queue-exit-0", "timeout": 15, "strategy": "ringall",
                      "ringinuse": "no", "announce_position": "yes", "announce_frequency": 30,
                      "joinempty": "yes", "leavewhenempty": "no"}, stored
    members = rig.query("SELECT queue_name, interface, membername, penalty, paused "
                        "FROM queue_members ORDER BY uniqueid")
    assert members == [(name, m, m, 0, 0) for m in MEMBERS], members

    # Asterisk's view, through the realtime driver: the same row, the same members.
    for column, value in stored.items():
        assert re.search(rf"^\s*{column}\s+{re.escape(str(value))}\s*$", loaded, re.M), \
            (column, value, loaded)
    assert "'ringall' strategy" in shown, shown
    for member in MEMBERS:
        assert re.search(rf"{re.escape(member)} \(ringinuse disabled\) \(realtime\)", shown), \
            shown


@pytest.mark.parametrize("rig", ["mysql"], indirect=True)
def test_odbc_reads_the_queue_too(rig: Rig) -> None:
    """The ODBC sample (res_odbc + res_config_odbc, unixODBC's MariaDB driver) instead of
    res_config_mysql: the same queue, the same call."""
    rig.realtime_driver = "odbc"
    rig.start()
    shown = rig.asterisk.cli("odbc show xvb").stdout
    assert re.search(r"DSN:\s+xvb\s+Number of active connections: 1 ", shown), shown
    answered_after_waiting(rig)
