"""Where CDR records go: ``[CDR] SEND_TO`` FILE, DB (UDP with the accounting issue).

The emitter hands each call's records to every sink and returns a Deferred that fires when
all of them have the records: the engine waits for it before it lets the call go, so a
record is written before the call is acknowledged.  No sink does blocking I/O on the
reactor thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from xvbd.accounting.cdr import CDRRecord
from xvbd.accounting.spool import Spool
from xvbd.config import HostPort
from xvbd.logs import logger
from xvbd.store.cdr import CDRs

log = logger("xvbd.cdr")


class Sink(Protocol):
    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...

    def health(self) -> dict[str, Any]: ...


class FileSink:
    """Appends one line per record to the CDR text file from a writer thread of its own:
    in order, everything queued since the last write in one write, each call's Deferred
    fired once its lines are written.

    A write that fails (disk full, EIO) loses nothing and holds no call up: the lines not
    written are *held* in memory, in order, the calls' Deferreds fire, one ERROR line says
    so, and the writer tries again every ``RETRY_EVERY`` seconds and before each new batch;
    when the disk takes them, one WARN line says how many were written late.  Lines still
    held when the sink stops are written into the log at ERROR (with their text)."""

    RETRY_EVERY = 5.0

    def __init__(self, path: Path, reactor: Any) -> None:
        self.path = path
        self.reactor = reactor
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self.held_lines = 0  # read by /healthz; written by the writer thread
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

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: the file, and how many lines wait for its disk."""
        return {"sink": "FILE", "path": str(self.path), "held_lines": self.held_lines}

    def _run(self) -> None:
        held = b""  # written nowhere yet, in order
        stop = None
        while stop is None:
            try:
                batch = [self._queue.get(timeout=self.RETRY_EVERY if held else None)]
            except queue.Empty:
                batch = []
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
            data = held + "".join(texts).encode("utf-8")
            was_held = held
            held, error = self._write(data)
            self.held_lines = held.count(b"\n")
            if error is not None and not was_held:
                self.reactor.callFromThread(
                    log.error, "the CDR file {path} cannot be written ({error}); {n} line(s) "
                    "are held in memory and written when it can take them (tried every "
                    "{every:g} s): free space on its disk or mend it", path=str(self.path),
                    error=str(error), n=self.held_lines, every=self.RETRY_EVERY)
            elif was_held and not held:
                self.reactor.callFromThread(
                    log.warn, "the CDR file {path} takes records again; {n} held line(s) "
                    "written", path=str(self.path), n=was_held.count(b"\n"))
            self.reactor.callFromThread(_fire, waiting)
        os.close(self._fd)
        if held:
            self.reactor.callFromThread(
                log.error, "the CDR file {path} could still not be written at stop; its {n} "
                "held line(s) were:\n{lines}", path=str(self.path), n=held.count(b"\n"),
                lines=held.decode("utf-8", "replace").rstrip("\n"))
        self.reactor.callFromThread(stop.callback, None)

    def _write(self, data: bytes) -> tuple[bytes, OSError | None]:
        """Write ``data`` to the end of the file: what was not written, and why."""
        view = memoryview(data)
        while view:
            try:
                done = os.write(self._fd, view)
            except OSError as exc:
                return bytes(view), exc
            view = view[done:]
        return b"", None


def _fire(waiting: list[Deferred[None]]) -> None:
    for d in waiting:
        d.callback(None)


