"""Shared counters: concurrent calls per group and per user, and failure counts that
throttle guessing of access codes and PINs across calls.

:class:`LocalCounters` keeps them in this process (one xvbd).  A Redis implementation of the
same interface serves several processes (``[COMMON] MEM_CACHED_SHARED``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Protocol


class Counters(Protocol):
    async def acquire(self, key: str, limit: int) -> bool:
        """Take one slot of ``key``; False when ``limit`` (> 0) slots are taken."""

    async def release(self, key: str) -> None:
        """Give back one slot of ``key``."""

    async def current(self, key: str) -> int:
        """How many slots of ``key`` are taken."""

    async def hit(self, key: str, window: float) -> int:
        """Count one failure of ``key``; return the failures within the last ``window`` s."""

    async def hits(self, key: str, window: float) -> int:
        """The failures of ``key`` within the last ``window`` seconds."""

    async def reset(self, key: str) -> None:
        """Forget the failures of ``key``."""


class LocalCounters:
    """In-process counters; ``clock`` gives the time windows."""

    MAX_HITS_KEPT = 1000

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._slots: dict[str, int] = defaultdict(int)
        self._hits: dict[str, deque[float]] = {}

    async def acquire(self, key: str, limit: int) -> bool:
        if limit > 0 and self._slots[key] >= limit:
            return False
        self._slots[key] += 1
        return True

    async def release(self, key: str) -> None:
        if self._slots.get(key, 0) > 1:
            self._slots[key] -= 1
        else:
            self._slots.pop(key, None)

    async def current(self, key: str) -> int:
        return self._slots.get(key, 0)

    def _prune(self, key: str, window: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        horizon = self.clock.seconds() - window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    async def hit(self, key: str, window: float) -> int:
        hits = self._prune(key, window)
        if key not in self._hits:
            hits = self._hits[key] = deque(maxlen=self.MAX_HITS_KEPT)
        hits.append(self.clock.seconds())
        return len(hits)

    async def hits(self, key: str, window: float) -> int:
        return len(self._prune(key, window))

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)
