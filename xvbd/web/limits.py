"""How much of the process slow or many web clients may take (``[WEB]`` HEADER_TIMEOUT,
BODY_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS, FD_SHARE).

- A request's head must arrive whole within ``HEADER_TIMEOUT`` s of its first byte (a byte
  a second does not extend it), its body within ``BODY_TIMEOUT`` s of the end of its head;
  a late one is answered 408 and its connection closed.  A connection with no request under
  way is closed after ``IDLE_TIMEOUT`` s without a byte (Twisted's own idle timeout).
- :class:`ConnectionGate` counts the open connections, in all and per client address; one
  over a cap is answered 503 at once and closed, and counted.  A trusted proxy's
  connections (``[WEB] TRUSTED_PROXIES``) are not capped per address: behind nginx every
  connection comes from it.  A cap that starts refusing says so in one WARN line (again at
  most once a minute while it lasts).
- :func:`fit_descriptors`: the web may hold at most ``FD_SHARE`` of the open-file limit, so
  it can never take the descriptors FastAGI needs.  At start the soft limit is raised (up to
  the hard one) to make ``MAX_CONNECTIONS`` fit; when it cannot be, the cap is lowered and a
  WARN says which keys to change.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource

from xvbd.logs import logger
from xvbd.web.security import WebSite, _within

log = logger("xvbd.web")

#: Seconds between two WARN lines of a cap that goes on refusing.
REPEAT_WARNING = 60.0

TOTAL, PER_ADDRESS = "MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_ADDRESS"


@dataclass(frozen=True)
class WebLimits:
    """The ``[WEB]`` limits (seconds; connections; a share of the open-file limit)."""

    header_timeout: float = 10.0
    body_timeout: float = 120.0
    idle_timeout: float = 75.0
    max_connections: int = 1024
    max_connections_per_address: int = 64
    fd_share: float = 0.25

    @classmethod
    def of(cls, web: Any) -> WebLimits:
        """The limits of a :class:`~xvbd.config.WebSettings`."""
        return cls(web.header_timeout, web.body_timeout, web.idle_timeout,
                   web.max_connections, web.max_connections_per_address, web.fd_share)


class ConnectionGate:
    """Counts the web's open connections, in all and per address, and refuses those over a
    cap; counts what it refused and the connections closed for being too slow."""

    def __init__(self, max_connections: int, max_per_address: int, clock: Any) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.clock = clock
        self.open = 0
        self.by_address: dict[str, int] = {}
        self.refused = {TOTAL: 0, PER_ADDRESS: 0}
        self.timed_out = {"header": 0, "body": 0, "idle": 0}
        self._warned_at: dict[str, float] = {}

    def admit(self, host: str | None) -> str | None:
        """Count a new connection from ``host`` (None: not capped per address); the name
        of the cap that refuses it, or None when it is admitted."""
        if self.open >= self.max_connections:
            return self._refuse(TOTAL, host)
        if host is not None:
            held = self.by_address.get(host, 0)
            if held >= self.max_per_address:
                return self._refuse(PER_ADDRESS, host)
            self.by_address[host] = held + 1
        self.open += 1
        return None

    def release(self, host: str | None) -> None:
        """An admitted connection from ``host`` is closed."""
        self.open -= 1
        if host is not None:
            held = self.by_address.pop(host, 1) - 1
            if held > 0:
                self.by_address[host] = held

    def _refuse(self, cap: str, host: str | None) -> str:
        self.refused[cap] += 1
        now = self.clock.seconds()
        last = self._warned_at.get(cap)
        if last is None or now - last >= REPEAT_WARNING:
            self._warned_at[cap] = now
            count = self.refused[cap]
            if cap == TOTAL:
                log.warn("the web refuses new connections (503): {open} are open, [WEB] "
                         "MAX_CONNECTIONS = {cap} ({count} refused since the start). "
                         "Raise [WEB] MAX_CONNECTIONS (and FD_SHARE or the open-file limit "
                         "with it) if these are real clients", open=self.open,
                         cap=self.max_connections, count=count)
            else:
                log.warn("the web refuses new connections (503) from {host}: it has {held} "
                         "open, [WEB] MAX_CONNECTIONS_PER_ADDRESS = {cap} ({count} refused "
                         "from all addresses since the start). Raise "
                         "MAX_CONNECTIONS_PER_ADDRESS, or, when {host} is a proxy in front of "
                         "the web, list it in [WEB] TRUSTED_PROXIES (a trusted proxy is not "
                         "capped per address)",
                         host=host, held=self.by_address.get(host or "", 0),
                         cap=self.max_per_address, count=count)
        return cap


def _answer(status: bytes, text: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 " + status, b"Content-Type: text/plain; charset=utf-8",
            b"Content-Length: %d" % len(text), *extra, b"Connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n" + text


BUSY = _answer(b"503 Service Unavailable", b"Too many connections; try again in a moment.\n",
               b"Retry-After: 10")
LATE = _answer(b"408 Request Timeout", b"The request came too slowly; send it again.\n")


class RefusedConnection(Protocol):
    """A connection over a cap: answered 503 and closed at once (aborted if it is still
    open a few seconds later)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._abort: IDelayedCall | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self._abort = self.clock.callLater(LimitedChannel.abortTimeout,
                                           self.transport.abortConnection)  # type: ignore[attr-defined]
        self.transport.write(BUSY)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """What it sends is not read."""

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None


