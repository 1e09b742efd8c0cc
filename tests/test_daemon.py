"""Daemon mode, for real: ``twistd xvbd -c FILE`` without ``-n`` (double fork, pidfile,
logfile, umask 0077) serves a call, writes it to every CDR sink, closes the call's socket,
reloads on SIGHUP, drains on SIGTERM within ``[AGI] SHUTDOWN_GRACE`` and exits 0, as
``twistd -n`` does."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.agi import Caller, environment
from tests.support.daemon import Daemon
from tests.support.db import drop_database, new_database_url
from tests.support.process import admin, call_process, write_config
from xvbd.config import DatabaseURL
from xvbd.store import migrations

GRACE = 1  # [AGI] SHUTDOWN_GRACE of write_config
CALL_TYPES = ["Playback", "DateTime", "Playback", "VoiceMail", "XVB"]


@pytest.fixture(params=["sqlite", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseURL:
    from twisted.trial.unittest import SkipTest

    try:
        url = new_database_url(request.param, str(tmp_path / "db"))
    except SkipTest as exc:
        pytest.skip(str(exc))
    request.addfinalizer(lambda: drop_database(url))
    return url


def url_text(url: DatabaseURL) -> str:
    if url.backend == "sqlite":
        return f"sqlite:{url.path}"
    auth = f"{url.user}:{url.password}" if url.password else url.user
    return f"mysql://{auth}@{url.host}:{url.port}/{url.name}"


def query(url: DatabaseURL, sql: str) -> list[tuple[Any, ...]]:
    if url.backend == "sqlite":
        with sqlite3.connect(str(url.path)) as connection:
            return list(connection.execute(sql).fetchall())
    import pymysql

    connection = pymysql.connect(host=url.host, port=url.port, user=url.user,
                                 password=url.password or "", database=url.name)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def collector() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def datagrams(sock: socket.socket, n: int) -> list[str]:
    return [sock.recv(65536).decode() for _ in range(n)]


def one_call(port: int) -> Any:
    """The demo tenant's voicemail call; returns the peer after xvbd closed the socket."""
    peer = call_process(port, environment("ivr", args=("613", "10.9.9.9")),
                        Caller(keys=["10001", "911", "2", "1", "#"]), timeout=10)
    assert peer.commands[-2:] == ['STREAM FILE vm-msgsaved ""', "HANGUP"], peer.commands
    assert not peer.transport.closed, "the peer never closes: the socket's end came from xvbd"
    return peer


def call_id(lines: list[str]) -> str:
    ids = {re.search(r"CALL_ID=(\w+)", line)[1] for line in lines}  # type: ignore[index]
    assert len(ids) == 1, lines
    return ids.pop()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} within {timeout} s")


def test_a_daemon_serves_writes_every_sink_reloads_and_stops(
        database: DatabaseURL, tmp_path: Path) -> None:
    migrations.upgrade(database)
    udp = collector()
    conf = write_config(tmp_path, url_text(database),
                        f"SEND_TO = FILE, DB, UDP\nUDP_SERVER = 127.0.0.1:{udp.getsockname()[1]}\n")
    assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
    daemon = Daemon(conf, tmp_path)
    try:
        daemon.start()
        assert os.getsid(daemon.pid) not in (os.getsid(0), daemon.pid), \
            "the daemon runs in a session of its own, which it does not lead (no terminal)"
        cdr_file, log_file = tmp_path / "xvbd.cdr", tmp_path / "xvbd.log"
        assert stat.S_IMODE(cdr_file.stat().st_mode) == 0o600, \
            "the CDR file was opened by the daemon, under twistd's umask 0077"

        one_call(daemon.agi_port)
        first = cdr_file.read_text().splitlines()
        assert [re.search(r", TYPE=(\w+)", line)[1] for line in first] == CALL_TYPES  # type: ignore[index]
        first_id = call_id(first)
        assert sorted(datagrams(udp, len(first))) == sorted(first)
        rows = query(database, f"SELECT type FROM cdrs WHERE call_id = '{first_id}' ORDER BY id")
        assert [r[0] for r in rows] == CALL_TYPES

        # A log rotation: the files are moved away, the configuration changes, SIGHUP.
        cdr_file.rename(tmp_path / "xvbd.cdr.1")
        log_file.rename(tmp_path / "xvbd.log.1")
        conf.write_text(conf.read_text().replace("[DEBUG]\n", "[DEBUG]\nLEVEL = 31\n")
                        .replace("SHUTDOWN_GRACE = 1\n", "SHUTDOWN_GRACE = 30\n"))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "xvbd reloaded" in daemon.log(), 10, "no reload line")
        assert f"xvbd reloaded {conf}: [DEBUG] LEVEL = 31; log and CDR files reopened; " \
            "changes in [AGI] take effect at the next start" in daemon.log()
        assert "xvbd reloaded" in log_file.read_text(), "[DEBUG] FILE was opened anew"
        assert cdr_file.exists() and stat.S_IMODE(cdr_file.stat().st_mode) == 0o600
        assert daemon.exited() is None, "SIGHUP does not stop the daemon"

        one_call(daemon.agi_port)
        second = cdr_file.read_text().splitlines()
        second_id = call_id(second)
        assert second_id != first_id and len(second) == len(CALL_TYPES)
        assert (tmp_path / "xvbd.cdr.1").read_text().splitlines() == first, \
            "the rotated file got nothing more"
        assert "#debug]" not in (tmp_path / "xvbd.log.1").read_text()
        assert "#debug]" in log_file.read_text(), "LEVEL = 31 lets the debug events through"
        assert sorted(datagrams(udp, len(second))) == sorted(second)
        rows = query(database, "SELECT call_id, COUNT(*) FROM cdrs GROUP BY call_id")
        assert sorted(rows) == sorted([(first_id, 5), (second_id, 5)])

        code, took = daemon.terminate()
    finally:
        daemon.kill()
        udp.close()
    log = daemon.log()
    print(f"idle daemon stopped in {took:.3f} s")
    assert code == 0, log
    assert took < GRACE + 2, f"stopped in {took:.2f} s"
    assert not daemon.pidfile.exists(), "twistd removed its pidfile"
    assert "xvbd stopping" in log and "xvbd stopped" in log and "Server Shut Down" in log
    assert "Traceback" not in log and "Unhandled" not in log, log


