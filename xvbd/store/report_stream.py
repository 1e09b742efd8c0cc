"""A report's run between its thread and the reactor: at most one per operator, its output
handed over in chunks that wait for the reader (so a slow browser holds the thread, never
memory), and small results kept for the report's cache TTL.

The thread (:func:`~xvbd.store.report_runner.run_report`) calls :meth:`Handover.put`, which
blocks while ``WINDOW`` chunks are with the reader; the web writes a chunk, waits until the
connection has room (its push producer resumed), then :meth:`LiveRun.ack` lets the thread
send the next.  When the browser goes away the run is stopped: ``put`` raises and SQLite's
progress handler interrupts the statement.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from xvbd.config import DatabaseURL
from xvbd.store.report_runner import (
    NO_ACCOUNT,
    Bounds,
    Column,
    Outcome,
    Render,
    ReportRefused,
    Stopped,
    run_report,
)
from xvbd.store.reports import Report

#: Chunks a thread may have handed over and the reader not yet written.
WINDOW = 2
#: A result this small (its rendered bytes) is kept for the report's cache TTL.
CACHE_BYTES = 1024 * 1024
_END = object()


class Handover:
    """The thread's chunks to the reactor, at most ``window`` unwritten at a time."""

    def __init__(self, reactor: Any, window: int = WINDOW) -> None:
        self._reactor = reactor
        self._credits = threading.Semaphore(window)
        self._stop = threading.Event()
        self._items: deque[Any] = deque()
        self._waiting: Deferred[Any] | None = None
        self._failure: Failure | None = None
        self.kept: list[bytes] | None = []  # the chunks, while they are few enough to cache
        self._kept_bytes = 0

    # ---------------------------------------------------------------- the thread's side

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def put(self, item: Any, deadline: float) -> None:
        """Hand ``item`` over once the reader has room; :class:`Stopped` if it went away,
        ``TimeoutError`` past ``deadline``."""
        while not self._credits.acquire(timeout=0.2):
            if self._stop.is_set():
                raise Stopped
            if time.monotonic() > deadline:
                raise TimeoutError
        if self._stop.is_set():
            raise Stopped
        if item[0] == "data" and self.kept is not None:
            self._kept_bytes += len(item[1])
            if self._kept_bytes <= CACHE_BYTES:
                self.kept.append(item[1])
            else:
                self.kept = None
        self._reactor.callFromThread(self._arrive, item)

    # ---------------------------------------------------------------- the reactor's side

    def _arrive(self, item: Any) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:  # not cancelled by a reader gone
            waiting.callback(item)
        else:
            self._items.append(item)

    def finish(self, result: Any) -> None:
        """The thread ended (``result`` an :class:`Outcome` or a failure)."""
        if isinstance(result, Failure):
            self._failure = result
            self._arrive(("failed", result))
        else:
            self._arrive(("end", result))

    async def get(self) -> Any:
        """The next item: ``("columns", …)``, ``("data", bytes)``, ``("end", Outcome)``; a
        failure of the thread is raised."""
        if self._items:
            item = self._items.popleft()
        else:
            self._waiting = Deferred()
            item = await self._waiting
        if item[0] == "failed":
            item[1].raiseException()
        return item

    def ack(self) -> None:
        """A chunk was written and the connection has room: the thread may send another."""
        self._credits.release()

    def stop(self) -> None:
        """The reader went away: the thread stops at its next chunk or progress check."""
        self._stop.set()
        self._credits.release()


@dataclass(frozen=True)
class ReportResult:
    """A finished run kept for the cache: its columns, rendered chunks and outcome."""

    columns: tuple[Column, ...]
    chunks: tuple[bytes, ...]
    outcome: Outcome


class ReportRun:
    """A run whose columns are known: iterate its chunks (``ack`` each once written), then
    read :attr:`outcome`; a failure after the first rows is raised by the iteration."""

    columns: tuple[Column, ...]
    outcome: Outcome | None = None

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def ack(self) -> None:
        """The last chunk was written and the reader has room."""

    def stop(self) -> None:
        """The reader went away."""


