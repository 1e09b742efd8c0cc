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
from xvbd.store.groupcommit import GroupCommit

log = logger("xvbd.cdr")


class Sink(Protocol):
    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...


class FileSink:
    """Appends one line per record to the CDR text file from a writer thread of its own:
    in order, everything queued since the last write in one write and one flush, each
    call's Deferred fired once its lines are flushed."""

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
        stop = None
        while stop is None:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            texts, waiting = [], []
            for text, d in batch:
                if text is None:
                    stop = d
                else:
                    texts.append(text)
                    waiting.append(d)
            error: Exception | None = None
            try:
                if texts:
                    self._file.write("".join(texts))
                    self._file.flush()
            except Exception as exc:  # disk full, …: the callers log, the next try goes on
                error = exc
            self.reactor.callFromThread(_fire, waiting, error)
        self._file.close()
        self.reactor.callFromThread(stop.callback, None)


def _fire(waiting: list[Deferred[None]], error: Exception | None) -> None:
    for d in waiting:
        if error is None:
            d.callback(None)
        else:
            d.errback(error)


class DBSink:
    """Inserts records into the ``cdrs`` table, off the reactor, calls ending together
    sharing one transaction (:class:`GroupCommit`)."""

    def __init__(self, cdrs: CDRs) -> None:
        self.cdrs = cdrs
        self._commit: GroupCommit[list[tuple[Any, ...]], None] = GroupCommit(self._insert)

    async def _insert(self, batches: list[list[tuple[Any, ...]]]) -> list[None]:
        await self.cdrs.insert_rows([row for batch in batches for row in batch])
        return [None] * len(batches)

    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]:
        return self._commit.submit([r.row_values() for r in records])

    def stop(self) -> Deferred[None]:
        return self._commit.when_idle()


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
