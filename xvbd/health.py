"""What ``/healthz`` reports besides the database: each part the calls depend on, read at
the moment of the request (nothing here waits on a server)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service

#: name -> a function that says how that part is, as JSON-ready data.
Component = Callable[[], Any]


class ReactorLag(Service):
    """How late the reactor runs a timer due every ``every`` seconds: a reactor blocked by
    a slow step shows here before callers hear it.  Reports the last lag and the worst of
    the last minute, in milliseconds."""

    name = "reactor-lag"

    def __init__(self, clock: Any, every: float = 1.0) -> None:
        self.clock = clock
        self.every = every
        self._lags: deque[float] = deque(maxlen=max(1, int(60 / every)))
        self._timer: Any = None
        self._due = 0.0

    def startService(self) -> None:
        super().startService()
        self._schedule()

    def stopService(self) -> None:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _schedule(self) -> None:
        self._due = self.clock.seconds() + self.every
        self._timer = self.clock.callLater(self.every, self._tick)

    def _tick(self) -> None:
        self._lags.append(max(0.0, self.clock.seconds() - self._due))
        self._schedule()

    def health(self) -> dict[str, float]:
        last = self._lags[-1] if self._lags else 0.0
        worst = max(self._lags, default=0.0)
        return {"last_ms": round(last * 1000, 2), "max_1min_ms": round(worst * 1000, 2)}


def ami_health(client: Any) -> Component:
    """The node's AMI session (CallBlast and Callback need it; inbound calls do not)."""
    def health() -> dict[str, Any]:
        return {"node": client.node_id, "where": client.where, "connected": client.connected}
    return health
