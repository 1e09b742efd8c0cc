"""Asterisk and xvbd as two system users (the README's user/group model): Asterisk runs as
``nobody``, xvbd as root here, ``[PATH] MEDIA_GROUP = nogroup`` is the group they share.
xvbd makes the tenant's directories the group's (2770) before Asterisk records into them;
the voicemail Asterisk writes there is the group's too, and xvbd reads it back."""

from __future__ import annotations

import grp
import os
import stat
import time

from tests.asterisk.caller import wav_seconds
from tests.asterisk.rig import Rig, steps_text


def test_voicemail_with_asterisk_as_another_user(rig: Rig) -> None:
    if os.geteuid() != 0:
        import pytest

        pytest.skip("running Asterisk as another user needs root")
    rig.asterisk.run_as = ("nobody", "nogroup")
    rig.media_group = "nogroup"
    for path in (rig.tmp, rig.xvbd_dir):
        path.chmod(0o755)  # both users pass through; what is inside is the model's
    os.chown(rig.heard_dir, -1, grp.getgrnam("nogroup").gr_gid)
    rig.heard_dir.chmod(0o2770)
    rig.start()
    call = rig.call("100")
    call.answer_prompt("STREAM FILE demo-instruct", "1")
    call.wait_command("RECORD FILE")
    time.sleep(0.5)
    call.say("demo-thanks")
    call.press("#")
    call.wait_command("STREAM FILE vm-msgsaved")
    call.hang_up()
    call.wait_gone()
    assert call.reply_to("RECORD FILE").startswith("200 result=35 (dtmf)"), steps_text(call)
    folder = rig.media / "u" / "1" / "messages"
    gid = grp.getgrnam("nogroup").gr_gid
    for directory in (rig.media, rig.media / "u", rig.media / "u" / "1", folder):
        info = directory.stat()
        assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (gid, 0o2770), directory
    (recording,) = folder.iterdir()
    assert recording.stat().st_gid == gid  # the directory's group, by its set-gid bit
    assert recording.stat().st_uid == 65534  # written by Asterisk's user
    assert wav_seconds(recording) >= 5
    assert rig.query("SELECT COUNT(*) FROM messages") == [(1,)]
