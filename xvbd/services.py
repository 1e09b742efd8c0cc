"""Service plumbing of the one process: ordered stop, listeners that fail loudly at start,
the database pool's life."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.python.failure import Failure

from xvbd.logs import logger
from xvbd.store import Database

log = logger("xvbd.services")


class StartupError(Exception):
    """The process cannot start; the message tells the operator what to change."""


class OrderedMultiService(MultiService):
    """Children start in the order added and stop one after another in reverse order, each
    waiting for the one before (listeners close and calls finish before the CDR emitter
    flushes and before the database pool closes)."""

    #: After a stop: did every child stop without an error?
    stopped_cleanly: bool | None = None

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        self.stopped_cleanly = True
        for child in reversed(list(self)):
            try:
                await _maybe_deferred(child.stopService)
            except Exception:
                self.stopped_cleanly = False
                log.failure("stopping {name} failed", name=child.name)


async def _maybe_deferred(fn: Callable[[], Any]) -> Any:
    result = fn()
    if isinstance(result, Deferred):
        return await result
    return result


class ListenerService(Service):
    """Listens on an endpoint string at privileged start, synchronously, so a port that
    cannot be opened stops the start with a clear message instead of a silent half-start."""

    def __init__(self, name: str, config_key: str, description: str, factory: IProtocolFactory,
                 reactor: Any, on_stop: Callable[[], Awaitable[None]] | None = None) -> None:
        self.name = name
        self.config_key = config_key
        self.description = description
        self.factory = factory
        self.reactor = reactor
        self.port: IListeningPort | None = None
        self._on_stop = on_stop

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        outcome: list[Any] = []
        try:
            endpoint = serverFromString(self.reactor, self.description)
            endpoint.listen(self.factory).addBoth(outcome.append)
        except Exception as exc:  # a malformed description or missing TLS files
            outcome.append(Failure(exc))
        if not outcome:
            raise StartupError(f"{self.config_key} {self.description}: the endpoint did not "
                               "start listening at once; use a tcp:, ssl: or unix: endpoint")
        if isinstance(outcome[0], Failure):
            reason = outcome[0].getErrorMessage()
            raise StartupError(f"cannot listen on {self.config_key} = {self.description}: "
                               f"{reason}; free that port or change {self.config_key}")
        self.port = outcome[0]

    def startService(self) -> None:
        if self.port is None:  # started without privilegedStartService (tests, embedding)
            self.privilegedStartService()
        super().startService()

    def address(self) -> str:
        """What the port really is bound to, as ``tcp:HOST:PORT`` (port 0 resolved)."""
        if self.port is None:
            return "-"
        host: Any = self.port.getHost()
        kind = getattr(host, "type", "UNIX").lower()
        if hasattr(host, "port"):
            return f"{kind}:{host.host}:{host.port}"
        return f"unix:{getattr(host, 'name', '?')}"

    async def _stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            await _maybe_deferred(port.stopListening)
        if self._on_stop is not None:
            await self._on_stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())


class DatabaseService(Service):
    """Owns the pool: started with the process, closed last."""

    name = "store"

    def __init__(self, db: Database) -> None:
        self.db = db

    def startService(self) -> None:
        super().startService()
        self.db.start()

    def stopService(self) -> None:
        super().stopService()
        self.db.close()


def fail_start(code: int, message: str) -> None:
    """Tell the operator why the process cannot start, and exit with ``code``."""
    sys.stderr.write(f"xvbd: cannot start: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)
