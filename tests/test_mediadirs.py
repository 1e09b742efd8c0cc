"""The media directories xvbd makes for itself and for Asterisk (``xvbd.mediadirs``)."""

from __future__ import annotations

import grp
import stat
from pathlib import Path

import pytest

from xvbd.config import ConfigError, parse_settings
from xvbd.mediadirs import SHARED_DIR_MODE, SHARED_FILE_MODE, MediaDirs


def _inline(fn, *args):
    raise AssertionError("not used here")


def test_a_fresh_install_gets_every_directory(tmp_path: Path) -> None:
    media = MediaDirs(tmp_path / "var" / "spool" / "recordings", tmp_path / "var" / "tmp", "",
                      _inline)
    media.prepare()
    base = media.make_tenant(7)
    assert (base / "messages").is_dir()
    assert (tmp_path / "var" / "tmp").is_dir()
    assert stat.S_IMODE((base / "messages").stat().st_mode) == 0o755
    media.make_tenant(7)  # again: nothing to do, no error


def test_with_a_group_both_users_share_the_directories(tmp_path: Path) -> None:
    group = grp.getgrnam("nogroup")
    media = MediaDirs(tmp_path / "media", tmp_path / "tmp", "nogroup", _inline)
    base = media.make_tenant(3)
    for directory in (tmp_path / "media", tmp_path / "media" / "u", base, base / "messages"):
        info = directory.stat()
        assert info.st_gid == group.gr_gid, directory
        assert stat.S_IMODE(info.st_mode) == SHARED_DIR_MODE, directory
    greeting = base / "hello.wav"
    greeting.write_bytes(b"RIFF")
    media.share_file(greeting)
    assert greeting.stat().st_gid == group.gr_gid
    assert stat.S_IMODE(greeting.stat().st_mode) == SHARED_FILE_MODE


def test_an_unknown_group_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings("[PATH]\nMEDIA_GROUP = no-such-group-here\n", "test.conf")
    text = "\n".join(caught.value.problems)
    assert "[PATH] MEDIA_GROUP" in text and "groupadd no-such-group-here" in text, text
