"""Durations counted in buckets where they happen, read as histograms by ``/metrics``.

The call path only adds to a list (a bisect and two additions: no lock, no object made);
:mod:`xvbd.metrics` reads the counts when Prometheus asks.  :class:`ThreadDurations` is the
same for durations observed on other threads (the database pool's).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable

#: Bucket bounds (seconds) for what a caller would hear as a pause: 0.5 ms to 5 s.
PAUSE_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0)


class Durations:
    """How many durations fell at or under each bound (and over the last), and their sum.
    Observed on the reactor's thread only."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float] = PAUSE_BOUNDS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last: over the largest bound
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def snapshot(self) -> tuple[list[tuple[str, int]], float, int]:
        """Cumulative counts by upper bound (``+Inf`` last), the sum and the count, as a
        Prometheus histogram has them."""
        counts, total = list(self.counts), self.total
        buckets, running = [], 0
        for bound, n in zip((*[repr(b) for b in self.bounds], "+Inf"), counts, strict=True):
            running += n
            buckets.append((bound, running))
        return buckets, total, running

    @property
    def count(self) -> int:
        return sum(self.counts)


class ThreadDurations(Durations):
    """:class:`Durations` observed on several threads."""

    __slots__ = ("_lock",)

    def __init__(self, bounds: Iterable[float] = PAUSE_BOUNDS) -> None:
        super().__init__(bounds)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            super().observe(seconds)

    def snapshot(self) -> tuple[list[tuple[str, int]], float, int]:
        with self._lock:
            return super().snapshot()

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self.counts)
