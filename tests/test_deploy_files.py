"""The deployment files of ``etc/``, each read by the program that reads it in production:
``systemd-analyze verify`` and ``security`` for the unit, ``nginx -t`` and a running nginx
in front of a real xvbd for the site, ``logrotate`` rotating the files of a running xvbd for
the rotation; and the three agree with the production settings of ``docs/deployment.md``.

A missing program skips its tests, and fails them under ``CI=true`` (``.ci/services``
installs them)."""

from __future__ import annotations

import grp
import http.client
import http.server
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.db import drop_database, new_database_url
from tests.support.process import ROOT, Server, admin, call_process, write_config
from xvbd.config import Settings, load_settings
from xvbd.store import migrations
from xvbd.web.root import MAX_BODY

UNIT = ROOT / "etc" / "systemd" / "xvbd.service"
SITE = ROOT / "etc" / "nginx" / "xvbd.conf"
ROTATE = ROOT / "etc" / "logrotate.d" / "xvbd"
DOC = ROOT / "docs" / "deployment.md"
TWISTD = Path(sys.executable).parent / "twistd"


def need(program: str) -> str:
    found = shutil.which(program) or next(
        (str(p) for p in (Path("/usr/sbin") / program, Path("/sbin") / program) if p.exists()),
        None)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{program} is not installed; .ci/services installs it")
    pytest.skip(f"{program} is not installed (bash .ci/services installs it)")


