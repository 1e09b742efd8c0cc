"""The process's service plumbing: ordered stop, the AGI drain, and a tree that only builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from xvbd.agi.server import FastAGIFactory
from xvbd.services import OrderedMultiService


class Recorder(Service):
    def __init__(self, name: str, log: list[str], gate: Deferred[None] | None = None) -> None:
        self.name = name
        self.log = log
        self.gate = gate

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.log.append(f"{self.name} stopping")
        if self.gate is None:
            self.log.append(f"{self.name} stopped")
            return None
        return self.gate.addCallback(lambda _: self.log.append(f"{self.name} stopped"))


class OrderedStopTests(TestCase):
    def test_children_stop_one_after_another_in_reverse(self) -> None:
        log: list[str] = []
        gate: Deferred[None] = Deferred()
        top = OrderedMultiService()
        for service in (Recorder("store", log), Recorder("cdr", log), Recorder("agi", log, gate)):
            service.setServiceParent(top)
        top.startService()
        done = top.stopService()
        self.assertEqual(log, ["agi stopping"], "nothing else stops while the calls drain")
        gate.callback(None)
        self.successResultOf(done)
        self.assertEqual(log, ["agi stopping", "agi stopped", "cdr stopping", "cdr stopped",
                               "store stopping", "store stopped"])


class FakeSession:
    """A session as the factory sees it; ``close`` is what xvbd does to end a call."""

    env = None

    def __init__(self, factory: FastAGIFactory) -> None:
        self.factory = factory
        self.closed = 0
        factory.session_started(self)

    def hang_up(self) -> None:
        self.factory.session_ended(self)

    def close(self) -> None:
        self.closed += 1
        self.hang_up()


class DrainTests(TestCase):
    def test_calls_that_end_within_the_grace_are_left_alone(self) -> None:
        clock = Clock()
        factory = FastAGIFactory(object, clock)
        call = FakeSession(factory)
        done = Deferred.fromCoroutine(factory.drain(10))
        clock.advance(3)
        self.assertNoResult(done)
        call.hang_up()
        self.successResultOf(done)
        self.assertEqual(call.closed, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_calls_still_up_after_the_grace_are_finished(self) -> None:
        clock = Clock()
        factory = FastAGIFactory(object, clock)
        calls = [FakeSession(factory), FakeSession(factory)]
        done = Deferred.fromCoroutine(factory.drain(5))
        clock.advance(4.9)
        self.assertNoResult(done)
        clock.advance(0.2)
        self.successResultOf(done)
        self.assertEqual([c.closed for c in calls], [1, 1])
        self.assertEqual(factory.sessions, set())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_nothing_to_drain(self) -> None:
        self.successResultOf(Deferred.fromCoroutine(FastAGIFactory(object, Clock()).drain(5)))


BUILD_ONLY = r"""
import json, os, sys, threading
from twisted.internet import reactor  # installed before makeService, as twistd does
from xvbd import tap

def opened():
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return found

before = opened()
options = tap.Options()
options.parseOptions(["-c", sys.argv[1]])
top = tap.makeService(options)
after = opened()
print(json.dumps({
    "services": sorted(s.name or type(s).__name__ for s in top),
    "threads": sorted(t.name for t in threading.enumerate()),
    "new_fds": sorted(path for fd, path in after.items()
                      if fd not in before and not path.startswith("/proc/")),
    "delayed_calls": len(reactor.getDelayedCalls()),
    "running": reactor.running,
}))
"""


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_make_service_only_builds(tmp_path: Path, backend: str) -> None:
    """twistd calls makeService before it forks into a daemon and before it switches user:
    the whole tree, every optional part configured, must start no thread and open no file,
    pool connection or socket until ``startService`` (a thread made then is gone in the
    daemon; a file made then escapes its umask and --uid)."""
    import json
    import subprocess
    import sys

    from twisted.trial.unittest import SkipTest

    from tests.support.db import drop_database, new_database_url
    from tests.support.process import environment, write_config
    from xvbd.store import migrations

    try:
        url = new_database_url(backend, str(tmp_path / "db"))
    except SkipTest as exc:
        pytest.skip(str(exc))
    migrations.upgrade(url)
    if url.backend == "sqlite":
        db_url = f"sqlite:{url.path}"
    else:
        auth = f"{url.user}:{url.password}" if url.password else url.user
        db_url = f"mysql://{auth}@{url.host}:{url.port}/{url.name}"
    conf = write_config(
        tmp_path, db_url,
        "SEND_TO = FILE, DB, UDP\nUDP_SERVER = 127.0.0.1:9\n"
        "[ASTERISK]\nAMI_HOST = 127.0.0.1\nAMI_SECRET = x\n"
        "[RADIUS]\nACCT_HOST = 127.0.0.1:9\nACCT_SECRET = x\n"
        f"[PATH]\nMEDIA_DIR = {tmp_path / 'media'}\nTMP_DIR = {tmp_path / 'tmp'}\n",
        common="MEM_CACHED_SHARED = 127.0.0.1:9\nUSE_BILLING = 1\n")
    try:
        done = subprocess.run([sys.executable, "-c", BUILD_ONLY, str(conf)], cwd=tmp_path,
                              env=environment(), capture_output=True, text=True, timeout=60)
    finally:
        drop_database(url)
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout.splitlines()[-1])
    assert {"cdr", "counters", "store", "agi", "web", "ami", "radius", "callblast"} <= set(
        built["services"]), built
    assert built["threads"] == ["MainThread"], built
    assert built["new_fds"] == [], built
    assert built["delayed_calls"] == 0 and not built["running"], built
    assert not (tmp_path / "xvbd.cdr").exists() and not (tmp_path / "xvbd.log").exists()
    assert not (tmp_path / "media").exists()
