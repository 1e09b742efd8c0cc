"""A FastAGI session that reads Asterisk's environment block and closes: until the call
engine is installed, Asterisk sees AGISTATUS=FAILURE and the dialplan plays its fallback."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.protocols.basic import LineOnlyReceiver

from xvbd.logs import logger

log = logger("xvbd.agi")


class EnvOnlySession(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 8192
    factory: Any

    def connectionMade(self) -> None:
        self.factory.session_started(self)

    def lineReceived(self, line: bytes) -> None:
        if not line.strip():
            assert self.transport is not None
            log.warn("FastAGI call refused: the call engine is not installed")
            self.transport.loseConnection()

    def finish(self, reason: str) -> Deferred[None]:
        assert self.transport is not None
        self.transport.loseConnection()
        return succeed(None)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.session_ended(self)