class CachedRun(ReportRun):
    def __init__(self, result: ReportResult) -> None:
        self.columns = result.columns
        self._result = result

    async def chunks(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        for chunk in self._result.chunks:
            yield chunk
        self.outcome = self._result.outcome


class LiveRun(ReportRun):
    def __init__(self, handover: Handover, columns: tuple[Column, ...],
                 ended: Deferred[None], first: Any) -> None:
        self.columns = columns
        self._first: Any = first
        self.handover = handover
        self.ended = ended  # fires when the thread has ended (the login may run another)
        self._handover = handover

    async def chunks(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        while True:
            if self._first is not None:
                (kind, value), self._first = self._first, None
            else:
                kind, value = await self._handover.get()
            if kind == "end":
                self.outcome = value
                return
            yield value

    def ack(self) -> None:
        self._handover.ack()

    def stop(self) -> None:
        self._handover.stop()


Key = tuple[int, int | None, int | None, str, int]


class ResultCache:
    """Small results by (report id, start, stop, format, row cap) for the report's TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = 64) -> None:
        self.clock = clock
        self.size = size
        self._entries: dict[Key, tuple[float, ReportResult]] = {}
        self._generation: dict[int, int] = {}

    def get(self, key: Key) -> ReportResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        return entry[1]

    def generation(self, report_id: int) -> int:
        return self._generation.get(report_id, 0)

    def put(self, key: Key, ttl: int, result: ReportResult, generation: int) -> None:
        if ttl <= 0 or generation != self.generation(key[0]):
            return  # no caching, or the report changed while it ran
        now = self.clock()
        for old in [k for k, (until, _) in self._entries.items() if until <= now]:
            del self._entries[old]
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + ttl, result)

    def forget(self, report_id: int) -> None:
        """A report was edited or deleted: its results are gone."""
        self._generation[report_id] = self.generation(report_id) + 1
        for key in [k for k in self._entries if k[0] == report_id]:
            del self._entries[key]


class ReportRunner:
    """Runs reports on ``url``'s backend (on MariaDB through ``reports_url`` only), at most
    ``concurrency`` at a time and one per operator."""

    def __init__(self, url: DatabaseURL, *, reports_url: DatabaseURL | None = None,
                 timeout: float = 30, concurrency: int = 2, reactor: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self.main = url
        self.url = reports_url if url.backend == "mysql" else (reports_url or url)
        self.timeout = timeout
        self.cache = ResultCache(clock)
        self.running: dict[str, str] = {}  # operator → the report they run
        self._reactor = reactor
        self._slots = DeferredSemaphore(concurrency)

    @property
    def backend(self) -> str:
        return self.main.backend

    async def start(self, report: Report, start: int | None, stop: int | None, *,
                    operator: str, render: Render, bounds: Bounds, kind: str) -> ReportRun:
        """Begin ``report`` for ``operator``: the run once its columns are known (cached for
        the report's TTL when small), or :class:`ReportRefused`."""
        key: Key = (report.id, start, stop, kind, bounds.rows)
        cached = self.cache.get(key)
        if cached is not None:
            return CachedRun(cached)
        if self.url is None:
            raise ReportRefused(NO_ACCOUNT, 503)
        if operator in self.running:
            raise ReportRefused(
                f"Your report {self.running[operator]!r} is still running; one report runs "
                "at a time for each admin login. Wait for it to end (or close its page: "
                "it stops), then run this one again.", 429)
        self.running[operator] = report.name
        generation = self.cache.generation(report.id)
        handover = Handover(self._reactor)
        url, main_db = self.url, self.main.name or ""
        done = self._slots.run(deferToThreadPool, self._reactor,
                               self._reactor.getThreadPool(), run_report, url, main_db,
                               report.sql_text, start, stop, render, bounds, handover)

        ended_: Deferred[None] = Deferred()

        def ended(result: Any) -> None:
            self.running.pop(operator, None)
            self._reactor.callLater(0, ended_.callback, None)
            if isinstance(result, Failure) and result.check(Stopped):
                return
            if not isinstance(result, Failure) and handover.kept is not None and columns:
                self.cache.put(key, report.cache_ttl,
                               ReportResult(columns[0], tuple(handover.kept), result),
                               generation)
            handover.finish(result)

        columns: list[tuple[Column, ...]] = []
        done.addBoth(ended)
        try:
            kind_, value = await handover.get()
        except BaseException:
            handover.stop()
            raise
        assert kind_ == "columns"
        columns.append(value)
        handover.ack()  # the columns took a place in the window
        try:  # the first rows too: a report that fails before them gets a page of its own
            first = await handover.get()
        except BaseException:
            handover.stop()
            raise
        return LiveRun(handover, value, ended_, first)
