"""Voicemail through the real Asterisk: the caller reaches the demo tenant's box, speaks,
and the message is on disk, in the database and in the CDR."""

from __future__ import annotations

import threading
import time

from tests.asterisk.caller import Call, wav_seconds
from tests.asterisk.rig import Rig, steps_text
from tests.support.disk import fill, mount_small_disk, unmount


def test_a_message_is_recorded_on_a_fresh_install(rig: Rig) -> None:
    rig.start()
    call = rig.call("613")
    call.answer_prompt("GET DATA", "10001#")
    call.answer_prompt("GET DATA", "911#")
    call.answer_prompt("STREAM FILE demo-instruct", "1")
    call.wait_command("RECORD FILE")
    time.sleep(0.5)
    call.say("demo-thanks")  # 5.5 s of speech
    call.press("#")
    call.wait_command("STREAM FILE vm-msgsaved")
    call.hang_up()
    call.wait_gone()
    steps = steps_text(call)
    assert call.reply_to("RECORD FILE").startswith("200 result=35 (dtmf)"), steps  # '#'
    rows = rig.query("SELECT user_id, duration, file_name FROM messages")
    assert len(rows) == 1, steps
    user_id, duration, name = rows[0]
    path = rig.media / "u" / str(user_id) / "messages" / f"{name}.wav"
    assert path.exists(), (path, steps)
    assert 5 <= wav_seconds(path) <= 9, wav_seconds(path)
    assert 5 <= duration <= 9, duration
    line = rig.wait_cdr("TYPE=VoiceMail")[0]
    assert "EXT_NUMBER=1" in line and f"DURATION={duration}" in line, line
    # and mailed to the tenant (demo@localhost) through the relay, the recording attached
    deadline = time.monotonic() + 20
    while not rig.smtp.received():
        assert time.monotonic() < deadline, "the voicemail's mail never reached the relay"
        time.sleep(0.2)
    (mail,) = rig.smtp.received()
    assert mail.rcpt_tos == ["demo@localhost"], mail.rcpt_tos
    (part,) = mail.message.iter_attachments()
    assert part.get_content() == path.read_bytes()
    assert rig.query("SELECT emailed_at FROM messages")[0][0] > 0


def _at_the_box(rig: Rig) -> Call:
    call = rig.call("613")
    call.answer_prompt("GET DATA", "10001#")
    call.answer_prompt("GET DATA", "911#")
    call.answer_prompt("STREAM FILE demo-instruct", "1")
    return call


def test_the_messages_disk_full_then_freed(rig: Rig) -> None:
    """MEDIA_DIR on a small disk of the test's own: full, the caller is told at once that
    no message can be taken; with a little room, the message may not be longer than the
    room; filled under the recording, the message keeps what is on disk; freed, as usual."""
    mount_small_disk(rig.media, "2m")
    try:
        rig.start()
        rig.expect_xvbd(r"no room for voicemail in ", r"the disk filled under a voicemail in ")
        rig.expect_asterisk(r"Bad write \(\d+\): No space left on device",
                            r"Natural write failed")
        filler = fill(rig.media)

        call = _at_the_box(rig)  # 1. the disk is full
        call.wait_command("STREAM FILE tt-somethingwrong")
        call.wait_command("STREAM FILE please-try-call-later")
        call.wait_gone()
        assert not [c for c in call.commands() if c.startswith("RECORD FILE")], steps_text(call)
        assert "RESULT=NO_ROOM" in rig.wait_cdr("TYPE=VoiceMail")[0]
        assert "#error] no room for voicemail in " in rig.xvbd_log()

        filler.unlink()  # 2. room for about 6 s of 16-bit audio (and the 64 KiB margin)
        filler = fill(rig.media, leave=64 * 1024 + 6 * 16000 + 8192)
        call = _at_the_box(rig)
        record = call.wait_command("RECORD FILE")
        limit = int(record["Command"].split()[5])
        assert 5000 <= limit <= 7000, record["Command"]
        time.sleep(0.5)
        # 3. … and the rest of the disk is taken while the caller speaks (5.5 s)
        filling = threading.Timer(3.0, fill, args=(rig.media,), kwargs={"name": "more"})
        filling.start()
        call.say("demo-thanks")
        filling.join()
        more = rig.media / "more"
        call.wait_command("STREAM FILE", timeout=15)
        call.hang_up()
        call.wait_gone()
        (row,) = rig.query("SELECT duration, file_name FROM messages") or [(None, None)]
        line = rig.wait_cdr("TYPE=VoiceMail", count=2)[1]
        assert row[0] is not None and "RESULT=CUT" in line, (line, steps_text(call))
        on_disk = wav_seconds(rig.media / "u" / "1" / "messages" / f"{row[1]}.wav")
        assert 1 <= on_disk < 5 and abs(on_disk - row[0]) <= 1, (on_disk, row)

        more.unlink()  # 4. freed: a message as usual
        filler.unlink()
        call = _at_the_box(rig)
        call.wait_command("RECORD FILE")
        time.sleep(0.5)
        call.say("demo-thanks")
        call.press("#")
        call.wait_command("STREAM FILE vm-msgsaved")
        call.hang_up()
        call.wait_gone()
        line = rig.wait_cdr("TYPE=VoiceMail", count=3)[2]
        assert "RESULT=" not in line.split("DATA=", 1)[1], line
        durations = [d for (d,) in rig.query("SELECT duration FROM messages ORDER BY id")]
        assert len(durations) == 2 and 5 <= durations[1] <= 9, durations
    finally:
        unmount(rig.media)  # lazily: the fixture stops the processes still in it
