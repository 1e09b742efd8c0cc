"""Voicemail through the real Asterisk: the caller reaches the demo tenant's box, speaks,
and the message is on disk, in the database and in the CDR."""

from __future__ import annotations

import time

from tests.asterisk.caller import wav_seconds
from tests.asterisk.rig import Rig, steps_text


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
