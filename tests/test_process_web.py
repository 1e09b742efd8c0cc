"""The operator's web of the real process: TLS from a Twisted endpoint string (no nginx),
its session cookie Secure over HTTPS, and the admin password set or imported from an
htpasswd bcrypt line by ``xvbd-admin`` (replaced by scrypt at the first login)."""

from __future__ import annotations

import datetime
import http.client
import ssl
import urllib.parse
from pathlib import Path

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.db import new_database_url
from tests.support.process import Server, admin, write_config
from tests.support.web import login_form
from xvbd.store import migrations
from xvbd.store.migrations import open_connection


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def login(port: int, context: ssl.SSLContext, user: str, password: str
          ) -> http.client.HTTPResponse:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    token, cookie = login_form(conn, "/ai/login")
    body = urllib.parse.urlencode({"login": user, "password": password, "_csrf": token})
    conn.request("POST", "/ai/login", body,
                 {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    return conn.getresponse()


def test_tls_endpoint_secure_cookie_and_an_imported_htpasswd_hash(tmp_path: Path) -> None:
    url = new_database_url("sqlite", str(tmp_path / "db"))
    migrations.upgrade(url)
    key, cert = self_signed(tmp_path)
    conf = write_config(tmp_path, f"sqlite:{url.path}")
    text = conf.read_text()
    conf.write_text(text.replace(
        "[WEB]\nLISTEN = tcp:0:interface=127.0.0.1",
        f"[WEB]\nLISTEN = ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"))
    assert "ssl:0" in conf.read_text()
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"old-apache-secret", bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"someone:{hashed}\nadmin:$2y${hashed[4:]}\n")
    done = admin("admin-password", "-c", str(conf), "--import-htpasswd", str(htpasswd),
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bad = admin("admin-password", "-c", str(conf), "--login", "nobody", "--import-htpasswd",
                str(htpasswd), cwd=tmp_path)
    assert bad.returncode != 0 and "has no line for 'nobody'" in bad.stderr
    server = Server(conf, tmp_path)
    try:
        server.wait_started()
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", server.web_port, context=context,
                                           timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        refused = login(server.web_port, context, "admin", "wrong")
        assert refused.status == 401
        answer = login(server.web_port, context, "admin", "old-apache-secret")
        assert answer.status == 303, answer.read()
        cookie = answer.getheader("Set-Cookie") or ""
        assert cookie.startswith("xvbd_ai=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        server.terminate()
    finally:
        server.kill()
    conn_db = open_connection(url)
    try:
        stored = conn_db.execute("SELECT password_hash FROM admins WHERE login = 'admin'"
                                 ).fetchone()[0]
    finally:
        conn_db.close()
    assert stored.startswith("scrypt$"), "the imported bcrypt hash is replaced at login"
