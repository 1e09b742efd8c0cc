"""``xvbd-admin check``, for real: the command as a subprocess against a real SQLite file and
MariaDB database, the test Redis, a closed port where Redis or Asterisk should be, and the
test Asterisk manager interface (tests/peers/ami.py) on a real socket, which the command logs
in to while the reactor serves it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from tests.peers.ami import FakeAsterisk
from tests.support.db import drop_database, new_database_url
from tests.support.process import environment
from tests.support.redis import REDIS
from xvbd.config import DatabaseURL
from xvbd.opscheck import TOOLS
from xvbd.store import migrations
from xvbd.store.migrations import open_connection


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def url_text(url: DatabaseURL) -> str:
    if url.backend == "sqlite":
        return f"sqlite:{url.path}"
    auth = f"{url.user}:{url.password}" if url.password else url.user
    return f"mysql://{auth}@{url.host}:{url.port}/{url.name}"


class CheckCase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="xvbd-check-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        (self.tmp / "sounds").mkdir()

    def database(self, backend: str, migrate: bool = True) -> DatabaseURL:
        url = new_database_url(backend, str(self.tmp / "db"))
        self.addCleanup(drop_database, url)
        if migrate:
            migrations.upgrade(url)
        return url

    def write_config(self, url: str, extra: str = "", path: str = "") -> Path:
        conf = self.tmp / "xvb.conf"
        conf.write_text(f"""
[COMMON]
SERVER_ID = NODE-A
{extra}
[DB]
URL = {url}
[CDR]
FILE = {self.tmp / 'log' / 'xvbd.cdr'}
[DEBUG]
FILE = {self.tmp / 'log' / 'xvbd.log'}
[PATH]
SOUND_DIR = {self.tmp / 'sounds'}
{path or f"MEDIA_DIR = {self.tmp / 'media'}"}
""")
        return conf

    async def check(self, conf: Path, *args: str) -> tuple[int, list[str]]:
        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "xvbd.cli", "check", "-c", str(conf),
                                   *args], cwd=self.tmp, env=environment(),
                                  capture_output=True, text=True, timeout=60)
        done = await deferToThread(run)
        return done.returncode, done.stdout.splitlines()

    def line(self, lines: list[str], name: str) -> str:
        found = [line for line in lines
                 if (m := re.match(r"(?:OK  |FAIL) (.+?): ", line)) and m[1] == name]
        self.assertEqual(len(found), 1, f"one line for {name!r} in:\n" + "\n".join(lines))
        return found[0]

    def need_tools(self) -> None:
        missing = [tool for tool, _ in TOOLS if not shutil.which(tool)]
        if missing and os.environ.get("CI") != "true":
            raise SkipTest(f"{', '.join(missing)} not installed (bash .ci/services installs "
                           "them): the all-OK check needs them")

    async def fake_ami(self, secret: str = "xvbsecret") -> FakeAsterisk:
        fake = FakeAsterisk(reactor, secret=secret, failed_login_delay=0.2)
        await fake.start()
        self.addCleanup(fake.stop)
        return fake


class CheckTests(CheckCase):
    async def test_everything_ready_is_one_ok_line_each_and_exit_0(self) -> None:
        self.need_tools()
        url = self.database("sqlite")
        fake = await self.fake_ami()
        host, _, port = REDIS.partition(":")
        conf = self.write_config(url_text(url), extra=f"""
MEM_CACHED_SHARED = redis://{host}:{port or 6379}/0?prefix=xvbd-check:
[ASTERISK]
AMI_HOST = 127.0.0.1
AMI_PORT = {fake.port}
AMI_SECRET = xvbsecret
""")
        code, lines = await self.check(conf)
        self.assertEqual(code, 0, "\n".join(lines))
        self.assertTrue(all(line.startswith("OK   ") for line in lines[:-1]), lines)
        self.assertTrue(lines[-1].endswith("0 FAIL: ready"), lines)
        self.assertIn(f"schema version {migrations.HEAD} (up to date)",
                      self.line(lines, "database"))
        self.assertIn("answers PING", self.line(lines, f"redis {host}:{port or 6379}/0"))
        ami = self.line(lines, f"ami NODE-A 127.0.0.1:{fake.port}")
        self.assertIn("Asterisk Call Manager/11.0.0, logged in as 'xvb'", ami)
        # It logged in the way xvbd does (MD5 after a Challenge), then logged off.
        actions = [dict(fields).get("Action") for _, fields in fake.actions]
        self.assertEqual(actions, ["Challenge", "Login", "Logoff"])
        self.assertIn("does not exist yet; xvbd makes it", self.line(lines, "media directory"))
        self.assertIn("is writable by", self.line(lines, "database directory"))
        for tool, _ in TOOLS:
            self.assertIn(str(shutil.which(tool)), self.line(lines, f"program {tool}"))
        self.assertFalse(list(self.tmp.rglob(".xvbd-check-*")), "probe files are removed")

    async def test_each_failure_is_a_fail_line_saying_what_to_do(self) -> None:
        url = self.database("sqlite")
        fake = await self.fake_ami()
        redis_port = closed_port()
        (self.tmp / "a-file").write_text("not a directory")
        conf = self.write_config(url_text(url), extra=f"""
