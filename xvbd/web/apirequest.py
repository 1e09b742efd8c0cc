"""The frame of the JSON/XML APIs (the operator's under ``/ai/api`` and the tenants'
under ``/ui/api``): HTTP Basic credentials, the answer's format, the query and the body
checked against field lists, and answers and errors written in the chosen format."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from klein import Klein
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException

from xvbd.logs import logger
from xvbd.store.db import DatabaseUnavailable
from xvbd.web import apiformat
from xvbd.web.forms import Field, parse_fields, unknown_fields
from xvbd.web.security import DATABASE_AWAY, Refused, secure_headers

log = logger("xvbd.web.api")

#: Largest request body accepted (an object's fields are well under 4 KiB).
BODY_LIMIT = 64 * 1024
REALM = 'Basic realm="xvbd"'


class ApiError(Exception):
    """An answer other than 200: ``code``, a message for the person reading it, and (for
    a bad request) what is wrong with each field."""

    def __init__(self, code: int, message: str, fields: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})




def basic_credentials(request: IRequest, *, cookie: str, who: str) -> tuple[str, str]:
    """(login, password) of the request's HTTP Basic credentials, or a 401 saying that
    ``who`` (an admin's or a partner's login…) is wanted; the pages' session ``cookie``
    alone is refused with a message saying so."""
    header = request.getHeader("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        if request.getCookie(cookie.encode()):
            message = ("The API does not use the web pages' login session: send your login "
                       "and password with HTTP Basic authentication.")
        else:
            message = f"The API needs HTTP Basic authentication with {who}."
        raise ApiError(401, message, headers={"WWW-Authenticate": REALM})
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(401, "The Authorization header is not HTTP Basic: it must be "
                       "'Basic ' and the base64 of login:password.",
                       headers={"WWW-Authenticate": REALM}) from None
    login, colon, password = decoded.partition(":")
    if not colon:
        raise ApiError(401, "The Authorization header has no password (login:password).",
                       headers={"WWW-Authenticate": REALM})
    return login.strip()[:64], password


def negotiate_format(request: IRequest, *, strict: bool = True) -> str:
    """'xml' or 'json': the path's ``.xml``, then ``?format=``, then ``Accept``; a
    ``format`` that is neither is a 400 when ``strict``, else ignored."""
    if request.path.endswith(b".xml"):
        return "xml"
    query = dict(parse_qsl(urlsplit(request.uri).query.decode("latin-1")))
    chosen = query.get("format", "")
    if chosen in ("json", "xml"):
        return chosen
    if chosen and strict:
        raise ApiError(400, "format is json or xml.", {"format": "json or xml"})
    best = {"json": 0.0, "xml": 0.0}
    for part in (request.getHeader("Accept") or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = {"application/json": "json", "application/xml": "xml",
                "text/xml": "xml"}.get(media.lower())
        if kind:
            best[kind] = max(best[kind], q)
    return "xml" if best["xml"] > best["json"] else "json"


def query_fields(request: IRequest, fields: Sequence[Field]) -> dict[str, Any]:
    """The query string's parameters (besides ``format``), checked against ``fields``."""
    try:
        pairs = parse_qsl(urlsplit(request.uri).query.decode("ascii"),
                          keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "The query string is not valid UTF-8.") from None
    data: dict[str, str] = {}
    for name, value in pairs:
        data.setdefault(name, value)
    data.pop("format", None)
    data = {k: v for k, v in data.items() if v != ""}
    errors = unknown_errors(fields, data, "this endpoint's query")
    values, bad = parse_fields(fields, data, partial=True)
    errors.update(bad)
    if errors:
        raise ApiError(400, "Some query parameters are not right.", errors)
    return values


def _no_constant(name: str) -> None:
    """NaN and Infinity are no JSON (Python's reader takes them): refused."""
    raise ValueError(f"{name} is not a JSON value")