class LimitedChannel(HTTPChannel):
    """An ``HTTPChannel`` with deadlines for a request's head and body, made by
    :class:`LimitedSite`.  Its phase is ``idle`` (between requests: Twisted's idle timeout,
    ``timeOut``, is ``IDLE_TIMEOUT``), ``head``, ``body``, ``handling`` (the site works on
    the request) or ``closing``."""

    abortTimeout = 5  # seconds a closed connection's client gets to go before it is aborted
    site: LimitedSite
    gate_host: str | None = None
    _phase = "idle"
    _deadline: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._phase == "closing":
            return
        if self._phase == "idle" and data:
            self._phase = "head"
            self._deadline = self.callLater(self.site.limits.header_timeout, self._head_late)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._cancel_deadline()
        if self.length != 0:
            self._phase = "body"
            self._deadline = self.callLater(self.site.limits.body_timeout, self._body_late)
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        self._cancel_deadline()
        self._phase = "handling"
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self._phase = "idle"
        super().requestDone(request)

    def timeoutConnection(self) -> None:
        """Twisted's idle timeout: no byte for ``IDLE_TIMEOUT`` s."""
        if self._phase in ("head", "body"):
            self._too_late("header" if self._phase == "head" else "body")
            return
        self.site.gate.timed_out["idle"] += 1
        self._close(b"")

    def _head_late(self) -> None:
        self._too_late("header")

    def _body_late(self) -> None:
        self._too_late("body")

    def _too_late(self, what: str) -> None:
        self.site.gate.timed_out[what] += 1
        self._close(LATE)

    def _close(self, answer: bytes) -> None:
        self._phase = "closing"
        self._cancel_deadline()
        self.setTimeout(None)
        transport: Any = self.transport
        if getattr(transport, "disconnecting", False):
            transport.abortConnection()
            return
        # The abort is set first: connectionLost (which cancels it) may come at once.
        self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        if answer:
            transport.write(answer)
        self.loseConnection()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._phase = "closing"
        self._cancel_deadline()
        self.site.gate.release(self.gate_host)
        super().connectionLost(reason)


class LimitedSite(WebSite):
    """The web's ``Site`` with :class:`WebLimits`: each connection goes through the
    :class:`ConnectionGate` and is served by a :class:`LimitedChannel`."""

    protocol = LimitedChannel  # type: ignore[assignment]

    def __init__(self, resource: IResource, limits: WebLimits, reactor: Any = None,
                 rlimits: Any = resource) -> None:
        super().__init__(resource, timeout=limits.idle_timeout, reactor=reactor)
        self.limits = limits
        self.rlimits = rlimits
        self.gate = ConnectionGate(limits.max_connections, limits.max_connections_per_address,
                                   self.reactor)

    def startFactory(self) -> None:
        """When the web starts listening: the open-file limit is made to fit the caps."""
        self.gate.max_connections = fit_descriptors(self.limits, self.rlimits)
        super().startFactory()

    def buildProtocol(self, addr: Any) -> Any:
        host = getattr(addr, "host", None)
        if host is not None and _within(str(host), self.trusted_proxies):
            host = None  # a trusted proxy speaks for many clients: capped only in all
        if self.gate.admit(host) is not None:
            return RefusedConnection(self.reactor)
        channel = super().buildProtocol(addr)
        channel.gate_host = host
        return channel


def fit_descriptors(limits: WebLimits, rlimits: Any = resource) -> int:
    """How many connections the web may hold: ``MAX_CONNECTIONS``, once the soft open-file
    limit is at least ``MAX_CONNECTIONS / FD_SHARE`` (raised up to the hard limit when it is
    lower); when the hard limit is too low, ``FD_SHARE`` of it, with a WARN."""
    soft, hard = rlimits.getrlimit(rlimits.RLIMIT_NOFILE)
    infinite = rlimits.RLIM_INFINITY
    need = math.ceil(limits.max_connections / limits.fd_share)
    if soft == infinite or soft >= need:
        return limits.max_connections
    target = need if hard == infinite else min(need, hard)
    if target > soft:
        try:
            rlimits.setrlimit(rlimits.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warn("cannot raise the open-file limit from {soft} to {target}: {exc}",
                     soft=soft, target=target, exc=exc)
        else:
            log.info("open-file limit raised from {soft} to {target} for [WEB] "
                     "MAX_CONNECTIONS = {cap} at FD_SHARE = {share}", soft=soft,
                     target=target, cap=limits.max_connections, share=limits.fd_share)
            soft = target
    if soft >= need:
        return limits.max_connections
    allowed = max(1, int(soft * limits.fd_share))
    log.warn("[WEB] MAX_CONNECTIONS = {cap} does not fit in [WEB] FD_SHARE = {share} of the "
             "open-file limit {soft} (hard limit {hard}): the web takes at most {allowed} "
             "connections. Raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) to "
             "{need}, or lower MAX_CONNECTIONS, or raise FD_SHARE", cap=limits.max_connections,
             share=limits.fd_share, soft=soft, hard=hard, allowed=allowed, need=need)
    return allowed
