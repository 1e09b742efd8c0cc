"""The whole rig of the Asterisk tier: a database of its own (SQLite or MariaDB), the real
``twistd xvbd`` process set up as the README says (``xvbd-admin db upgrade``, ``xvbd-admin
demo-tenant``), a private real Asterisk with the shipped files, and a test AMI session to
place calls and watch what Asterisk does.

After the test the rig stops both processes and checks their logs: a WARNING or ERROR of
Asterisk's, or a warning of xvbd's, that the test did not say it expects fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.asterisk.caller import CALLER_CONTEXT, PHONES_CONTEXT, Call
from tests.asterisk.manager import Manager
from tests.asterisk.pbx import Asterisk, NoAsterisk, find_binary, free_port
from tests.asterisk.realtime import install_realtime
from tests.support.db import drop_database, new_database_url
from tests.support.process import Server, admin, write_config
from tests.support.smtp import SMTPServer
from xvbd.config import DatabaseURL

#: xvbd's log lines at WARN and above.
XVBD_PROBLEM = re.compile(r"^\S+ \[[^\]]*#(warn|error|critical)\] (.*)$", re.M)


class Rig:
    def __init__(self, tmp: Path, backend: str, *, url: DatabaseURL | None = None,
                 server_id: str = "TEST-NODE") -> None:
        """``url``: share another rig's database (a second node; this rig then neither sets
        it up nor drops it); ``server_id``: this xvbd's ``[COMMON] SERVER_ID``."""
        self.tmp = tmp
        self.backend = backend
        self.owns_database = url is None
        self.url: DatabaseURL = url or new_database_url(backend, str(tmp / "db"))
        self.server_id = server_id
        self.xvbd_dir = tmp / "xvbd"
        self.xvbd_dir.mkdir()
        self.media = self.xvbd_dir / "media"
        self.heard_dir = tmp / "heard"
        self.heard_dir.mkdir()
        self.agi_port = free_port()
        self.asterisk = Asterisk(tmp / "asterisk", agi_port=self.agi_port)
        self.asterisk.extra_dialplan = CALLER_CONTEXT + PHONES_CONTEXT
        self.phones_dir = tmp / "phones"
        self.phones_dir.mkdir()
        self.asterisk.globals["XVBT_PHONES"] = str(self.phones_dir)
        self.server: Server | None = None
        #: The mail relay xvbd hands voicemail mails to (aiosmtpd, a process of its own).
        self.smtp = SMTPServer(tmp / "mail")
        self.ami: Manager | None = None
        self.calls: list[Call] = []
        self.allowed_asterisk: list[re.Pattern[str]] = []
        self.allowed_xvbd: list[re.Pattern[str]] = []
        self.xvb_extra = ""
        self.xvb_common = ""
        self.media_group = ""  # [PATH] MEDIA_GROUP
        #: The realtime sample Asterisk uses (realtime.py): "" for the backend's own driver
        #: (sqlite3, mysql), "odbc" on MariaDB.
        self.realtime_driver = ""

    # ------------------------------------------------------------------ set up

    @property
    def conf(self) -> Path:
        return self.xvbd_dir / "xvb.conf"

    def write_xvb_conf(self) -> Path:
        ast = self.asterisk
        conf = write_config(self.xvbd_dir, str(self.url), common=self.xvb_common, extra=f"""
[PATH]
MEDIA_DIR = {self.media}
TMP_DIR = {self.xvbd_dir / 'tmp'}
MEDIA_GROUP = {self.media_group}
[ASTERISK]
AMI_HOST = 127.0.0.1
AMI_PORT = {ast.ami_port}
AMI_USERNAME = xvb
AMI_SECRET = {ast.ami_secret}
[EMAIL]
SERVER = 127.0.0.1:{self.smtp.port}
{self.xvb_extra}
""")
        text = conf.read_text().replace(
            "[AGI]\nLISTEN = tcp:0:interface=127.0.0.1",
            f"[AGI]\nLISTEN = tcp:{self.agi_port}:interface=127.0.0.1")
        text = text.replace("[CDR]\n", "[CDR]\nSEND_TO = FILE,DB\n")
        text = text.replace("SERVER_ID = TEST-NODE", f"SERVER_ID = {self.server_id}")
        conf.write_text(text)
        return conf

    def admin(self, *args: str) -> str:
        done = admin(*args, "-c", str(self.conf), cwd=self.xvbd_dir)
        if done.returncode != 0:
            raise AssertionError(f"xvbd-admin {' '.join(args)}: {done.returncode}\n"
                                 f"{done.stdout}{done.stderr}")
        return done.stdout

    def start(self, *, demo: bool = True, before: Callable[[Rig], object] | None = None) -> Rig:
        """Set up as the README says and start both processes; ``before(rig)`` changes the
        database (``rig.query``) once the demo tenant is there and before xvbd reads it."""
        self.write_xvb_conf()
        if self.owns_database:
            self.admin("db", "upgrade")
            if demo:
                self.admin("demo-tenant")
            # The operator serves the default group from this node (SERVER_ID TEST-NODE), as
            # a fresh install does with its DEFAULT_NODE: its CallBlast and Callback calls go
            # out here.
            self.query("UPDATE user_groups SET server_id = ? WHERE id = 1", self.server_id)
        if before is not None:
            before(self)
        self.smtp.start()
        self.server = Server(self.conf, self.xvbd_dir).wait_started()
        install_realtime(self.asterisk, self.url, driver=self.realtime_driver)
        self.asterisk.start()
        self.ami = Manager(self.asterisk.ami_port, "tester", self.asterisk.ami_secret)
        self.wait_xvbd_ami()
        return self

    def wait_xvbd_ami(self, timeout: float = 30.0) -> None:
        """Until xvbd has logged in to this Asterisk's AMI (it started first and retries
        with back-off): a test then never ends while that login is still in flight."""
        deadline = time.monotonic() + timeout
        while "AMI connected to" not in self.xvbd_log():
            if time.monotonic() > deadline:
                raise AssertionError(f"xvbd did not log in to the AMI in {timeout} s:\n"
                                     + self.xvbd_log()[-3000:])
            time.sleep(0.1)

    # ------------------------------------------------------------------ calls

    def call(self, number: str, **options: Any) -> Call:
        assert self.ami is not None
        call = Call(self.ami, number, self.heard_dir, log=self.asterisk.logs / "full",
                    **options)
        self.calls.append(call)
        return call

    def phone(self, number: str, does: str) -> None:
        """What the phone ``number`` does when xvbd dials it (see ``PHONES_CONTEXT``)."""
        assert self.ami is not None
        reply = self.ami.action("Setvar", Variable=f"XVBT_PHONE_{number}", Value=does)
        assert reply.get("Response") == "Success", reply

    def wait_phone(self, number: str, event: str = "XvbtPhoneRang", *, after: int = 0,
                   timeout: float = 20.0) -> dict[str, str]:
        """The phone's ``XvbtPhoneRang`` (or ``XvbtPhoneUp``) event: it rang (answered)."""
        assert self.ami is not None
        _, found = self.ami.wait_for(
            lambda e: e.get("Event") == "UserEvent" and e.get("UserEvent") == event
            and e.get("Phone") == number, timeout, after=after, what=f"{event} {number}")
        return found

    def phones_rung(self, after: int = 0) -> list[dict[str, str]]:
        assert self.ami is not None
        return [e for e in self.ami.events[after:] if e.get("Event") == "UserEvent"
                and e.get("UserEvent") == "XvbtPhoneRang"]

    # ------------------------------------------------------------------ what is stored

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read (or, before xvbd starts, change) the database; ``?`` placeholders."""
        if self.url.backend == "sqlite":
            conn = sqlite3.connect(str(self.url.path))
            try:
                with conn:
                    return list(conn.execute(sql, args))
            finally:
                conn.close()
        import pymysql

        conn = pymysql.connect(host=self.url.host, port=self.url.port, user=self.url.user,
                               password=self.url.password, database=self.url.name,
                               autocommit=True)
        try:
            cursor = conn.cursor()
            cursor.execute(sql.replace("?", "%s"), args)
            return list(cursor.fetchall())
        finally:
            conn.close()

    def settings_of(self, path: str) -> dict[str, Any]:
        """The demo tenant's extension at ``path`` (``9*4``): its settings."""
        return json.loads(self._extension(path)[1])

    def change_extension(self, path: str, **settings: Any) -> None:
        """Change settings of the demo tenant's extension at ``path`` (before the start)."""
        ext_id, raw = self._extension(path)
        merged = {**json.loads(raw), **settings}
        self.query("UPDATE extensions SET settings = ? WHERE id = ?", json.dumps(merged), ext_id)

    def _extension(self, path: str) -> tuple[int, str]:
        rows = self.query("SELECT id, settings FROM extensions WHERE user_id = 1 AND path = ?",
                          path)
        assert rows, f"the demo tenant has no extension {path!r}"
        return rows[0][0], rows[0][1]

    def cdr_lines(self) -> list[str]:
        path = self.xvbd_dir / "xvbd.cdr"
        return path.read_text().splitlines() if path.exists() else []

    def wait_cdr(self, match: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        """CDR file lines containing ``match``, once at least ``count`` are there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line for line in self.cdr_lines() if match in line]
            if len(lines) >= count:
                return lines
            time.sleep(0.1)
        raise AssertionError(f"no CDR line with {match!r} in {timeout} s:\n"
                             + "\n".join(self.cdr_lines()))

    def xvbd_log(self) -> str:
        path = self.xvbd_dir / "xvbd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------ the end

    def expect_asterisk(self, *patterns: str) -> None:
        self.allowed_asterisk.extend(re.compile(p) for p in patterns)

    def expect_xvbd(self, *patterns: str) -> None:
        self.allowed_xvbd.extend(re.compile(p) for p in patterns)

    def xvbd_problems(self) -> list[str]:
        return [m.group(0) for m in XVBD_PROBLEM.finditer(self.xvbd_log())
                if not any(p.search(m.group(0)) for p in self.allowed_xvbd)]

    def stop(self) -> None:
        for call in self.calls:
            try:
                call.hang_up()
            except (AssertionError, OSError):
                pass
        if self.ami is not None:
            self.ami.close()
        try:
            if self.server is not None:
                self.server.terminate(timeout=15)
        finally:
            self.asterisk.stop()
            self.smtp.stop()
            if self.owns_database:
                drop_database(self.url)

    def check_logs(self) -> None:
        problems = self.asterisk.problems(self.allowed_asterisk)
        problems += [f"xvbd: {line}" for line in self.xvbd_problems()]
        if problems:
            raise AssertionError("unexpected warnings or errors:\n" + "\n".join(problems))


def steps_text(call: Call) -> str:
    """The call's AGI dialogue for an assertion's message."""
    wire = call.wire()
    if wire:
        return "\n".join(f"{c} -> {r}" for c, r in wire)
    return "\n".join(f"{s.seconds:6.2f}s {s.command} -> {s.result}" for s in call.steps())


def commands_matching(call: Call, prefix: str) -> list[str]:
    return [c for c in call.commands() if c.upper().startswith(prefix.upper())]


def pressed(call: Call, pairs: Iterable[tuple[str, str]]) -> None:
    """Answer a sequence of prompts: (AGI command prefix, keys)."""
    for command, keys in pairs:
        call.answer_prompt(command, keys)


def need_asterisk() -> None:
    """Skip without an Asterisk binary; under ``CI=true`` its absence is a failure."""
    try:
        find_binary()
    except NoAsterisk as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Asterisk tier is required under CI=true: {exc}")
        pytest.skip(str(exc))


class Checked(Protocol):
    def stop(self) -> None: ...
    def check_logs(self) -> None: ...


def stopped_and_checked(request: pytest.FixtureRequest, made: Checked, tmp: Path,
                        what: str) -> None:
    """A fixture's end: stop ``made``; when the test passed, its logs must have no
    unexpected warning, and ``tmp`` is removed; else ``tmp`` is kept and said where."""
    passed = not getattr(request.node, "rep_call_failed", True)
    try:
        made.stop()
        if passed:
            made.check_logs()
    except BaseException:
        passed = False
        raise
    finally:
        if passed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"{what} are kept in {tmp}")
