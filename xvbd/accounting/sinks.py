"""Where CDR records go: ``[CDR] SEND_TO`` FILE, DB (UDP with the accounting issue).

The emitter hands each call's records to every sink and returns a Deferred that fires when
all of them have the records: the engine waits for it before it lets the call go, so a
record is written before the call is acknowledged.  No sink does blocking I/O on the
reactor thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList

from xvbd.accounting.cdr import CDRRecord
from xvbd.logs import logger
from xvbd.store.cdr import CDRs

log = logger("xvbd.cdr")


class Sink(Protocol):
    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...


class FileSink:
    """Appends one line per record to the CDR text file from a writer thread of its own
    (order kept, each batch flushed before its Deferred fires)."""

    def __init__(self, path: Path, reactor: Any) -> None:
        self.path = path
        self.reactor = reactor
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, name="xvbd-cdr-file", daemon=True)
        self._thread.start()

    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._queue.put(("\n".join(r.line() for r in records) + "\n", d))
        return d

    def stop(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._queue.put((None, d))
        return d

    def _run(self) -> None:
        while True:
            text, d = self._queue.get()
            if text is None:
                self._file.close()
                self.reactor.callFromThread(d.callback, None)
                return
            try:
                self._file.write(text)
                self._file.flush()
            except Exception as exc:  # disk full, …: the caller logs, the next try goes on
                self.reactor.callFromThread(d.errback, exc)
            else:
                self.reactor.callFromThread(d.callback, None)


class DBSink:
    """Inserts records into the ``cdrs`` table (off the reactor, through the pool)."""

    def __init__(self, cdrs: CDRs) -> None:
        self.cdrs = cdrs

    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]:
        rows = [r.row() for r in records]
        return Deferred.fromCoroutine(self._insert(rows))

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        await self.cdrs.insert_many(rows)

    def stop(self) -> Deferred[None]:
        return Deferred.fromCoroutine(_done())


async def _done() -> None:
    return None


class CDREmitter(Service):
    """Fans records out to the configured sinks."""

    name = "cdr"

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    async def emit(self, records: Sequence[CDRRecord]) -> None:
        """Write ``records`` to every sink; a failing sink is logged with the records' text
        (so nothing is lost from the log either) and the others still get them."""
        if not records or not self.sinks:
            return
        results = await DeferredList([sink.write(records) for sink in self.sinks],
                                     consumeErrors=True)
        for sink, (ok, result) in zip(self.sinks, results, strict=True):
            if not ok:
                log.error("CDR sink {sink} failed ({error}); the records were:\n{lines}",
                          sink=type(sink).__name__, error=str(getattr(result, "value", result)),
                          lines="\n".join(r.line() for r in records))

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return DeferredList([sink.stop() for sink in self.sinks], consumeErrors=True)
