"""The real process with ``[COMMON] MEM_CACHED_SHARED`` on a Redis server of the test's own
that is down when xvbd starts, comes up, then dies mid-run: calls are served at once all
along, the operator's login answers, the outage and its end are logged once each, and
SIGTERM stops the process in its grace."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support.db import drop_database, mysql_disabled, new_database_url
from tests.support.process import Server, admin, write_config
from tests.support.redis import RedisServer, new_prefix
from tests.support.web import login_form
from tests.test_process_shared import hold_a_call, url_text
from xvbd.store import migrations


def served_in(port: int) -> float:
    """Seconds from a call's start to its menu waiting for a key (greeting played)."""
    began = time.monotonic()
    hold_a_call(port).close()
    return time.monotonic() - began


def answers_in(port: int, method: str, path: str, body: str = "") -> tuple[int, float]:
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    if method == "POST" and path.endswith("/login"):  # the form's token, as a browser
        token, headers["Cookie"] = login_form(conn, path)
        body += "&" + urllib.parse.urlencode({"_csrf": token})
    conn.request(method, path, body or None, headers)
    status = conn.getresponse().status
    conn.close()
    return status, time.monotonic() - began


def wait_for(check: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_calls_and_logins_go_on_while_redis_is_away(tmp_path: Path, backend: str) -> None:
    if backend == "mysql" and mysql_disabled():
        pytest.skip("XVBD_TEST_MYSQL=off")
    url = new_database_url(backend, str(tmp_path / "db"))
    redis = RedisServer(str(tmp_path))
    try:
        migrations.upgrade(url)
        text = url_text(url) if backend == "mysql" else f"sqlite:{tmp_path / 'db' / 'xvbd.sqlite3'}"
        shared = f"MEM_CACHED_SHARED = redis://127.0.0.1:{redis.port}/0?prefix={new_prefix()}"
        conf = write_config(tmp_path, text, "", shared)
        assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
        server = Server(conf, tmp_path).wait_started()
        log = tmp_path / "xvbd.log"
        try:
            # Redis is down from the start: the call's group and node limits cannot be
            # checked in Redis, and the caller hears the menu at once all the same
            assert served_in(server.agi_port) < 3.0
            assert served_in(server.agi_port) < 1.0, "known away: nothing waits on it"
            login = urllib.parse.urlencode({"login": "admin", "password": "wrong"})
            status, took = answers_in(server.web_port, "POST", "/ai/login", login)
            assert status == 401 and took < 3.0, (status, took)
            status, _ = answers_in(server.web_port, "GET", "/healthz")
            assert status == 200  # calls are served: healthy, Redis or not
            health = json.loads(_get(server.web_port, "/healthz"))
            assert health["redis"]["reachable"] is False, health
            assert health["reactor"]["last_ms"] < 1000, health
            # Redis comes up: said once, and used again
            redis.start()
            wait_for(lambda: "answers again" in log.read_text(), "Redis back in the log")
            assert served_in(server.agi_port) < 3.0
            assert json.loads(_get(server.web_port, "/healthz"))["redis"]["reachable"]
            # ... and dies mid-run: the next call is served within the timeout
            redis.kill()
            assert served_in(server.agi_port) < 3.0
            assert served_in(server.agi_port) < 1.0
            code, took = server.terminate(timeout=10)
            assert (code, took < 5.0) == (0, True), (code, took)
        finally:
            server.kill()
        text_log = log.read_text()
        assert text_log.count("is not answering") == 2, text_log  # once per outage
        assert text_log.count("answers again") == 1, text_log
        assert "Traceback" not in text_log + server.output(), text_log
    finally:
        redis.kill()
        drop_database(url)


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    body = conn.getresponse().read().decode()
    conn.close()
    return body
