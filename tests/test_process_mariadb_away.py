"""The real process on a MariaDB server of the test's own, killed under it and started
again: a caller hears a polite message within 2 s (never silence), the call records wait in
the spool and reach the database once, the web says clearly what is wrong."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.peers.agi import environment
from tests.support.mariadb import MariaDBServer
from tests.support.process import Server, admin, write_config
from tests.support.web import login_form
from xvbd.store import migrations


def call(port: int, keys: str = "", during: Callable[[], None] | None = None
         ) -> tuple[list[str], float]:
    """A call to DID 100 over FastAGI that answers like Asterisk and presses ``keys`` at
    the menu (then hangs up): the commands xvbd sent, and the seconds to the first one the
    caller hears (a STREAM FILE or a GET DATA).  ``during()`` runs before the first key."""
    began = time.monotonic()
    heard_at = 0.0
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall("".join(f"agi_{k}: {v}\n" for k, v in environment(
        "ivr", args=("100", "127.0.0.1"))).encode() + b"\n")
    reader = sock.makefile("rb")
    commands: list[str] = []
    pressed = iter(keys)
    while True:
        raw = reader.readline()
        if not raw:
            break
        line = raw.decode().strip()
        commands.append(line)
        verb = line.split(" ", 2)
        if line.startswith(("STREAM FILE", "GET DATA", "EXEC Playback")) and not heard_at:
            heard_at = time.monotonic() - began
        if line.startswith("HANGUP"):
            sock.sendall(b"200 result=1\nHANGUP\n")
            continue
        if line.startswith(("WAIT FOR DIGIT", "GET DATA")) or (
                line.startswith("STREAM FILE") and verb[2:] and '"' not in verb[2][:1]):
            if during is not None:
                during()
                during = None
            key = next(pressed, None)
            if key is None:
                sock.sendall(b"HANGUP\n200 result=-1\n")
                continue
            sock.sendall(f"200 result={ord(key)} endpos=1\n".encode())
            continue
        sock.sendall(b"200 result=0 endpos=1\n" if line.startswith("STREAM") else
                     b"200 result=1\n")
    sock.close()
    return commands, heard_at


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read().decode()
    conn.close()
    return answer.status, body


def post(port: int, path: str, fields: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if path.endswith("/login"):  # the login form's token and cookie first, as a browser
        token, headers["Cookie"] = login_form(conn, path)
        fields += "&" + urllib.parse.urlencode({"_csrf": token})
    conn.request("POST", path, fields, headers)
    answer = conn.getresponse()
    body = answer.read().decode()
    conn.close()
    return answer.status, body


@pytest.mark.skipif(not Path("/usr/sbin/mariadbd").exists(), reason="no mariadbd")
def test_mariadb_killed_at_call_start_and_mid_call_then_back(tmp_path: Path) -> None:
    db = MariaDBServer(tmp_path).start()
    try:
        migrations.upgrade(db.url)
        conf = write_config(tmp_path, db.url_text)
        conf.write_text(conf.read_text().replace("[CDR]\n", "[CDR]\nSEND_TO = FILE,DB\n"))
        assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
        server = Server(conf, tmp_path).wait_started()
        try:
            commands, _ = call(server.agi_port)
            assert "STREAM FILE demo-instruct" in commands[-1], commands
            # mid-call: the database dies while the caller is in the menu; the menu goes on
            # (the tenant's tree is in memory) and the call's record is kept for later
            commands, _ = call(server.agi_port, keys="2", during=db.kill)
            assert any(c.startswith("SAY DATETIME") for c in commands), commands
            time.sleep(6)  # past the directory's cache: the next call needs the database
            commands, heard = call(server.agi_port)
            assert commands[-1] == 'STREAM FILE tt-somethingwrong ""', commands
            assert heard < 2.0, "a polite message within 2 s, never silence"
            status, body = get(server.web_port, "/healthz")
            assert status == 503 and '"reachable": false' in body, body
            for path, fields in (("/ui/login", "voice_number=613&access_code=10001&secret=911"),
                                 ("/ai/login", "login=admin&password=whatever")):
                status, body = post(server.web_port, path, fields)
                assert status == 503, (path, status, body[-500:])
                assert "database is not answering just now" in body, body[-500:]
                assert "Please try again in a minute" in body
            # back: calls are served again, the records kept meanwhile arrive
            db.start()
            deadline = time.monotonic() + 20
            while get(server.web_port, "/healthz")[0] != 200:
                assert time.monotonic() < deadline, "the database never came back"
                time.sleep(0.2)
            commands, _ = call(server.agi_port)
            assert "STREAM FILE demo-instruct" in commands[-1], commands
            log = tmp_path / "xvbd.log"
            while "spooled CDR record(s) are in the database now" not in log.read_text():
                assert time.monotonic() < deadline + 30, "the spool never reached the database"
                time.sleep(0.2)
            code, _ = server.terminate(timeout=10)
            assert code == 0
        finally:
            server.kill()
        summaries = [line for line in (tmp_path / "xvbd.cdr").read_text().splitlines()
                     if "TYPE=XVB" in line]
        assert len(summaries) == 4, summaries
        ids = sorted(line.split("CALL_ID=", 1)[1].split(",", 1)[0] for line in summaries)
        stored = sorted(row[0] for row in db.query(
            "SELECT call_id FROM cdrs WHERE type = 'XVB'"))
        assert stored == ids, "every call's record reached the database, once"
        text = (tmp_path / "xvbd.log").read_text()
        assert "the caller heard that something went wrong" in text, text[-3000:]
        assert "a database connection was lost" in text
        assert "Traceback" not in text + server.output(), text[-3000:]
    finally:
        db.kill()
