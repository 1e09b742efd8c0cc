"""Two xvbd processes on one MariaDB and one Redis: a group's limit of concurrent calls holds
across them, and the calls of a process that is killed stop counting once their lease ends."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pymysql
import pytest

from tests.peers.agi import environment
from tests.support.db import drop_database, mysql_disabled, new_database_url
from tests.support.process import Server, admin, write_config
from tests.support.redis import REDIS, new_prefix
from xvbd.config import DatabaseURL
from xvbd.store import migrations


def url_text(url: DatabaseURL) -> str:
    auth = f"{url.user}:{url.password}" if url.password else url.user
    return f"mysql://{auth}@{url.host}:{url.port}/{url.name}"


def hold_a_call(port: int) -> socket.socket:
    """A call to DID 100 that stays in its menu (Asterisk never answers the WAIT FOR DIGIT)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall("".join(f"agi_{k}: {v}\n" for k, v in environment(
        "ivr", args=("100", "127.0.0.1"))).encode() + b"\n")
    f = sock.makefile("rb")
    while True:
        line = f.readline()
        assert line, "xvbd closed the call"
        if line.startswith(b"WAIT FOR DIGIT"):
            return sock
        reply = b"200 result=1\n" if line.startswith(b"SET") else b"200 result=0 endpos=1\n"
        if line.startswith(b"ANSWER"):
            reply = b"200 result=0\n"
        sock.sendall(reply)


def busy_or_served(port: int) -> str:
    """Call DID 100 and press * at once; 'BUSY' if xvbd says all lines are busy."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall("".join(f"agi_{k}: {v}\n" for k, v in environment(
        "ivr", args=("100", "127.0.0.1"))).encode() + b"\n")
    f = sock.makefile("rb")
    heard = []
    while True:
        line = f.readline()
        if not line:
            break
        heard.append(line)
        if line.startswith(b"STREAM FILE"):
            sock.sendall(b"200 result=0 endpos=1\n")
        elif line.startswith(b"HANGUP"):
            sock.sendall(b"200 result=1\nHANGUP\n")
        elif line.startswith(b"WAIT FOR DIGIT"):
            sock.close()
            return "SERVED"
        else:
            sock.sendall(b"200 result=1\n")
    sock.close()
    return "BUSY" if any(b"tt-allbusy" in h for h in heard) else "SERVED"


@pytest.mark.skipif(mysql_disabled(), reason="XVBD_TEST_MYSQL=off")
def test_a_group_limit_across_two_processes_and_a_killed_one(tmp_path: Path) -> None:
    url = new_database_url("mysql", str(tmp_path / "db"))
    try:
        migrations.upgrade(url)
        prefix = new_prefix()
        shared = f"MEM_CACHED_SHARED = redis://{REDIS}/0?prefix={prefix}"
        dirs = [tmp_path / "a", tmp_path / "b"]
        for d in dirs:
            d.mkdir()
        confs = [write_config(d, url_text(url), "[TIMEOUT]\nCOUNTER_LEASE = 3\n", shared)
                 for d in dirs]
        assert admin("demo-tenant", "-c", str(confs[0]), cwd=dirs[0]).returncode == 0
        conn = pymysql.connect(host=url.host, port=url.port, user=url.user,
                               password=url.password, database=url.name, autocommit=True)
        conn.cursor().execute("UPDATE user_groups SET max_inbound_calls = 1 WHERE id = 1")
        conn.close()
        servers = [Server(conf, d) for conf, d in zip(confs, dirs, strict=True)]
        try:
            for server in servers:
                server.wait_started()
            held = hold_a_call(servers[0].agi_port)
            assert busy_or_served(servers[1].agi_port) == "BUSY", "one call in the group"
            servers[0].proc.send_signal(signal.SIGKILL)
            servers[0].proc.wait()
            held.close()
            assert busy_or_served(servers[1].agi_port) == "BUSY", "the lease still runs"
            deadline = time.monotonic() + 10
            while busy_or_served(servers[1].agi_port) == "BUSY":
                assert time.monotonic() < deadline, "the dead process's call never expired"
                time.sleep(0.5)
        finally:
            for server in servers:
                server.kill()
        outputs = servers[1].output()
        assert "Traceback" not in outputs, outputs
    finally:
        drop_database(url)
