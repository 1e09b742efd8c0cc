"""The worst reports against the real process, on SQLite and on MariaDB (through the account
``xvbd-admin reports-account`` makes, its REPORTS_URL put in the file as the command says):
20 MB of 60 KB values, a value of a gigabyte, a query that never ends.  Meanwhile
``/healthz`` (so every call) keeps answering: the median of its probes is under 50 ms."""

from __future__ import annotations

import http.client
import re
import statistics
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support.db import drop_database, new_database_url
from tests.support.process import Server, admin, write_config
from xvbd.config import DatabaseURL
from xvbd.store import migrations
from xvbd.store.migrations import open_connection
from xvbd.store.report_account import drop_account

WIDE = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50) "
        "SELECT a.n AS n, {wide} AS w FROM c a, c b, c d")
SLOW = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) "
        "SELECT COUNT(*) AS n FROM c a, c b, c d")


@pytest.fixture(params=["sqlite", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseURL:
    url = new_database_url(request.param, str(tmp_path / "db"))
    request.addfinalizer(lambda: drop_database(url))
    migrations.upgrade(url)
    return url


def _reports(url: DatabaseURL) -> dict[str, int]:
    sqlite = url.backend == "sqlite"
    wide = "hex(zeroblob(30000))" if sqlite else "REPEAT('0', 60000)"
    huge = "zeroblob(1000000000)" if sqlite else "REPEAT('x', 1000000000)"
    ids = {}
    conn = open_connection(url, 5)
    try:
        for name, sql in (("wide", WIDE.format(wide=wide)), ("huge", f"SELECT {huge} AS z"),
                          ("slow", SLOW)):
            cursor = conn.cursor()
            mark = "?" if sqlite else "%s"
            cursor.execute("INSERT INTO reports (name, sql_text, default_start, default_stop, "
                           "cache_ttl, owner, access, created_at, updated_at) VALUES "
                           f"({mark}, {mark}, '', '', 0, 'admin', 'all', 0, 0)", (name, sql))
            ids[name] = int(cursor.lastrowid)
        conn.commit()
    finally:
        conn.close()
    return ids


def _login(port: int) -> str:
    """As a person logs in: the login page (its pre-login cookie and form token), then the
    form's POST; the session's cookie."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/ai/login")
    response = conn.getresponse()
    form = response.read().decode()
    pre_login = response.getheader("Set-Cookie", "").split(";")[0]
    token = re.search(r'name="_csrf" value="([^"]+)"', form)
    assert token is not None and pre_login, form[:500]
    conn.request("POST", "/ai/login", urllib.parse.urlencode(
        {"login": "admin", "password": "admin-secret-1", "_csrf": token[1]}),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": pre_login})
    response = conn.getresponse()
    response.read()
    cookie = next((c for c in response.headers.get_all("Set-Cookie") or []
                   if c.startswith("xvbd_ai=")), "")
    assert response.status in (302, 303) and cookie, (response.status, cookie)
    return cookie.split(";")[0]


def _get(port: int, path: str, cookie: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_healthz_answers_while_the_worst_reports_run(database: DatabaseURL,
                                                     tmp_path: Path) -> None:
    url = database
    text = f"sqlite:{url.path}" if url.backend == "sqlite" else (
        f"mysql://{url.user}{':' + url.password if url.password else ''}@{url.host}:"
        f"{url.port}/{url.name}")
    conf = write_config(tmp_path, text, extra="")
    drop: tuple[DatabaseURL, str, str] | None = None
    if url.backend == "mysql":  # as an operator does it: the command, then its line
        login = f"r{tmp_path.name[-10:].replace('-', '')}"[:30]
        done = admin("reports-account", "-c", str(conf), "--login", login, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        line = re.search(r"^REPORTS_URL = (mysql://\S+)$", done.stdout, re.M)
        assert line, done.stdout
        assert "users.pin" in done.stdout and "users.web_password_hash" in done.stdout
        conf.write_text(conf.read_text().replace(f"URL = {text}\n",
                                                 f"URL = {text}\nREPORTS_URL = {line[1]}\n"))
        drop = (url, url.name, login)
        again = admin("reports-account", "-c", str(conf), "--login", login, "--views-only",
                      cwd=tmp_path)  # after a db upgrade: the views again, the login kept
        assert again.returncode == 0 and f"the login {login!r} is unchanged" in again.stdout
    else:
        done = admin("reports-account", "-c", str(conf), cwd=tmp_path)
        assert done.returncode == 0 and "SQLite needs no report account" in done.stdout
    conf.write_text(conf.read_text().replace("[DB]\n", "[DB]\nREPORTS_TIMEOUT = 3\n"))
    done = admin("admin-password", "-c", str(conf), "--password-stdin", cwd=tmp_path,
                 stdin="admin-secret-1\n")
    assert done.returncode == 0, done.stderr
    ids = _reports(url)
    server = Server(conf, tmp_path)
    try:
        server.wait_started()
        port = server.web_port
        cookie = _login(port)
        results: dict[str, tuple[int, bytes]] = {}
        running = threading.Event()
        finished = threading.Event()

        def reports() -> None:
            try:
                for _ in range(2):
                    for name in ("wide", "huge", "slow"):
                        running.set()
                        results[name] = _get(port, f"/ai/reports/{ids[name]}", cookie)
                results["csv"] = _get(port, f"/ai/reports/{ids['wide']}/csv", cookie)
            finally:
                finished.set()

        worker = threading.Thread(target=reports)
        worker.start()
        running.wait(10)
        probes = []
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not finished.is_set() and len(probes) < 400:
            began = time.perf_counter()
            health.request("GET", "/healthz")
            response = health.getresponse()
            response.read()
            probes.append(time.perf_counter() - began)
            assert response.status == 200
            time.sleep(0.05)
        worker.join(120)
        assert not worker.is_alive()
        code, page = results["wide"]
        assert code == 200 and b"The report stopped at 20 MB" in page
        assert len(page) < 21 << 20
        code, body = results["csv"]
        assert code == 200 and b"(The report stopped at 20 MB" in body[-200:]
        code, page = results["huge"]
        if url.backend == "sqlite":
            assert code == 400 and b"This report makes a value longer than" in page
        else:  # longer than max_allowed_packet: NULL
            assert code == 200 and len(page) < 100_000
        code, page = results["slow"]
        assert code == 400 and b"This report ran longer than 3 s and was stopped" in page
        assert len(probes) >= 20, probes
        median = statistics.median(probes)
        print(f"{url.backend}: /healthz {len(probes)} probes during the reports: median "
              f"{median * 1000:.1f} ms, max {max(probes) * 1000:.1f} ms")
        assert median < 0.050, sorted(probes)
        assert "Traceback" not in server.output() + (tmp_path / "xvbd.log").read_text()
    finally:
        server.terminate()
        if drop is not None:
            drop_account(*drop)