class DBSink:
    """Inserts records into the ``cdrs`` table, off the reactor, calls ending together
    sharing one transaction (the database's :class:`~xvbd.store.groupcommit.GroupWrites`).

    When the database cannot take them, the records go to the local :class:`Spool` (the
    call is let go once they are on disk there) and every record after them too, so the
    order holds; a replay every ``retry`` seconds moves them into the database, in order,
    and normal writing resumes once the spool is empty.
    """

    def __init__(self, cdrs: CDRs, spool: Spool | None = None, clock: Any = None,
                 retry: float = 5.0) -> None:
        self.cdrs = cdrs
        self.spool = spool
        self._replay = LoopingCall(lambda: Deferred.fromCoroutine(self.replay()))
        if clock is not None:
            self._replay.clock = clock
        self._retry = retry
        self._replaying = False
        if spool is not None and spool.has_rows:
            self._start_replay()

    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]:
        rows = [r.row_values() for r in records]
        if self.spool is None:
            return self.cdrs.write_rows(rows)
        if self.spool.has_rows:
            return self._to_spool(rows)
        d = self.cdrs.write_rows(rows)
        d.addErrback(self._failed, rows)
        return d

    def _failed(self, failure: Failure, rows: list[tuple[Any, ...]]) -> Deferred[None]:
        log.warn("the database did not take {n} CDR record(s) ({error}); they wait in the "
                 "spool {path}", n=len(rows), error=failure.getErrorMessage(),
                 path=str(self.spool.path if self.spool else "?"))
        return self._to_spool(rows)

    def _to_spool(self, rows: list[tuple[Any, ...]]) -> Deferred[None]:
        assert self.spool is not None
        d = self.spool.append(rows)
        self._start_replay()
        return d

    def _start_replay(self) -> None:
        if not self._replay.running:
            self._replay.start(self._retry, now=False)

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: whether records wait in the spool for the database."""
        return {"sink": "DB", "spool_waiting": bool(self.spool is not None and
                                                    self.spool.has_rows)}

    async def replay(self) -> int:
        """Move the spooled records into the database; returns how many it moved."""
        if self.spool is None or self._replaying:
            return 0
        self._replaying = True
        try:
            moved = 0
            while self.spool.has_rows:
                rows = await self.spool.take()
                for start in range(0, len(rows), 500):
                    await self.cdrs.insert_rows(list(rows[start:start + 500]))
                await self.spool.taken()
                moved += len(rows)
            if self._replay.running:
                self._replay.stop()
            if moved:
                log.info("{n} spooled CDR record(s) are in the database now", n=moved)
            return moved
        except Exception as exc:
            log.warn("the spooled CDR records still wait ({error}); next try in {s} s",
                     error=str(exc), s=self._retry)
            return 0
        finally:
            self._replaying = False

    def stop(self) -> Deferred[None]:
        if self._replay.running:
            self._replay.stop()
        d = self.cdrs.when_idle()
        if self.spool is not None:
            spool = self.spool
            d.addCallback(lambda _: spool.stop())
        return d


class UDPSink:
    """One datagram per record (its text line) to each collector, from the reactor.  UDP
    never waits: a collector that is absent or slow costs a call nothing; datagrams the
    system cannot send are counted and logged, not retried."""

    def __init__(self, collectors: Sequence[HostPort], reactor: Any) -> None:
        self.collectors = list(collectors)
        self.reactor = reactor
        self._port: Any = None
        self._addresses: list[tuple[str, int]] = []
        self.dropped = 0

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: the collectors, and the datagrams not sent so far."""
        return {"sink": "UDP", "collectors": [str(c) for c in self.collectors],
                "dropped": self.dropped}

    async def start(self) -> None:
        self._port = self.reactor.listenUDP(0, DatagramProtocol())
        for collector in self.collectors:
            try:
                ip = await self.reactor.resolve(collector.host)
            except Exception as exc:
                log.error("[CDR] UDP_SERVER {collector}: cannot resolve {host} ({error}); "
                          "no CDR datagrams go there", collector=str(collector),
                          host=collector.host, error=str(exc))
                continue
            self._addresses.append((ip, collector.port))

    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]:
        if self._port is not None:
            for record in records:
                data = record.line().encode("utf-8")
                for address in self._addresses:
                    try:
                        self._port.write(data, address)
                    except OSError:
                        self.dropped += 1
                        if self.dropped % 1000 == 1:
                            log.warn("{n} CDR datagram(s) could not be sent", n=self.dropped)
        return succeed(None)

    def stop(self) -> Deferred[None]:
        if self._port is not None:
            port, self._port = self._port, None
            return maybeDeferred(port.stopListening)
        return succeed(None)


class CDREmitter(Service):
    """Fans records out to the configured sinks."""

    name = "cdr"

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def startService(self) -> Any:
        super().startService()
        starts = [Deferred.fromCoroutine(s.start()) for s in self.sinks if hasattr(s, "start")]
        return DeferredList(starts) if starts else None

    async def emit(self, records: Sequence[CDRRecord]) -> None:
        """Write ``records`` to every sink; a failing sink is logged with the records' text
        (so nothing is lost from the log either) and the others still get them."""
        if not records or not self.sinks:
            return
        writes = [sink.write(records) for sink in self.sinks]  # all under way at once
        for sink, written in zip(self.sinks, writes, strict=True):
            try:
                await written
            except Exception as exc:
                log.error("CDR sink {sink} failed ({error}); the records were:\n{lines}",
                          sink=type(sink).__name__, error=str(exc),
                          lines="\n".join(r.line() for r in records))

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return DeferredList([sink.stop() for sink in self.sinks], consumeErrors=True)