def test_a_call_in_progress_at_sigterm_gets_the_grace(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    daemon = Daemon(write_config(tmp_path, url_text(url)), tmp_path)
    try:
        daemon.start()
        call = socket.create_connection(("127.0.0.1", daemon.agi_port), timeout=5)
        call.sendall(b"agi_network: yes\nagi_request: agi://127.0.0.1/main\n")
        time.sleep(0.2)
        code, took = daemon.terminate()
        call.settimeout(1)
        assert call.recv(100) == b"", "xvbd closed the call's socket itself"
        call.close()
    finally:
        daemon.kill()
    print(f"daemon with a call in progress stopped in {took:.3f} s")
    assert code == 0, daemon.log()
    assert GRACE <= took < GRACE + 2, f"stopped in {took:.2f} s"
    assert "ending 1 call(s) still in progress" in daemon.log()
    assert not daemon.pidfile.exists()


def test_a_reload_with_a_broken_configuration_changes_nothing(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    conf = write_config(tmp_path, url_text(url))
    daemon = Daemon(conf, tmp_path)
    try:
        daemon.start()
        conf.write_text(conf.read_text().replace("[DEBUG]\n", "[DEBUG]\nLEVEL = loud\n"))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "reload:" in daemon.log(), 10, "no reload line")
        assert f"reload: {conf} has errors, nothing changed" in daemon.log()
        with socket.create_connection(("127.0.0.1", daemon.agi_port), timeout=5):
            pass
        code, _ = daemon.terminate()
    finally:
        daemon.kill()
    assert code == 0, daemon.log()


def test_a_daemon_switched_to_another_user_writes_its_files_as_that_user() -> None:
    """``--uid``/``--gid``: twistd opens the ports as root, then switches; the CDR file, the
    log and the recordings are made after the switch, so they belong to the service's user
    (who can then also write them after a restart and remove the pidfile)."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("switching user needs root")
    nobody = 65534
    # Not under pytest's tmp_path: its parents are root's alone, and the user must reach it.
    workdir = Path(tempfile.mkdtemp(prefix="xvbd-daemon-uid-"))
    try:
        url = new_database_url("sqlite", str(workdir / "db"))
        migrations.upgrade(url)
        conf = write_config(workdir, url_text(url),
                            f"[PATH]\nMEDIA_DIR = {workdir / 'media'}\nTMP_DIR = {workdir / 'tmp'}\n")
        assert admin("demo-tenant", "-c", str(conf), cwd=workdir).returncode == 0
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, nobody, nobody)
        daemon = Daemon(conf, workdir, f"--uid={nobody}", f"--gid={nobody}")
        try:
            daemon.start()
            one_call(daemon.agi_port)
            lines = (workdir / "xvbd.cdr").read_text().splitlines()
            assert [re.search(r", TYPE=(\w+)", line)[1] for line in lines] == CALL_TYPES  # type: ignore[index]
            owners = {p.name: (p.stat().st_uid, p.stat().st_gid)
                      for p in [workdir / "xvbd.cdr", workdir / "xvbd.log",
                                *(workdir / "media").rglob("*")]}
            assert set(owners.values()) == {(nobody, nobody)}, owners
            code, took = daemon.terminate()
        finally:
            daemon.kill()
        assert code == 0, daemon.log()
        assert took < GRACE + 2
        assert f"set uid/gid {nobody}/{nobody}" in daemon.log()
        assert not daemon.pidfile.exists(), "the user removed the pidfile in its directory"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_daemon_that_cannot_start_says_so_and_leaves_no_pidfile(tmp_path: Path) -> None:
    """A configuration with errors is found before twistd forks: exit 2, the problems on
    stderr.  A port in use is found after the fork: the waiting parent says so and exits 1
    (before, it waited forever: the daemon's SystemExit never reached it), the log has the
    whole message, and the pidfile is gone."""
    import subprocess

    from tests.support.process import BIN
    from tests.support.process import environment as process_environment

    def twistd(conf: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "twistd"), f"--pidfile={tmp_path / 'twistd.pid'}",
                               f"--logfile={tmp_path / 'twistd.log'}", "xvbd", "-c", str(conf)],
                              cwd=tmp_path, env=process_environment(), capture_output=True,
                              text=True, timeout=30)

    (tmp_path / "bad.conf").write_text("[CDR]\nSEND_TO = FTP\n")
    bad = twistd(tmp_path / "bad.conf")
    assert bad.returncode == 2, bad
    assert "[CDR] SEND_TO: unknown sink 'FTP'; use FILE, UDP, DB or NONE" in bad.stderr

    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        conf = write_config(tmp_path, url_text(url))
        conf.write_text(conf.read_text().replace(
            "LISTEN = tcp:0:interface=127.0.0.1\nSHUTDOWN", f"LISTEN = {port}\nSHUTDOWN"))
        started = time.monotonic()
        result = twistd(conf)
        took = time.monotonic() - started
    finally:
        busy.close()
    assert result.returncode == 1, result
    assert took < 15
    assert f"cannot listen on [AGI] LISTEN = tcp:{port}" in result.stderr
    assert "Please look at log file" in result.stderr
    log = (tmp_path / "twistd.log").read_text()
    assert f"xvbd: cannot start: cannot listen on [AGI] LISTEN = tcp:{port}" in log
    assert "change [AGI] LISTEN" in log
    assert not (tmp_path / "twistd.pid").exists()


def test_a_daemon_on_redis_names_its_leases_after_itself_and_gives_them_back(
        tmp_path: Path) -> None:
    """``[COMMON] MEM_CACHED_SHARED``: the Redis pool is opened by the daemon, the leases of
    its calls carry the daemon's own pid (known only after the fork), and a call still up at
    SIGTERM is ended after the grace and its lease given back before the process exits."""
    import shutil
    import subprocess

    from tests.support.redis import RedisServer, new_prefix
    from tests.test_process_shared import hold_a_call

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server and redis-cli are needed")
        pytest.skip("needs redis-server and redis-cli")
    redis = RedisServer(str(tmp_path)).start()

    def cli(*args: str) -> list[str]:
        return subprocess.run(["redis-cli", "-p", str(redis.port), "--raw", *args],
                              capture_output=True, text=True, check=True).stdout.split()

    try:
        url = new_database_url("sqlite", str(tmp_path / "db"))
        migrations.upgrade(url)
        prefix = new_prefix()
        conf = write_config(tmp_path, url_text(url), "",
                            f"MEM_CACHED_SHARED = redis://127.0.0.1:{redis.port}/0?prefix={prefix}")
        assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
        daemon = Daemon(conf, tmp_path)
        try:
            daemon.start()
            call = hold_a_call(daemon.agi_port)
            keys = cli("KEYS", prefix + "*")
            leases = [member for key in keys if cli("TYPE", key) == ["zset"]
                      for member in cli("ZRANGE", key, "0", "-1")]
            assert leases, keys
            assert all(m.startswith(f"TEST-NODE:{daemon.pid}:") for m in leases), leases
            code, took = daemon.terminate()
            call.settimeout(2)
            while call.recv(65536):  # what xvbd still says, then its end of the socket
                pass
            call.close()
        finally:
            daemon.kill()
        print(f"daemon on Redis with a call in progress stopped in {took:.3f} s")
        assert code == 0, daemon.log()
        assert GRACE <= took < GRACE + 2
        left = [member for key in cli("KEYS", prefix + "*") if cli("TYPE", key) == ["zset"]
                for member in cli("ZRANGE", key, "0", "-1")]
        assert left == [], "the ended call gave its lease back"
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        redis.kill()
