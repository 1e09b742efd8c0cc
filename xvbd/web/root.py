"""The Klein root of the web listener: ``/healthz`` for load balancers and monitoring,
``/metrics`` for Prometheus (:mod:`xvbd.metrics`), ``/static/xvbd.css`` (the stylesheet),
the operator's web under ``/ai/`` and the tenants' under ``/ui/``."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, TimeoutError
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource
from twisted.web.server import Request, Site
from werkzeug.exceptions import HTTPException

import xvbd
from xvbd.logs import logger
from xvbd.store import Database
from xvbd.store.migrations import HEAD, current_version
from xvbd.web.limits import LimitedSite, WebLimits

log = logger("xvbd.web")


#: The largest request body the web takes (a greeting upload is at most 20 MB).
MAX_BODY = 25 * 1024 * 1024


class BoundedRequest(Request):
    """A request whose body may be at most :data:`MAX_BODY` bytes.  A bigger one is
    answered 413 at once and its connection closed: by its Content-Length before a byte of
    the body is read, or, when it is chunked, as soon as it passes the limit — nothing is
    kept, no route runs."""

    max_body = MAX_BODY
    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse()
        super().gotLength(0 if self._refused else length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse()
        if not self._refused:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        if self._refused:
            return
        self._refused = True
        body = (f"The request is larger than {self.max_body // (1024 * 1024)} MB; send a "
                "smaller file.\n").encode()
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self.channel.loseConnection()


def web_site(resource: IResource, trusted_proxies: Sequence[str] = (),
             limits: WebLimits | None = None, reactor: Any = None) -> Site:
    """The web's ``Site``: requests bounded by :class:`BoundedRequest`; the client's
    address read through ``trusted_proxies`` (see ``security.client_address``); slow and
    too many clients cut off by ``limits`` (:mod:`xvbd.web.limits`)."""
    site = LimitedSite(resource, limits or WebLimits(), reactor=reactor)
    site.requestFactory = BoundedRequest
    site.trusted_proxies = tuple(ipaddress.ip_network(n, strict=False)
                                 for n in trusted_proxies)
    return site


class WebRoot:
    """Routes of the site root.  ``db_timeout`` bounds how long a health check waits;
    ``components`` say how the other parts are (Redis, AMI, CDR sinks, reactor lag): each
    is reported under its name, none turns the answer into a 503 (calls are served
    without them).  ``metrics`` (a :class:`~xvbd.metrics.MetricsPage`) serves
    ``/metrics``; without it, there is none."""

    app = Klein()

    def __init__(self, db: Database, server_id: str, clock: Any, db_timeout: float = 3.0,
                 admin: Any = None, tenant: Any = None,
                 components: Mapping[str, Callable[[], Any]] | None = None,
                 metrics: Any = None) -> None:
        self.db = db
        self.metrics = metrics
        self.components = dict(components or {})
        self.server_id = server_id
        self.clock = clock
        self.db_timeout = db_timeout
        self.admin = admin
        self.tenant = tenant
        static = Path(__file__).resolve().parent / "static"
        self.stylesheet = (static / "xvbd.css").read_bytes()
        self.icon = (static / "favicon.svg").read_bytes()

    @app.route("/static/xvbd.css", methods=["GET", "HEAD"])
    def static_files(self, request: IRequest) -> bytes:
        """The one stylesheet, read at start (the pages need nothing else)."""
        request.setHeader(b"Content-Type", b"text/css; charset=utf-8")
        request.setHeader(b"Cache-Control", b"public, max-age=3600")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return self.stylesheet

    @app.route("/favicon.ico", methods=["GET", "HEAD"])
    @app.route("/static/favicon.svg", methods=["GET", "HEAD"])
    def icon_file(self, request: IRequest) -> bytes:
        """The pages' icon (SVG, read at start), also where browsers look for one unasked."""
        request.setHeader(b"Content-Type", b"image/svg+xml")
        request.setHeader(b"Cache-Control", b"public, max-age=86400")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return self.icon

    @app.route("/ai/", branch=True)
    def admin_web(self, request: IRequest) -> Any:
        if self.admin is None:
            return notFound("Not here", "The operator's web is not served by this process.")
        return self.admin.app.resource()

    @app.route("/ui/", branch=True)
    def tenant_web(self, request: IRequest) -> Any:
        if self.tenant is None:
            return notFound("Not here", "The tenants' web is not served by this process.")
        return self.tenant.app.resource()

    @app.route("/", methods=["GET"])
    def front(self, request: IRequest) -> bytes:
        """The site root sends a person to the tenants' login (the operator knows /ai/)."""
        request.setResponseCode(302)
        request.setHeader(b"Location", b"/ui/")
        return b""

    @app.route("/healthz", methods=["GET", "HEAD"])
    async def healthz(self, request: IRequest) -> bytes:
        """JSON: is this process up and can it reach its database?  200 when yes, 503 not.
        The other components are reported, but calls are served without them: no 503."""
        started = time.monotonic()
        check = Deferred.fromCoroutine(self.db.run_interaction(current_version))
        check.addTimeout(self.db_timeout, self.clock)
        db: dict[str, Any] = {"backend": self.db.backend}
        try:
            db["schema_version"] = await check
            db["reachable"] = True
            db["latency_ms"] = round((time.monotonic() - started) * 1000, 2)
        except TimeoutError:
            db.update(reachable=False, error=f"no answer within {self.db_timeout:g} s")
        except Exception as exc:
            db.update(reachable=False, error=str(exc))
            log.warn("health check: the database is not reachable: {error}", error=str(exc))
        healthy = db["reachable"] and db.get("schema_version") == HEAD
        if db["reachable"] and not healthy:
            db["error"] = (f"the database is at schema version {db['schema_version']}, "
                           f"this xvbd needs {HEAD}")
        request.setResponseCode(200 if healthy else 503)
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Cache-Control", "no-store")
        body = {"status": "ok" if healthy else "unavailable", "server_id": self.server_id,
                "version": xvbd.__version__, "db": db}
        for name, component in self.components.items():
            body[name] = component()
        return json.dumps(body).encode("utf-8")

    @app.route("/metrics", methods=["GET", "HEAD"])
    def prometheus(self, request: IRequest) -> Any:
        """The process in the Prometheus text format, for ``[WEB] METRICS_FROM`` only."""
        if self.metrics is None:
            return notFound("Not here", "This process serves no metrics.")
        return self.metrics.render(request)

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Any) -> bytes:
        request.setHeader("Content-Type", "application/json")
        if failure.check(HTTPException):
            request.setResponseCode(failure.value.code)
            return json.dumps({"status": "error", "error": failure.value.description}).encode()
        log.failure("web request {uri} failed", failure, uri=request.uri)
        request.setResponseCode(500)
        return b'{"status": "error", "error": "internal error; see the server log"}'
