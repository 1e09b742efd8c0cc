"""The directories xvbd and Asterisk write into, made by xvbd before anyone needs them.

The user/group model (README, "Asterisk on another user"): xvbd and Asterisk usually run
as two system users.  ``[PATH] MEDIA_GROUP`` names a group both belong to; xvbd then makes
every directory under ``MEDIA_DIR`` and ``TMP_DIR`` owned by that group, mode ``2770``
(the set-group-id bit makes files created inside take the group too), and the files it
writes for Asterisk to play (greetings, spoken text) mode ``0640``.  Asterisk records
voicemail into ``u/<tenant>/messages/``; xvbd reads and deletes those.  Without a group
(both processes as one user, the embedded default) directories are ``0755``.

Directory work is disk I/O: calls reach it through :meth:`MediaDirs.tenant` which runs it on
a thread once per tenant and process, then answers from memory.
"""

from __future__ import annotations

import grp
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service

from xvbd.logs import logger
from xvbd.services import fail_start

log = logger("xvbd.media")

SHARED_DIR_MODE = 0o2770
SHARED_FILE_MODE = 0o640
PRIVATE_DIR_MODE = 0o755

#: A tenant's directories below ``MEDIA_DIR/u/<id>/``.
TENANT_SUBDIRS = ("messages",)


def group_id(name: str) -> int:
    """The id of group ``name`` (a name or a number); KeyError when there is none."""
    if name.isdigit():
        return grp.getgrgid(int(name)).gr_gid
    return grp.getgrnam(name).gr_gid


class MediaDirs:
    """Makes and shares the media directories (see the module's text)."""

    def __init__(self, media_dir: Path, tmp_dir: Path, group: str,
                 run_blocking: Callable[..., Awaitable[Any]]) -> None:
        """``run_blocking(fn, *args)`` runs ``fn`` off the reactor thread (a thread pool)."""
        self.media_dir = media_dir
        self.tmp_dir = tmp_dir
        self.gid = group_id(group) if group else -1
        self.run_blocking = run_blocking
        self._ready: set[int] = set()
        #: When the voicemail disk alarm was last logged in full (engine clock).
        self.alarmed_at: float | None = None

    @property
    def shared(self) -> bool:
        return self.gid >= 0

    # ------------------------------------------------------------------ blocking (threads)

    def make(self, path: Path) -> Path:
        """``path`` and its missing parents below the media or scratch root, with the
        model's owner group and mode (blocking)."""
        top = self.media_dir if self.media_dir in (path, *path.parents) else self.tmp_dir
        top.parent.mkdir(parents=True, exist_ok=True)  # var/spool/: not shared
        missing = [p for p in (path, *path.parents) if p == top or top in p.parents]
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=PRIVATE_DIR_MODE)
            except FileExistsError:
                if not directory.is_dir():
                    raise
                continue
            self._share_dir(directory)
        return path

    def _share_dir(self, directory: Path) -> None:
        if not self.shared:
            os.chmod(directory, PRIVATE_DIR_MODE)  # whatever the umask (twistd's is 077)
            return
        os.chown(directory, -1, self.gid)
        os.chmod(directory, SHARED_DIR_MODE)

    def share_file(self, path: Path) -> None:
        """A file xvbd wrote for Asterisk to read: the group's, readable by it."""
        if self.shared:
            os.chown(path, -1, self.gid)
            os.chmod(path, SHARED_FILE_MODE)

    def prepare(self) -> None:
        """The roots and ``u/`` (blocking; at start, before any call)."""
        for path in (self.media_dir / "u", self.media_dir / "tts", self.tmp_dir):
            self.make(path)

    def make_tenant(self, user_id: int) -> Path:
        base = self.media_dir / "u" / str(int(user_id))
        for sub in TENANT_SUBDIRS:
            self.make(base / sub)
        return base

    @staticmethod
    def free_bytes(path: Path) -> int:
        """Bytes an unprivileged writer may still use on ``path``'s filesystem (blocking)."""
        stat = os.statvfs(path)
        return stat.f_bavail * stat.f_frsize

    @staticmethod
    def file_size(path: Path) -> int | None:
        """``path``'s size, None when there is no such file (blocking)."""
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ from the reactor

    async def room(self, user_id: int) -> int:
        """Free bytes where the tenant's messages are recorded (off the reactor)."""
        return int(await self.run_blocking(self.free_bytes, self.media_dir / "u" /
                                           str(int(user_id)) / "messages"))

    async def size(self, path: str) -> int | None:
        """The size of a file Asterisk wrote, None when xvbd sees no such file (off the
        reactor)."""
        return await self.run_blocking(self.file_size, Path(path))

    async def tenant(self, user_id: int) -> None:
        """Make sure the tenant's directories exist (once per process; off the reactor)."""
        if user_id in self._ready:
            return
        await self.run_blocking(self.make_tenant, user_id)
        self._ready.add(user_id)


class MediaService(Service):
    """Makes the media roots at start (after twistd has dropped privileges, so they belong
    to xvbd's user); a root that cannot be made stops the start with what to do."""

    name = "media"

    def __init__(self, dirs: MediaDirs) -> None:
        self.dirs = dirs

    def startService(self) -> None:
        try:
            self.dirs.prepare()
        except OSError as exc:
            fail_start(2,  # the exit status of a configuration error
                       f"[PATH] MEDIA_DIR / TMP_DIR: cannot make {exc.filename}: "
                       f"{exc.strerror}; make it writable for xvbd's user or choose another "
                       "directory")
        super().startService()
