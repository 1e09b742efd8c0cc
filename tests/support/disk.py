"""A small disk of a test's own (a tmpfs mounted by root) and a file that fills it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def mount_small_disk(where: Path, size: str = "256k") -> None:
    """A tmpfs of ``size`` at ``where`` (made if missing); skips without root, and fails
    under ``CI=true``, where the outage tests must run."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"cannot mount a tmpfs (root is needed) under CI: "
                                 f"{done.stderr.strip()}")
        pytest.skip("mounting a tmpfs needs root")


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path, leave: int = 0, name: str = "filler") -> Path:
    """A file taking all of ``disk``'s free space but ``leave`` bytes (about: the
    filesystem counts in pages)."""
    filler = disk / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            stat = os.statvfs(disk)
            free = stat.f_bavail * stat.f_frsize - leave
            if free <= 0:
                break
            os.write(fd, b"\0" * min(free, 65536))
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
