"""The FastAGI listener's factory: it knows the live sessions, so a stop can let calls
finish (up to ``[AGI] SHUTDOWN_GRACE`` seconds) and then end the rest with their records."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ServerFactory

from xvbd.logs import logger

log = logger("xvbd.agi")


class Session(Protocol):
    """What the factory needs of a live FastAGI session."""

    def finish(self, reason: str) -> Deferred[None]:
        """End the call now (records written); fires when the session is gone."""


class FastAGIFactory(ServerFactory):
    """Builds one protocol per Asterisk connection and tracks the live ones."""

    def __init__(self, protocol_class: Any, clock: Any) -> None:
        self.protocol = protocol_class
        self.clock = clock
        self.sessions: set[Any] = set()
        self._idle: list[Deferred[None]] = []

    def session_started(self, session: Any) -> None:
        self.sessions.add(session)

    def session_ended(self, session: Any) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def _when_idle(self) -> Deferred[None]:
        d: Deferred[None] = Deferred(lambda cancelled: self._idle.remove(cancelled))
        if not self.sessions:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the live calls to end, then finish the rest."""
        if not self.sessions:
            return
        log.info("waiting up to {grace} s for {n} call(s) in progress", grace=grace,
                 n=len(self.sessions))
        idle = self._when_idle()
        if grace > 0:
            idle.addTimeout(grace, self.clock, onTimeoutCancel=lambda *_: None)
            await idle
        if self.sessions:
            log.warn("ending {n} call(s) still in progress after {grace} s: xvbd is stopping",
                     n=len(self.sessions), grace=grace)
            for session in list(self.sessions):
                await session.finish("xvbd is stopping")
