"""What every page shares about who is asking: the session cookie, the CSRF token of forms,
login throttling, client addresses, and the refusals (login needed, forbidden, bad form)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from xvbd.counters import Counters
from xvbd.passwords import verify_password
from xvbd.store.sessions import WebSession

#: Failed logins within the window after which logins are refused for a while.
LOGIN_FAILURES_PER_NAME, LOGIN_FAILURES_PER_ADDRESS, LOGIN_WINDOW = 5, 20, 900.0


class Refused(Exception):
    """The request cannot be served; ``code`` and a message for the person."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class WebSite(Site):
    """The web's ``Site``, knowing which proxies may say who the client is."""

    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def client_address(request: IRequest) -> str:
    """Who is asking: the connection's address; or, when it is one of the site's trusted
    proxies (``[WEB] TRUSTED_PROXIES``), the last address of ``X-Forwarded-For`` that is
    not a trusted proxy (what a client writes there itself comes before it, so it cannot
    choose what is read)."""
    peer = str(getattr(request.getClientAddress(), "host", "") or "")
    site = getattr(request, "site", None)  # a request not served by a Site has none
    trusted = site.trusted_proxies if isinstance(site, WebSite) else ()
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = ",".join(h.decode("latin-1") for h in
                         request.requestHeaders.getRawHeaders(b"x-forwarded-for", []))
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _within(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # not an address: the chain cannot be read past it
    return peer


def _within(address: str,
            networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def form(request: IRequest) -> dict[str, str]:
    """The request's form fields, first value of each, as text (400 for bad UTF-8; in a
    multipart upload, a field that is not text is left to the page that reads files)."""
    out: dict[str, str] = {}
    multipart = (request.getHeader("content-type") or "").startswith("multipart/form-data")
    for key, values in (request.args or {}).items():
        try:
            name = key.decode("utf-8")
            out.setdefault(name, values[0].decode("utf-8") if values else "")
        except UnicodeDecodeError:
            if multipart:
                continue  # an uploaded file: its page reads the bytes itself
            raise Refused(400, "the form is not UTF-8 text") from None
    return out


def number_arg(value: str | int) -> int:
    """A numeric id from a URL; anything else is a page that does not exist."""
    text = str(value)
    if not text.isdigit() or len(text) > 18:
        raise Refused(404, "There is no such page.")
    return int(text)


def set_cookie(request: IRequest, name: str, value: str, path: str, max_age: int) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    add: Any = request.addCookie  # IRequest's declaration lacks httpOnly and sameSite
    add(name.encode(), value.encode(), path=path.encode(), httpOnly=True,
        secure=request.isSecure(), sameSite="strict", max_age=str(max_age).encode())


def session_id(request: IRequest, name: str) -> str:
    value = request.getCookie(name.encode())
    try:
        return value.decode("ascii") if value else ""
    except UnicodeDecodeError:
        return ""


#: How long a login form's pre-login cookie lasts: a form left open longer asks for a reload.
LOGIN_FORM_LIFETIME = 12 * 3600
LOGIN_FORM_EXPIRED = ("This login form has expired or did not come from this site. Reload "
                      "the login page (the form below is a fresh one) and log in again.")


def login_form_token(request: IRequest, cookie: str, root: str) -> str:
    """The CSRF token of a login form, bound to the pre-login cookie ``cookie`` (a random
    value, only ever sent to ``root/login``; made when the browser has none).  No session
    exists yet and nothing is stored: the form is good when its token is the one derived
    from the cookie that comes with it, which another site can neither read nor set."""
    nonce = session_id(request, cookie)
    if not _good_nonce(nonce):
        nonce = secrets.token_urlsafe(32)
    set_cookie(request, cookie, nonce, root + "/login", LOGIN_FORM_LIFETIME)
    return _derived_token(nonce, root)


def login_form_sent(request: IRequest, cookie: str, root: str, data: dict[str, str]) -> bool:
    """Whether a login POST carries the token of a form this browser got from us."""
    nonce = session_id(request, cookie)
    sent = data.get("_csrf", "")
    if not _good_nonce(nonce) or not sent:
        return False
    return hmac.compare_digest(sent.encode(), _derived_token(nonce, root).encode())


def _good_nonce(nonce: str) -> bool:
    return 32 <= len(nonce) <= 64 and all(c.isalnum() or c in "-_" for c in nonce)


def _derived_token(nonce: str, root: str) -> str:
    # the page never carries the (HttpOnly) cookie's value itself
    return hmac.new(nonce.encode(), f"login-form:{root}".encode(), hashlib.sha256).hexdigest()


def check_csrf(session: WebSession, data: dict[str, str], request: IRequest) -> None:
    sent = data.get("_csrf") or (request.getHeader("X-CSRF-Token") or "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise Refused(403, "This form has expired or did not come from this site. "
                      "Go back, reload the page and send it again.")


def secure_headers(request: IRequest, content_type: bytes = b"text/html; charset=utf-8") -> None:
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"X-Frame-Options", b"DENY")
    request.setHeader(b"Referrer-Policy", b"same-origin")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Security-Policy",
                      b"default-src 'self'; img-src 'self' data:; media-src 'self'; "
                      b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class LoginGuard:
    """Failed logins counted per name and per address (shared across processes when the
    counters are in Redis): guessing passwords is not practical."""

    counters: Counters

    async def refused(self, kind: str, name: str, address: str) -> str:
        """'' when a login may be tried; else why not."""
        if (await self.counters.hits(f"weblogin:{kind}:name:{name}", LOGIN_WINDOW)
                >= LOGIN_FAILURES_PER_NAME or
                await self.counters.hits(f"weblogin:{kind}:addr:{address}", LOGIN_WINDOW)
                >= LOGIN_FAILURES_PER_ADDRESS):
            return "Too many failed logins. Wait 15 minutes and try again."
        return ""

    async def failed(self, kind: str, name: str, address: str) -> None:
        await self.counters.hit(f"weblogin:{kind}:name:{name}", LOGIN_WINDOW)
        await self.counters.hit(f"weblogin:{kind}:addr:{address}", LOGIN_WINDOW)

    async def succeeded(self, kind: str, name: str) -> None:
        await self.counters.reset(f"weblogin:{kind}:name:{name}")


async def password_matches(password: str, stored: str) -> bool:
    """Checked on a thread: a slow hash must not hold up calls on the reactor."""
    if not password or not stored:
        return False
    result: Any = await deferToThread(verify_password, password, stored)
    return bool(result)


# ---------------------------------------------------------------------- the pages' answers

SERVER_FAULT = ("Something went wrong on the server; it is in the log. Nothing was changed "
                "unless the page says so.")
DATABASE_AWAY = ("The service's database is not answering just now, so nothing could be "
                 "read or saved. Please try again in a minute; if it lasts, tell the "
                 "operator (the server's log says what is wrong).")


def redirect_answer(request: IRequest, location: str) -> bytes:
    """A 303 to ``location`` (after a form, or to the login page), never cached."""
    request.setResponseCode(303)
    request.setHeader(b"Location", location.encode("utf-8"))
    request.setHeader(b"Cache-Control", b"no-store")
    return b""


def failure_code(request: IRequest, failure: Any) -> tuple[int, str]:
    """The code and message of a request that raised: Werkzeug's own (404 no such route,
    405 …), 503 while the database is not answering (a warning), or 500 for a fault of
    ours — logged here with the request."""
    from werkzeug.exceptions import HTTPException

    from xvbd.logs import logger
    from xvbd.store.db import DatabaseUnavailable

    if failure.check(HTTPException):
        code = failure.value.code or 500
        return code, "There is no such page." if code == 404 else failure.value.description
    if failure.check(DatabaseUnavailable):
        logger("xvbd.web").warn("web request {uri}: {why}", uri=request.uri,
                                why=failure.getErrorMessage())
        return 503, DATABASE_AWAY
    logger("xvbd.web").failure("web request {uri} failed", failure, uri=request.uri)
    return 500, SERVER_FAULT


def safe_next(request: IRequest, data: dict[str, str] | None, root: str) -> str:
    """Where to go after logging in: a path under ``root`` only (never another site)."""
    raw = (data or {}).get("next") or request.args.get(b"next", [b""])[0].decode(
        "utf-8", "replace")
    if not raw.startswith(root + "/") or raw.startswith("//") or "\\" in raw:
        return root + "/"
    return raw