MEM_CACHED_SHARED = 127.0.0.1:{redis_port}
[ASTERISK]
AMI_HOST = 127.0.0.1
AMI_PORT = {fake.port}
AMI_SECRET = wrong
""", path=f"""
MEDIA_DIR = {self.tmp / 'a-file' / 'media'}
TMP_DIR = {self.tmp / 'a-file'}
""")
        code, lines = await self.check(conf)
        self.assertEqual(code, 1, "\n".join(lines))
        redis = self.line(lines, f"redis 127.0.0.1:{redis_port}/0")
        self.assertTrue(redis.startswith("FAIL"), redis)
        self.assertIn("cannot reach it (Connection refused): start Redis there or fix "
                      "[COMMON] MEM_CACHED_SHARED", redis)
        ami = self.line(lines, f"ami NODE-A 127.0.0.1:{fake.port}")
        self.assertTrue(ami.startswith("FAIL"), ami)
        self.assertIn("the login of 'xvb' was refused (Authentication failed): check "
                      "AMI_USERNAME, AMI_SECRET and AMI_AUTH", ami)
        media = self.line(lines, "media directory")
        self.assertTrue(media.startswith("FAIL") and "install -d" in media, media)
        tmp = self.line(lines, "tmp directory")
        self.assertIn(f"FAIL tmp directory: {self.tmp / 'a-file'} is not a directory: change "
                      "[PATH] TMP_DIR", tmp)
        self.assertTrue(self.line(lines, "database").startswith("OK"))
        failed = sum(line.startswith("FAIL") for line in lines)
        self.assertIn(f", {failed} FAIL", lines[-1])

    async def test_asterisk_not_there_and_other_nodes(self) -> None:
        url = self.database("sqlite")
        fake = await self.fake_ami()
        down = closed_port()
        conf = self.write_config(url_text(url), extra=f"""
[ASTERISK]
AMI_HOST = 127.0.0.1
AMI_PORT = {down}
AMI_SECRET = xvbsecret
""")
        code, lines = await self.check(conf)
        self.assertEqual(code, 1)
        self.assertIn(f"FAIL ami NODE-A 127.0.0.1:{down}: cannot reach it (Connection "
                      "refused): check that Asterisk runs", self.line(lines, f"ami NODE-A "
                                                                      f"127.0.0.1:{down}"))
        # The Nodes list: with --all-nodes every other node's AMI is tried at its Asterisk
        # IP and this file's AMI_PORT.
        conn = open_connection(url)
        conn.execute("INSERT INTO nodes (id, asterisk_ip) VALUES ('NODE-B', '127.0.0.1')")
        conn.execute("INSERT INTO nodes (id) VALUES ('NODE-C')")
        conn.commit()
        conn.close()
        conf = self.write_config(url_text(url), extra=f"""
[ASTERISK]
AMI_HOST = 127.0.0.1
AMI_PORT = {fake.port}
AMI_SECRET = xvbsecret
""")
        code, lines = await self.check(conf, "--all-nodes")
        self.assertEqual(code, 1)
        self.assertTrue(self.line(lines, f"ami NODE-B 127.0.0.1:{fake.port}").startswith("OK"))
        self.assertIn("FAIL ami NODE-C: the node has no Asterisk IP", self.line(lines,
                                                                               "ami NODE-C"))
        # DEFAULT_NODE (the schema's first node, at 127.0.0.1) too.
        self.assertTrue(self.line(lines, f"ami DEFAULT_NODE 127.0.0.1:{fake.port}"
                                  ).startswith("OK"))
        self.assertEqual(len(fake.sessions), 3, "this node's AMI, DEFAULT_NODE's and NODE-B's")

    async def test_mariadb_behind_or_unreachable(self) -> None:
        url = self.database("mysql", migrate=False)
        conf = self.write_config(url_text(url))
        code, lines = await self.check(conf)
        self.assertEqual(code, 1)
        self.assertIn(f"is at schema version 0, this xvbd needs {migrations.HEAD}: back it up "
                      "(`xvbd-admin backup`), then run `xvbd-admin db upgrade`",
                      self.line(lines, "database"))
        migrations.upgrade(url)
        code, lines = await self.check(conf)
        self.assertTrue(self.line(lines, "database").startswith("OK"), lines)
        down = closed_port()
        conf = self.write_config(f"mysql://root@127.0.0.1:{down}/xvb")
        code, lines = await self.check(conf)
        self.assertEqual(code, 1)
        database = self.line(lines, "database")
        self.assertTrue(database.startswith("FAIL database: cannot connect to MariaDB/MySQL "
                                            f"at 127.0.0.1:{down}"), database)

    async def test_a_bad_configuration_is_one_fail_line(self) -> None:
        conf = self.tmp / "xvb.conf"
        conf.write_text("[AGI]\nSHUTDOWN_GRACE = soon\n")
        code, lines = await self.check(conf)
        self.assertEqual(code, 1)
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith(f"FAIL config: {conf} has errors: "), lines)
        self.assertIn("SHUTDOWN_GRACE", lines[0])

