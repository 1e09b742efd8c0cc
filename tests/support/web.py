"""The web on a real loopback port for HTTP tests, and a small browser for it: cookies,
the CSRF token of the last page, redirects followed (or not) as a browser does."""

from __future__ import annotations

import dataclasses
import http.client
import re
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.web.client import Agent, CookieAgent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from tests.support.db import DatabaseCase, report_account
from xvbd.config import Settings, parse_settings
from xvbd.counters import LocalCounters
from xvbd.mediadirs import MediaDirs
from xvbd.passwords import hash_password
from xvbd.web.admin import AdminApp
from xvbd.web.root import WebRoot, web_site
from xvbd.web.templating import Pages
from xvbd.web.tenant import TenantApp

#: Hashes take tens of milliseconds; tests make each once.
ADMIN_HASH = hash_password("admin-secret")
PARTNER_HASH = hash_password("partner-secret")
PAGES = Pages()  # every template compiled once for the whole run, as the process does at start


@dataclass
class Page:
    code: int
    headers: Headers
    text: str
    url: str

    def header(self, name: str) -> str:
        values = self.headers.getRawHeaders(name) or [b""]
        value = values[0]
        return value.decode() if isinstance(value, bytes) else str(value)

    @property
    def csrf(self) -> str:
        match = re.search(r'name="_csrf" value="([^"]+)"', self.text)
        return match[1] if match else ""


@dataclass
class Browser:
    base: str
    jar: CookieJar = field(default_factory=CookieJar)
    last: Page | None = None

    def __post_init__(self) -> None:
        self.agent = CookieAgent(Agent(reactor), self.jar)

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None, follow: bool = True) -> Page:
        url = path if path.startswith("http") else self.base + path
        for _ in range(10):
            hdrs = Headers({k: [v] for k, v in (headers or {}).items()})
            producer = FileBodyProducer(BytesIO(body)) if body is not None else None
            response = await self.agent.request(method.encode(), url.encode(), hdrs, producer)
            text = (await readBody(response)).decode("utf-8", "replace")
            page = Page(response.code, response.headers, text, url)
            if follow and response.code in (301, 302, 303, 307, 308):
                location = page.header("Location")
                url = location if location.startswith("http") else self.base + location
                method, body, headers = "GET", None, None
                continue
            if "text/html" in page.header("Content-Type"):
                self.last = page
            return page
        raise AssertionError("too many redirects")

    async def get(self, path: str, follow: bool = True) -> Page:
        return await self.request("GET", path, follow=follow)

    async def post(self, path: str, fields: dict[str, Any] | None = None, *,
                   csrf: str | None = None, follow: bool = True) -> Page:
        data = {k: str(v) for k, v in (fields or {}).items()}
        if csrf is None and self.last is not None:
            csrf = self.last.csrf
        if csrf:
            data.setdefault("_csrf", csrf)
        return await self.request(
            "POST", path, urlencode(data).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"}, follow=follow)

    async def log_in(self, path: str, fields: dict[str, Any], *, follow: bool = True
                     ) -> Page:
        """As a person logs in: the login page first (its form's CSRF token and the
        pre-login cookie it is bound to), then the form's POST."""
        await self.get(path)
        return await self.post(path, fields, follow=follow)

    async def upload(self, path: str, fields: dict[str, Any],
                     files: dict[str, tuple[str, bytes]], *, follow: bool = True) -> Page:
        """POST ``multipart/form-data`` as a browser sends a form with file inputs."""
        boundary = "----xvbdtest" + "7d93b1c0a4f2"
        data = {k: str(v) for k, v in fields.items()}
        if self.last is not None and self.last.csrf:
            data.setdefault("_csrf", self.last.csrf)
        parts = []
        for name, value in data.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                         f"\r\n\r\n{value}\r\n".encode())
        for name, (filename, body) in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                         f'filename="{filename}"\r\nContent-Type: application/octet-stream'
                         "\r\n\r\n".encode() + body + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return await self.request(
            "POST", path, b"".join(parts),
            {"Content-Type": f"multipart/form-data; boundary={boundary}"}, follow=follow)


def login_form(conn: http.client.HTTPConnection, path: str) -> tuple[str, str]:
    """For the tests that speak plain ``http.client`` to a running xvbd: GET the login page
    at ``path`` on ``conn``; the form's CSRF token and the ``Cookie`` header to send with
    its POST (the pre-login cookie the token is bound to)."""
    conn.request("GET", path)
    answer = conn.getresponse()
    text = answer.read().decode("utf-8", "replace")
    assert answer.status == 200, (answer.status, text[:300])
    token = re.search(r'name="_csrf" value="([^"]+)"', text)
    assert token, text[:300]
    cookies = [v.split(";", 1)[0] for k, v in answer.getheaders() if k.lower() == "set-cookie"]
    return token[1], "; ".join(cookies)


class WebCase(DatabaseCase):
    """Mixin: the web of ``self.store`` on a loopback port; ``self.browser()``."""

    web_config = ""
    reports_account = False  # MariaDB: make the report account, as REPORTS_URL

    def setUp(self) -> None:
        super().setUp()
        self.settings: Settings = parse_settings(f"[COMMON]\nSERVER_ID = WEB-NODE\n"
                                                 f"{self.web_config}", "test.conf")
        if self.reports_account and self.backend == "mysql":
            self.settings = dataclasses.replace(self.settings, db=dataclasses.replace(
                self.settings.db, reports_url=report_account(self)))
        self.counters = LocalCounters(reactor)
        self.admin_app = AdminApp(self.settings, self.store, self.counters, PAGES)
        self.tenant_app = TenantApp(self.settings, self.store, self.counters, PAGES)
        root = WebRoot(self.db, "WEB-NODE", clock=reactor, admin=self.admin_app,
                       tenant=self.tenant_app)
        site = web_site(root.app.resource(), self.settings.web.trusted_proxies)
        self.listener = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.listener.stopListening)  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.listener.getHost().port}"

    def tenant_media(self) -> Path:
        """Give the tenants' web a media directory (greetings, messages) of this test's own;
        its path."""
        media = self.tmp / "media"
        self.settings = dataclasses.replace(
            self.settings, path=dataclasses.replace(self.settings.path, media_dir=media))
        self.tenant_app.settings = self.settings
        self.tenant_app.media = MediaDirs(media, self.tmp / "scratch", "", deferToThread)
        return media

    def browser(self) -> Browser:
        return Browser(self.base)

    async def admin_browser(self) -> Browser:
        await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)
        browser = self.browser()
        page = await browser.log_in("/ai/login", {"login": "admin", "password": "admin-secret"})
        assert page.code == 200, page.text
        return browser

    async def partner_browser(self, group_id: int, login: str = "reseller",
                              **fields: Any) -> Browser:
        await self.store.accounts.create_partner(login, PARTNER_HASH, group_id, **fields)
        browser = self.browser()
        page = await browser.log_in("/ai/login", {"login": login, "password": "partner-secret"})
        assert page.code == 200, page.text
        return browser

    async def tenant_browser(self, voice_number: str, access_code: str, secret: str
                             ) -> Browser:
        """A browser logged in to ``/ui`` as the user (by PIN or web password)."""
        browser = self.browser()
        page = await browser.log_in("/ui/login", {"voice_number": voice_number,
                                                "access_code": access_code,
                                                "secret": secret})
        assert page.code == 200 and "/ui/login" not in page.url, page.text
        return browser
