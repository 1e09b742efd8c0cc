"""The real process killed with SIGKILL mid-call, then started again (on SQLite and on
MariaDB): the money the call held is back within the lease (3 heartbeats) less what the
call is known to have cost, and the books show the call once, as a RESULT=CUT summary in
the database and in the CDR file."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers.agi import environment
from tests.support.db import drop_database, new_database_url
from tests.support.process import Server, admin, write_config
from xvbd.config import DatabaseURL
from xvbd.store import migrations

PER_MINUTE, PER_CALL = 6000, 500  # 0.60 a minute, 0.05 a call
BALANCE = 100_000  # 10.00
HEARTBEAT = 1
LEASE = 3 * HEARTBEAT


def query(url: DatabaseURL, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    conn = migrations.open_connection(url)
    try:
        return migrations.with_transaction(url, conn, lambda txn: txn.all(sql, params))
    finally:
        conn.close()


def execute(url: DatabaseURL, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = migrations.open_connection(url)
    try:
        migrations.with_transaction(url, conn, lambda txn: txn.execute(sql, params))
    finally:
        conn.close()


def call_into_menu(port: int) -> socket.socket:
    """A call to DID 100 answered like Asterisk until xvbd plays the menu and waits for a
    key: the caller is then listening, and the call is in progress until the socket goes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall("".join(f"agi_{k}: {v}\n" for k, v in environment(
        "ivr", args=("100", "127.0.0.1"))).encode() + b"\n")
    reader = sock.makefile("rb")
    while True:
        line = reader.readline().decode().strip()
        assert line, "xvbd closed the call before its menu"
        if line.startswith("STREAM FILE demo-instruct"):
            return sock  # no answer: the menu plays on
        sock.sendall(b"200 result=0 endpos=1\n" if line.startswith("STREAM") else
                     b"200 result=1\n")


def wait_for(condition: Any, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, what
        time.sleep(0.1)
    return time.monotonic() - began


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_sigkill_mid_call_is_settled_at_the_next_start(tmp_path: Path, backend: str) -> None:
    url = new_database_url(backend, str(tmp_path / "db"))
    try:
        migrations.upgrade(url)
        db_url = f"sqlite:{url.path}" if backend == "sqlite" else str(url)
        conf = write_config(tmp_path, db_url, extra=f"SEND_TO = FILE,DB\n[TIMEOUT]\n"
                            f"HEARTBEAT = {HEARTBEAT}\n", common="USE_BILLING = 1")
        assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
        execute(url, "UPDATE tariffs SET ivr_minute = ?, ivr_call = ?, daily_fee = 0, "
                "monthly_fee = 0", (PER_MINUTE, PER_CALL))
        execute(url, "UPDATE users SET balance = ?", (BALANCE,))
        first = Server(conf, tmp_path).wait_started()
        try:
            sock = call_into_menu(first.agi_port)
            [hold] = query(url, "SELECT * FROM balance_holds")
            held = PER_CALL + PER_MINUTE  # the call price and its first minute
            assert hold["amount"] == held
            [user] = query(url, "SELECT id, balance FROM users")
            assert user["balance"] == BALANCE - held
            time.sleep(3.5)  # the call goes on for a few heartbeats
            first.proc.kill()  # SIGKILL: no stop work, no settle, no record
            first.proc.wait()
            killed_at = time.monotonic()
            sock.close()
        finally:
            first.kill()
        [dead] = query(url, "SELECT * FROM processes WHERE instance = ?", (hold["instance"],))
        assert dead["stopped_at"] == 0 and dead["seen_at"] > hold["started_at"], (dead, hold)
        assert query(url, "SELECT call_id FROM balance_holds") != [], "still held after the kill"

        second = Server(conf, tmp_path).wait_started()
        try:
            # within the lease of the dead process's last heartbeat (and one heartbeat of
            # the new process): xvbd's own start may take longer than that
            wait_for(lambda: not query(url, "SELECT call_id FROM balance_holds"),
                     max(0.0, killed_at + LEASE + 2 * HEARTBEAT - time.monotonic()) + 1.5,
                     "the hold outlived the lease")
            code, _ = second.terminate(timeout=10)
            assert code == 0
        finally:
            second.kill()

        call_id = hold["call_id"]
        seconds = dead["seen_at"] - hold["started_at"]  # until its last heartbeat
        cost = PER_CALL + -(-PER_MINUTE * seconds // 60)
        [user] = query(url, "SELECT balance FROM users")
        assert user["balance"] == BALANCE - cost, (user, cost, seconds)
        ops = query(url, "SELECT amount, reason FROM balance_ops WHERE call_id = ? "
                    "ORDER BY id", (call_id,))
        assert [(op["amount"], op["reason"]) for op in ops] == [
            (-held, "call: held"), (held - cost, "call cut: unused hold returned")]
        rows = query(url, "SELECT record_id, type, cost, server_id, subscr_id, start_timestamp,"
                     " stop_timestamp, data FROM cdrs WHERE call_id = ? AND type = 'XVB'",
                     (call_id,))
        assert rows == [{"record_id": f"{call_id}:cut", "type": "XVB", "cost": cost,
                         "server_id": "TEST-NODE", "subscr_id": 1,
                         "start_timestamp": hold["started_at"],
                         "stop_timestamp": dead["seen_at"], "data": "DTMF=, RESULT=CUT"}]
        lines = [line for line in (tmp_path / "xvbd.cdr").read_text().splitlines()
                 if f"CALL_ID={call_id}" in line and "TYPE=XVB" in line]
        assert len(lines) == 1 and lines[0].endswith("DATA=DTMF=, RESULT=CUT"), lines
        assert f"COST={cost / 10_000:g}, " in lines[0]
        log = (tmp_path / "xvbd.log").read_text()
        said = [line for line in log.splitlines() if f"call {call_id}" in line]
        assert len(said) == 1 and "was cut when its xvbd" in said[0], said
        assert re.search(r"kept 0\.\d+, returned 0\.\d+", said[0]), said
        assert "Check why that xvbd died" in said[0]
        assert "Traceback" not in log
    finally:
        drop_database(url)
