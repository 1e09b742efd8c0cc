"""The one process, for real: twistd starts it, both ports answer, SIGTERM stops it cleanly;
a bad configuration or an unreachable database stops it before any port opens."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.db import drop_database, new_database_url
from tests.support.process import Server, admin, run_to_exit, write_config
from xvbd.config import DatabaseURL
from xvbd.store import migrations


@pytest.fixture(params=["sqlite", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseURL:
    from twisted.trial.unittest import SkipTest

    try:
        url = new_database_url(request.param, str(tmp_path / "db"))
    except SkipTest as exc:
        pytest.skip(str(exc))
    request.addfinalizer(lambda: drop_database(url))
    return url


def mysql_url_text(url: DatabaseURL) -> str:
    auth = f"{url.user}:{url.password}" if url.password else url.user
    return f"mysql://{auth}@{url.host}:{url.port}/{url.name}"


def url_text(url: DatabaseURL) -> str:
    return f"sqlite:{url.path}" if url.backend == "sqlite" else mysql_url_text(url)


def get_json(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_start_serve_and_stop_on_sigterm(database: DatabaseURL, tmp_path: Path) -> None:
    migrations.upgrade(database)
    server = Server(write_config(tmp_path, url_text(database)), tmp_path)
    try:
        server.wait_started()
        assert (server.server_id, server.backend) == ("TEST-NODE", database.backend)
        status, body = get_json(server.web_port, "/healthz")
        assert status == 200
        assert body["status"] == "ok" and body["server_id"] == "TEST-NODE"
        assert body["db"] == {**body["db"], "backend": database.backend, "reachable": True,
                              "schema_version": migrations.HEAD}
        with socket.create_connection(("127.0.0.1", server.agi_port), timeout=5):
            pass
        code, took = server.terminate()
    finally:
        server.kill()
    assert code == 0, server.output()
    assert took < 5
    out = server.output()
    assert "xvbd stopping" in out and "Main loop terminated" in out
    assert "Traceback" not in out, out
    assert "started: server_id=TEST-NODE" in (tmp_path / "xvbd.log").read_text(), \
        "[DEBUG] SEND_TO=FILE writes the log file"


def test_a_real_call_through_the_process(database: DatabaseURL, tmp_path: Path) -> None:
    from tests.peers.agi import Caller, environment
    from tests.support.process import call_process

    migrations.upgrade(database)
    conf = write_config(tmp_path, url_text(database))
    seeded = admin("demo-tenant", "-c", str(conf), cwd=tmp_path)
    assert seeded.returncode == 0 and "demo tenant created" in seeded.stdout, seeded
    again = admin("demo-tenant", "-c", str(conf), cwd=tmp_path)
    assert "demo tenant already there" in again.stdout
    server = Server(conf, tmp_path)
    try:
        server.wait_started()
        peer = call_process(server.agi_port, environment("ivr", args=("613", "10.9.9.9")),
                            Caller(keys=["10001", "911", "2", "1", "#"]))
        metrics = scrape_metrics(server.web_port)
        code, _ = server.terminate()
    finally:
        server.kill()
    assert code == 0
    assert peer.commands[:3] == ["ANSWER", 'SET VARIABLE CHANNEL(language) "en_xvb.EN-Female"',
                                 "GET DATA agent-user 9000 16"]
    assert any(c.startswith("SAY DATETIME") for c in peer.commands)
    assert any(c.startswith("RECORD FILE") for c in peer.commands)
    assert peer.commands[-2:] == ['STREAM FILE vm-msgsaved ""', "HANGUP"]
    cdr = (tmp_path / "xvbd.cdr").read_text().splitlines()
    assert [re.search(r", TYPE=(\w+)", line)[1] for line in cdr] == [
        "Playback", "DateTime", "Playback", "VoiceMail", "XVB"]
    assert all("CALLER_ID=6135550123@10.9.9.9, " in line for line in cdr)
    # /metrics of the process, read right after the call (its records were written first)
    assert metrics[("xvbd_calls_finished_total", (("result", "OK"),))] == 1
    assert metrics[("xvbd_calls_in_progress", ())] == 0
    assert metrics[("xvbd_agi_turnaround_seconds_count", ())] == len(peer.commands)
    assert metrics[("xvbd_db_pool_wait_seconds_count", ())] > 0
    assert metrics[("xvbd_reactor_lag_max_seconds", ())] < 1


def scrape_metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The process's /metrics, parsed by prometheus_client: value by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_call_in_progress_is_ended_when_the_grace_runs_out(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    server = Server(write_config(tmp_path, url_text(url)), tmp_path)
    try:
        server.wait_started()
        call = socket.create_connection(("127.0.0.1", server.agi_port), timeout=5)
        call.sendall(b"agi_network: yes\nagi_request: agi://127.0.0.1/main\n")
        time.sleep(0.2)
        code, took = server.terminate()
        call.settimeout(1)
        assert call.recv(100) == b"", "xvbd closed the call's socket itself"
        call.close()
    finally:
        server.kill()
    assert code == 0
    assert 1 <= took < 5, "the call got [AGI] SHUTDOWN_GRACE = 1 s, then was ended"
    assert "ending 1 call(s) still in progress" in server.output()


def test_healthz_says_503_when_the_database_is_gone(tmp_path: Path) -> None:
    url = new_database_url("mysql", str(tmp_path / "db"))
    migrations.upgrade(url)
    server = Server(write_config(tmp_path, url_text(url)), tmp_path)
    try:
        server.wait_started()
        assert get_json(server.web_port, "/healthz")[0] == 200
        drop_database(url)
        status, body = get_json(server.web_port, "/healthz")
        assert status == 503 and body["status"] == "unavailable"
        assert "schema version 0, this xvbd needs" in body["db"]["error"]
    finally:
        server.kill()


def test_a_broken_config_exits_before_opening_a_port(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    conf = tmp_path / "xvb.conf"
    conf.write_text(f"[CALLBLAST]\nSLEEP = 0\n[CDR]\nSEND_TO = FTP\n[AGI]\nLISTEN = {port}\n")
    result = run_to_exit(conf, tmp_path)
    assert result.returncode == 2
    assert f"{conf}:2: [CALLBLAST] SLEEP must be > 0, got 0" in result.stderr
    assert "[CDR] SEND_TO: unknown sink 'FTP'; use FILE, UDP, DB or NONE" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_an_unreachable_mariadb_is_a_clear_message(tmp_path: Path) -> None:
    conf = write_config(tmp_path, "mysql://xvb:secret@127.0.0.1:1/xvb",
                        "[DB]\nCONNECT_TIMEOUT = 2\n".replace("[DB]\n", ""))
    result = run_to_exit(conf, tmp_path)
    assert result.returncode == 3, result
    assert "cannot connect to MariaDB/MySQL at 127.0.0.1:1 as 'xvb'" in result.stderr
    assert "check that the server is running" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_database_older_than_the_code_names_the_command(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    result = run_to_exit(write_config(tmp_path, url_text(url)), tmp_path)
    assert result.returncode == 3
    assert "run `xvbd-admin db upgrade -c CONFIG`" in result.stderr


def test_a_port_in_use_is_a_clear_message(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        conf = write_config(tmp_path, url_text(url)).read_text().replace(
            "LISTEN = tcp:0:interface=127.0.0.1\nSHUTDOWN", f"LISTEN = {port}\nSHUTDOWN")
        (tmp_path / "busy.conf").write_text(conf)
        result = run_to_exit(tmp_path / "busy.conf", tmp_path)
    finally:
        busy.close()
    assert result.returncode == 4, result
    output = result.stderr + result.stdout  # twistd's log has taken stderr over by then
    assert f"cannot listen on [AGI] LISTEN = tcp:{port}" in output
    assert "Address already in use" in output and "change [AGI] LISTEN" in output
    assert "Traceback" not in output


def test_admin_cli(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    conf = write_config(tmp_path, url_text(url))
    status = admin("db", "status", "-c", str(conf), cwd=tmp_path)
    assert status.returncode == 3 and "does not exist yet" in status.stderr
    first = admin("db", "upgrade", "-c", str(conf), cwd=tmp_path)
    assert first.returncode == 0 and "applied 001_initial" in first.stdout
    again = admin("db", "upgrade", "-c", str(conf), cwd=tmp_path)
    assert "schema is up to date" in again.stdout
    assert admin("db", "status", "-c", str(conf), cwd=tmp_path).returncode == 0
    short = admin("admin-password", "-c", str(conf), "--password-stdin", cwd=tmp_path,
                  stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    ok = admin("admin-password", "-c", str(conf), "--password-stdin", cwd=tmp_path,
               stdin="correct horse battery\n")
    assert ok.returncode == 0, ok.stderr
    import sqlite3

    from xvbd.passwords import verify_password
    stored = sqlite3.connect(str(url.path)).execute(
        "SELECT password_hash FROM admins WHERE login = 'admin'").fetchone()[0]
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("wrong", stored)
    checked = admin("check-config", "-c", str(conf), cwd=tmp_path)
    assert checked.returncode == 0 and "SERVER_ID = TEST-NODE" in checked.stdout
    (tmp_path / "bad.conf").write_text("[COMMON]\nUSE_BILLING = 5\nFOO = 1\n")
    bad = admin("check-config", "-c", str(tmp_path / "bad.conf"), cwd=tmp_path)
    assert bad.returncode == 2
    assert "[COMMON] USE_BILLING must be 1, 0 or -1, got '5'" in bad.stderr