def body_fields(request: IRequest, nested: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's fields: a JSON object or a form, at most :data:`BODY_LIMIT` bytes;
    only the fields named in ``nested`` may hold a JSON list or object."""
    length = request.getHeader("Content-Length") or "0"
    if not length.isdigit() or int(length) > BODY_LIMIT:
        raise ApiError(413, f"The request body is larger than {BODY_LIMIT} bytes.")
    request.content.seek(0)
    raw = request.content.read(BODY_LIMIT + 1)
    if len(raw) > BODY_LIMIT:
        raise ApiError(413, f"The request body is larger than {BODY_LIMIT} bytes.")
    kind = (request.getHeader("Content-Type") or "").split(";")[0].strip().lower()
    if not raw.strip():
        return {}
    if kind == "application/json":
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except RecursionError:
            raise ApiError(400, "The body is not valid JSON: it is nested too deeply.") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, f"The body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The body must be a JSON object of field names and values.")
        wrong = {k: f"{k}: one value (text, a number or true/false), not a list or object"
                 for k, v in data.items() if isinstance(v, list | dict) and k not in nested}
        if wrong:
            raise ApiError(400, "Some fields are not right.", wrong)
        return data
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "The form is not valid UTF-8.") from None
        out: dict[str, Any] = {}
        for name, value in pairs:
            out.setdefault(name, value)
        return out
    raise ApiError(415, "Send the fields as JSON (Content-Type: application/json) or as a "
                   "form (application/x-www-form-urlencoded).")


def unknown_errors(fields: Sequence[Field], data: Mapping[str, Any], what: str) -> dict[str, str]:
    known = ", ".join(f.name for f in fields) or "none"
    return {name: f"{name}: not a field of {what} (they are: {known})"
            for name in unknown_fields(fields, data)}


def time_arg(args: Mapping[str, Any], name: str, errors: dict[str, str]) -> int | None:
    """A time filter as Unix seconds: given as seconds or as ISO 8601 (UTC unless it says)."""
    text = str(args.get(name) or "")
    if not text:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors[name] = (f"{name}: Unix seconds or a date like 2026-11-26 or "
                        f"2026-11-26T08:00:00Z, got {text!r}")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())



def plain(obj: Any, *, money: Sequence[str] | frozenset[str] = (),
           times: Sequence[str] = ()) -> dict[str, Any]:
    """A stored object as the API gives it: money and times each as two fields."""
    out: dict[str, Any] = {}
    for name, value in asdict(obj).items():
        if name in money:
            out.update(apiformat.money_fields(name, value))
        elif name in times:
            out.update(apiformat.time_fields(name, value))
        else:
            out[name] = value
    return out



def answer(request: IRequest, fmt: str, data: Any,
           item_names: Mapping[str, str] | None = None) -> bytes:
    body, content_type = apiformat.render(data, fmt, item_names)
    secure_headers(request, content_type)
    return body


def error_answer(request: IRequest, fmt: str, exc: ApiError,
                 item_names: Mapping[str, str] | None = None) -> bytes:
    request.setResponseCode(exc.code)
    for name, value in exc.headers.items():
        request.setHeader(name.encode(), value.encode())
    data: dict[str, Any] = {"error": exc.message}
    if exc.fields:
        data["fields"] = exc.fields
    return answer(request, fmt, data, item_names)


# ---------------------------------------------------------------------- routes

Handler = Callable[..., Awaitable[Any]]
Endpoint = Callable[[str, Sequence[str], str], Callable[[Handler], Handler]]


def endpoints(app: Klein, serve: str, prefix: str) -> Endpoint:
    """A decorator factory: ``@endpoint(path, methods, name)`` registers
    ``handler(self, request, caller, **route_args) -> data`` on ``app`` at ``path`` and at
    ``path.xml``; the app's method named ``serve`` does the checks and writes the answer.
    Route names start with ``prefix`` (``api_users``)."""
    def endpoint(path: str, methods: Sequence[str], name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def route(self: Any, request: IRequest, **kw: Any) -> bytes:
                result: bytes = await getattr(self, serve)(request, handler, kw)
                return result
            for suffix in ("", ".xml"):
                app.route(path + suffix, methods=list(methods),
                          endpoint=f"{prefix}_{name}{suffix.replace('.', '_')}")(route)
            return handler
        return register
    return endpoint


def no_such_endpoint(app: Klein, request: IRequest, root: str, unknown: str) -> ApiError:
    """The error for a request no endpoint took: 405 with ``Allow`` when the path exists
    with other methods, else 404.  ``unknown`` starts the names of the catch-all routes."""
    path = request.path.decode("utf-8", "replace")
    adapter = app.url_map.bind("localhost")
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            name, _ = adapter.match(path.removeprefix(root), method=method)
        except HTTPException:
            continue
        if not str(name).startswith(unknown):
            allowed.append(method)
    if allowed:
        return ApiError(405, f"{path} does not take "
                        f"{request.method.decode('ascii', 'replace')}; it takes "
                        f"{', '.join(allowed)}.", headers={"Allow": ", ".join(allowed)})
    return ApiError(404, f"There is no API endpoint {path}; the endpoints are listed in "
                    "docs/api.md.")


# ---------------------------------------------------------------------- proven logins


@dataclass(frozen=True)
class _Proof:
    who: Any  # what the login named when its password was checked
    stored: str  # the hash it was checked against
    expires: float


class ProvenLogins:
    """Logins whose password was checked a moment ago, so that a script's requests do not
    each pay for a slow hash.  Keyed by the login and a keyed digest of the password (the
    password itself is never kept); a proof holds only while the login still names the
    same account with the same stored hash, for ``seconds``."""

    def __init__(self, seconds: float = 60.0, size: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.size, self.clock = seconds, size, clock
        self._secret = os.urandom(32)
        self._proofs: dict[tuple[str, bytes], _Proof] = {}

    def key(self, login: str, password: str) -> tuple[str, bytes]:
        return login, hmac.new(self._secret, password.encode("utf-8"), hashlib.sha256).digest()

    def keys(self) -> list[tuple[str, bytes]]:
        return list(self._proofs)

    def holds(self, key: tuple[str, bytes], who: Any, stored: str) -> bool:
        """Whether the password of ``key`` was proven for ``who`` against ``stored``."""
        proof = self._proofs.get(key)
        if (proof is not None and proof.expires > self.clock() and proof.who == who and
                hmac.compare_digest(proof.stored.encode(), stored.encode())):
            return True
        self._proofs.pop(key, None)
        return False

    def remember(self, key: tuple[str, bytes], who: Any, stored: str) -> None:
        now = self.clock()
        if len(self._proofs) >= self.size:
            for old in [k for k, p in self._proofs.items() if p.expires <= now]:
                del self._proofs[old]
            if len(self._proofs) >= self.size:
                self._proofs.clear()
        self._proofs[key] = _Proof(who, stored, now + self.seconds)

    def forget(self, login: str) -> None:
        """A wrong password for ``login``: what was proven for it is proven no more."""
        for key in [k for k in self._proofs if k[0] == login]:
            del self._proofs[key]


# ---------------------------------------------------------------------- serving


async def serve(request: IRequest, item_names: Mapping[str, str],
                work: Callable[[], Awaitable[Any]], what: str,
                respond: Callable[[str, Any], bytes | None] | None = None) -> bytes:
    """Run ``work`` (the checks, then the endpoint) and answer in the format the request
    asked for: its data, or the error it raised (:class:`ApiError`, a page's
    :class:`Refused`, anything else as a logged 500).  ``respond`` may answer some data
    itself (a sound); None lets the format's answer be written."""
    fmt = negotiate_format(request, strict=False)
    try:
        data = await work()
    except ApiError as exc:
        return error_answer(request, fmt, exc, item_names)
    except Refused as exc:
        return error_answer(request, fmt, ApiError(exc.code, exc.message), item_names)
    except DatabaseUnavailable as exc:
        log.warn("{what} {method} {uri}: {why}", what=what, method=request.method,
                 uri=request.uri, why=str(exc))
        request.setHeader("Retry-After", "60")
        return error_answer(request, fmt, ApiError(503, DATABASE_AWAY), item_names)
    except Exception:
        log.failure("{what} {method} {uri} failed", what=what, method=request.method,
                    uri=request.uri)
        return error_answer(request, fmt, ApiError(
            500, "Something went wrong on the server; it is in the log. Nothing was "
            "changed unless a later read shows it."), item_names)
    special = respond(fmt, data) if respond is not None else None
    return special if special is not None else answer(request, fmt, data, item_names)


async def unknown_endpoint(request: IRequest, item_names: Mapping[str, str],
                           trusted: Callable[[IRequest], None], app: Klein, root: str,
                           unknown: str) -> bytes:
    """The answer to a request no endpoint took, in the API's format (to a trusted address
    that asked for a format the API writes): 405 or 404 (:func:`no_such_endpoint`)."""
    async def work() -> Any:
        trusted(request)
        negotiate_format(request)
        raise no_such_endpoint(app, request, root, unknown)
    return await serve(request, item_names, work, "API request")
