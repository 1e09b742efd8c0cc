"""Two xvbd nodes: two real Asterisks and two real ``twistd xvbd`` processes on ONE MariaDB
database and ONE Redis (``[COMMON] MEM_CACHED_SHARED`` with a key prefix of the test's
own), each xvbd with its own ``SERVER_ID`` and its own Asterisk (AMI, FastAGI port).

Node A is a :class:`Rig` that sets the database up as the README says (``db upgrade``,
``demo-tenant``; the default group served by node A); node B is a second :class:`Rig` on
the same database, which it neither sets up nor drops.  Each node's Asterisk dials its own
phones (the gateway loops back into the same Asterisk), so a phone that rang is seen on
the Asterisk of the node that dialed it.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.asterisk.rig import Rig, need_asterisk, stopped_and_checked
from tests.support.db import mysql_disabled
from tests.support.redis import REDIS, new_prefix

#: SERVER_IDs of the two nodes.
NODE_A, NODE_B = "NODE-A", "NODE-B"


class TwoNodes:
    def __init__(self, tmp: Path, server_ids: tuple[str, str] = (NODE_A, NODE_B)) -> None:
        self.tmp = tmp
        self.prefix = new_prefix()
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        self.a = Rig(tmp / "a", "mysql", server_id=server_ids[0])
        self.b = Rig(tmp / "b", "mysql", url=self.a.url, server_id=server_ids[1])
        shared = f"MEM_CACHED_SHARED = redis://{REDIS}/0?prefix={self.prefix}"
        for rig in self.nodes:
            rig.xvb_common = shared

    @property
    def nodes(self) -> tuple[Rig, Rig]:
        return self.a, self.b

    def same_server_id(self) -> None:
        """Both processes serve as node A (one SERVER_ID, as two boxes behind one name)."""
        self.b.server_id = self.a.server_id

    def configure(self, extra: str) -> None:
        """The same ``xvb.conf`` lines on both nodes (``[TIMEOUT] COUNTER_LEASE = 3`` …)."""
        for rig in self.nodes:
            rig.xvb_extra += "\n" + extra + "\n"

    def start(self, before: Callable[[Rig], object] | None = None) -> TwoNodes:
        """Node A sets the database up (``before(rig)`` changes it, as :meth:`Rig.start`),
        then both nodes start, A first."""
        self.a.start(before=before)
        self.b.start()
        return self

    def redis(self, *args: str) -> str:
        host, _, port = REDIS.partition(":")
        done = subprocess.run(["redis-cli", "-h", host, "-p", port or "6379", "--raw", *args],
                              capture_output=True, text=True, timeout=10, check=True)
        return done.stdout

    def slots(self, key: str) -> list[str]:
        """The live leases of the shared counter ``key`` (``calls:group:1``) in Redis: a
        lease's score is when it expires (Redis's own clock)."""
        seconds, micros = self.redis("TIME").split()
        now = int(seconds) + int(micros) / 1e6
        members = self.redis("ZRANGE", self.prefix + key, "0", "-1", "WITHSCORES").split()
        return [lease for lease, score in zip(members[::2], members[1::2], strict=True)
                if float(score) > now]

    def drop_keys(self) -> None:
        keys = self.redis("KEYS", self.prefix + "*").split()
        if keys:
            self.redis("DEL", *keys)

    def stop(self) -> None:
        try:
            self.b.stop()
        finally:
            try:
                self.a.stop()  # drops the shared database
            finally:
                self.drop_keys()

    def check_logs(self) -> None:
        problems = []
        for name, rig in (("node A", self.a), ("node B", self.b)):
            try:
                rig.check_logs()
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise AssertionError("\n".join(problems))


@pytest.fixture
def nodes(request: pytest.FixtureRequest) -> Iterator[TwoNodes]:
    need_asterisk()
    if mysql_disabled():
        pytest.skip("XVBD_TEST_MYSQL=off: two xvbd processes share one database, which "
                    "only MariaDB serves (SQLite is one process's file); these tests need it")
    tmp = Path(tempfile.mkdtemp(prefix="xvbt2-"))
    made = TwoNodes(tmp)
    yield made
    stopped_and_checked(request, made, tmp, "the two nodes' files")