def production_settings(tmp_path: Path) -> Settings:
    """The settings the deployment page tells an operator to write."""
    text = DOC.read_text()
    block = re.search(r"<!-- production-config -->\s*```ini\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md has the production-config block"
    conf = tmp_path / "production.conf"
    conf.write_text(block[1].replace("MEDIA_GROUP         = xvbd", "MEDIA_GROUP ="))
    return load_settings(str(conf))


def unit_directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------ systemd


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    # The unit as installed, but with this machine's twistd (verify checks that it exists).
    unit = tmp_path / "xvbd.service"
    unit.write_text(UNIT.read_text().replace("/opt/xvbd/venv/bin/twistd", str(TWISTD)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    ours = [line for line in done.stderr.splitlines() if "xvbd.service" in line]
    assert done.returncode == 0 and not ours, done.stderr
    # Exposure 2.0 or less on systemd's 0-10 scale ("OK"); the default unit is 9.6.
    security = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20",
                               str(unit)], capture_output=True, text=True, timeout=60)
    assert security.returncode == 0, security.stdout[-3000:]

    d = unit_directives()
    assert d["Type"] == ["exec"] and d["User"] == ["xvbd"] and d["Group"] == ["xvbd"]
    assert d["ExecStart"] == ["/opt/xvbd/venv/bin/twistd -n --pidfile= xvbd "
                              "-c /etc/xvbd/xvb.conf"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"] and d["RestartPreventExitStatus"] == ["2"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"] and d["CapabilityBoundingSet"] == [""]
    assert d["KillSignal"] == ["SIGTERM"] and d["KillMode"] == ["mixed"]

    settings = production_settings(tmp_path)
    # Stopping: the grace for calls, then the CDRs and the pool, before systemd's SIGKILL.
    assert float(d["TimeoutStopSec"][0]) >= settings.agi.shutdown_grace + 10
    # Every directory xvbd writes with the documented settings is writable in the unit.
    writable = [Path(p) for p in d["ReadWritePaths"][0].split()]
    assert settings.db.url.path is not None
    for path in (settings.db.url.path.parent, settings.cdr.file.parent,
                 settings.debug.file.parent, settings.path.media_dir, settings.path.tmp_dir):
        assert any(path == w or w in path.parents for w in writable), path
    assert not str(settings.path.tmp_dir).startswith("/tmp"), "PrivateTmp hides /tmp from Asterisk"
    assert d["WorkingDirectory"][0] in map(str, writable)


# ------------------------------------------------------------------ nginx


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    return cert, key


def nginx_config(tmp_path: Path, site: str) -> Path:
    """The site inside an nginx.conf of the test's own (pid, logs, temp files in tmp_path)."""
    cert, key = self_signed(tmp_path)
    site = (site.replace("/etc/xvbd/tls/fullchain.pem", str(cert))
            .replace("/etc/xvbd/tls/privkey.pem", str(key)))
    (tmp_path / "site.conf").write_text(site)
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""{user}
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    return conf


def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    nginx = need("nginx")
    conf = nginx_config(tmp_path, SITE.read_text())
    done = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                           "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    text = SITE.read_text()
    # nginx refuses what xvbd would refuse, not less.
    size = re.search(r"client_max_body_size (\d+)m;", text)
    assert size and int(size[1]) * 1024 * 1024 == MAX_BODY
    # The client's address is set, never appended to what the client sent.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert "proxy_set_header X-Real-IP $remote_addr;" in text
    assert "$proxy_add_x_forwarded_for" not in text
    # Proxied to the port of the documented [WEB] LISTEN.
    web = production_settings(tmp_path).web.listen
    port = re.search(r"tcp:(\d+):interface=127\.0\.0\.1", web)
    assert port and f"server 127.0.0.1:{port[1]};" in text


def running_site(tmp_path: Path, upstream_port: int) -> tuple[str, int, int]:
    """The site with its ports moved to free ones on 127.0.0.1, to an upstream on
    ``upstream_port``; returns (text, https port, http port)."""
    https, plain = free_port(), free_port()
    site = SITE.read_text()
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{plain};")
    site = site.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
    return site, https, plain


class Nginx:
    def __init__(self, tmp_path: Path, site: str, port: int) -> None:
        conf = nginx_config(tmp_path, site)
        self.proc = subprocess.Popen([need("nginx"), "-p", str(tmp_path),
                                      "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.error_log = tmp_path / "error.log"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"nginx did not start:\n{self.error_log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def https(port: int, source: str = "127.0.0.1") -> http.client.HTTPSConnection:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10,
                                       source_address=(source, 0))


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.headers, response.read()


class _Echo(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Echo", (_Echo,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_nginx_forwards_the_real_client_address_only(
        tmp_path: Path, echo_server: tuple[int, list[dict[str, str]]]) -> None:
    """What reaches xvbd's port: the address nginx saw, whatever the client wrote; the APIs
    and /healthz only for the addresses the site allows."""
    port, seen = echo_server
    site, tls_port, _plain = running_site(tmp_path, port)
    server = Nginx(tmp_path, site, tls_port)
    try:
        status, _, _ = request(https(tls_port), "GET", "/ui/login", headers={
            "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9",
            "Forwarded": "for=203.0.113.9"})
        assert status == 200
        headers = {k.lower(): v for k, v in seen[-1].items()}
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-real-ip"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        # From another address (127.0.0.2 is this machine too): the web yes, the APIs and
        # the health check no; nginx answers, nothing reaches xvbd.
        before = len(seen)
        assert request(https(tls_port, "127.0.0.2"), "GET", "/ui/login")[0] == 200
        for path in ("/ui/api/account", "/ai/api/users", "/healthz"):
            assert request(https(tls_port, "127.0.0.2"), "GET", path)[0] == 403, path
            assert request(https(tls_port), "GET", path)[0] == 200, path
        assert len(seen) == before + 1 + 3
        assert request(https(tls_port), "GET", "/elsewhere")[0] == 404
        # /metrics is not passed on, from anywhere (Prometheus asks xvbd's port itself)
        for source in ("127.0.0.1", "127.0.0.2"):
            for path in ("/metrics", "/metrics?x=1", "//metrics"):
                assert request(https(tls_port, source), "GET", path)[0] == 404, path
        assert len(seen) == before + 1 + 3
    finally:
        server.stop()


def test_a_real_xvbd_behind_the_nginx_site(tmp_path: Path) -> None:
    """TLS to nginx, plain HTTP to twistd xvbd: pages, a login whose cookie nginx marks
    Secure, uploads refused past xvbd's own limit, plain HTTP sent to HTTPS."""
    need("nginx")
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    conf = write_config(tmp_path, f"sqlite:{url.path}")
    assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
    xvbd = Server(conf, tmp_path)
    proxy = None
    try:
        xvbd.wait_started()
        (tmp_path / "nginx-site").mkdir()
        site, tls_port, plain_port = running_site(tmp_path / "nginx-site", xvbd.web_port)
        proxy = Nginx(tmp_path / "nginx-site", site, tls_port)
        status, headers, body = request(https(tls_port), "GET", "/ui/login")
        assert status == 200 and b"/static/xvbd.css" in body
        assert request(https(tls_port), "GET", "/static/xvbd.css")[0] == 200
        status, headers, _ = request(https(tls_port), "GET", "/")
        assert status == 302 and headers["Location"].endswith("/ui/")
        status, headers, body = request(https(tls_port), "GET", "/healthz")
        assert status == 200 and b'"status"' in body
        # /metrics: xvbd's port answers this machine; nginx passes none on.
        direct = http.client.HTTPConnection("127.0.0.1", xvbd.web_port, timeout=10)
        status, _, body = request(direct, "GET", "/metrics")
        assert status == 200 and b"xvbd_calls_in_progress 0.0" in body
        assert request(https(tls_port), "GET", "/metrics")[0] == 404

        # A login: the form as the page has it (any hidden field), the cookie marked Secure.
        status, headers, page = request(https(tls_port), "GET", "/ui/login")
        fields = dict(re.findall(rb'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
        cookies = "; ".join(c.split(";", 1)[0] for c in headers.get_all("Set-Cookie") or [])
        form = {k.decode(): v.decode() for k, v in fields.items()}
        form.update(voice_number="613", access_code="10001", secret="911")
        from urllib.parse import urlencode
        status, headers, _ = request(https(tls_port), "POST", "/ui/login",
                                     body=urlencode(form).encode(), headers={
                                         "Content-Type": "application/x-www-form-urlencoded",
                                         "Cookie": cookies})
        assert status in (302, 303), status
        session = [c for c in headers.get_all("Set-Cookie") or [] if "Max-Age=0" not in c]
        assert session and all("; Secure" in c or ";Secure" in c for c in session), session

        # An upload past the limit: refused by nginx itself, at once.
        conn = https(tls_port)
        conn.putrequest("POST", "/ui/greetings")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(MAX_BODY + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and "nginx" in (response.getheader("Server") or "")
        # Plain HTTP goes to HTTPS.
        status, headers, _ = request(http.client.HTTPConnection("127.0.0.1", plain_port,
                                                                timeout=10), "GET", "/ui/")
        assert status == 301 and headers["Location"].startswith("https://")
        assert xvbd.proc.poll() is None
    finally:
        if proxy is not None:
            proxy.stop()
        xvbd.kill()
        drop_database(url)


# ------------------------------------------------------------------ logrotate


def local_rotation(tmp_path: Path, reload: str) -> Path:
    """The shipped file, its paths in ``tmp_path``, its user this one, ``reload`` for the
    reload command; and a state file of its own."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    text = (ROTATE.read_text().replace("/var/log/xvbd/", f"{tmp_path}/")
            .replace("su xvbd xvbd", f"su {user} {group}")
            .replace("create 0640 xvbd xvbd", f"create 0640 {user} {group}")
            .replace("systemctl reload xvbd.service", reload))
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    return conf


def test_logrotate_file_parses_and_names_the_documented_files(tmp_path: Path) -> None:
    logrotate = need("logrotate")
    text = ROTATE.read_text()
    settings = production_settings(tmp_path)
    # Exactly the CDR file and the log of the documented settings; never the DB spool.
    heads = re.findall(r"^(/\S+) \{", text, re.M)
    assert heads == [str(settings.cdr.file), str(settings.debug.file)]
    assert not any("*" in head for head in heads)
    assert text.count("systemctl reload xvbd.service") == 2
    for file in (settings.cdr.file, settings.debug.file):
        (tmp_path / file.name).write_text("a line\n")
    conf = local_rotation(tmp_path, "true")
    done = subprocess.run([logrotate, "-d", "-f", "-s", str(tmp_path / "state"), str(conf)],
                          capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "error:" not in out, out
    for file in (settings.cdr.file, settings.debug.file):
        assert f"rotating pattern: {tmp_path / file.name}" in out
        assert f"renaming {tmp_path / file.name} to {tmp_path / file.name}-" in out
    assert "running postrotate script" in out


def test_logrotate_rotates_a_running_xvbd_without_losing_a_line(tmp_path: Path) -> None:
    """logrotate moves the CDR file and the log of a real xvbd and reloads it (SIGHUP);
    the call before is in the rotated file, the call after in the new one, the process
    never stopped."""
    from tests.peers.agi import Caller, environment

    logrotate = need("logrotate")
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    conf = write_config(tmp_path, f"sqlite:{url.path}")
    assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
    xvbd = Server(conf, tmp_path)
    cdr, log = tmp_path / "xvbd.cdr", tmp_path / "xvbd.log"

    def call(uniqueid: str) -> None:
        call_process(xvbd.agi_port, environment("ivr", args=("613", "10.9.9.9"),
                                                uniqueid=uniqueid),
                     Caller(keys=["10001", "911", "2", "#"]))

    try:
        xvbd.wait_started()
        call("1795696425.1")
        before = cdr.read_text()
        assert before.count("TYPE=XVB") == 1, before
        rules = local_rotation(tmp_path, f"kill -HUP {xvbd.proc.pid}")
        done = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(rules)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        rotated_cdr = [p for p in tmp_path.glob("xvbd.cdr-*")]
        rotated_log = [p for p in tmp_path.glob("xvbd.log-*")]
        assert len(rotated_cdr) == 1 and len(rotated_log) == 1, list(tmp_path.iterdir())
        assert rotated_cdr[0].read_text() == before
        deadline = time.monotonic() + 10
        while "reloaded" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"no reload in the new log:\n{xvbd.output()}"
            time.sleep(0.05)
        call("1795696425.2")
        after = cdr.read_text()
        assert after.count("TYPE=XVB") == 1 and not set(after.splitlines()) & set(
            before.splitlines()), after
        assert rotated_cdr[0].read_text() == before, "nothing was written into the old file"
        assert "\0" not in after
        assert not list(tmp_path.glob("xvbd.cdr.db-spool-*")), "the spool is never rotated"
        assert xvbd.proc.poll() is None, "xvbd kept running"
        assert oct(cdr.stat().st_mode & 0o777) == "0o640"
    finally:
        xvbd.kill()
        drop_database(url)
