"""The CDR spool: rows the database could not take, kept in a local file until it can.

Rows are appended (one JSON array per line) by a writer thread of its own, fsynced before
the call that produced them is let go.  Replaying takes the whole file at once: the writer
renames it aside (so what is appended meanwhile starts a new file, after it in time), the
rows are inserted in order, and the file aside is removed only once the database has them.
Insertion skips a record already stored (``record_id`` is unique), so a replay interrupted
and run again stores nothing twice.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

Row = tuple[Any, ...]


class Spool:
    def __init__(self, path: Path, reactor: Any) -> None:
        self.path = path
        self.aside = path.with_name(path.name + ".replaying")
        self.reactor = reactor
        path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Known on the reactor thread only: appends asked for and not yet on disk, and
        # whether the files held rows when the writer last said.
        self._pending = 0
        self._on_disk = self.aside.exists() or (path.exists() and path.stat().st_size > 0)
        self._thread = threading.Thread(target=self._run, name="xvbd-cdr-spool", daemon=True)
        self._thread.start()

    @property
    def has_rows(self) -> bool:
        """Are there rows waiting (on disk, or on their way there)?  From the moment
        :meth:`append` is called, so a record written after a spooled one cannot overtake
        it."""
        return self._pending > 0 or self._on_disk

    def append(self, rows: Sequence[Row]) -> Deferred[None]:
        self._pending += 1

        def written(result: Any) -> Any:
            self._pending -= 1
            self._on_disk = True
            return result
        return self._ask("append", [list(row) for row in rows]).addBoth(written)

    def take(self) -> Deferred[list[Row]]:
        """The oldest rows: the file aside if a replay was interrupted, else the spool."""
        return self._ask("take", None)

    def taken(self) -> Deferred[None]:
        """The rows of :meth:`take` are in the database: forget them."""
        def forgotten(more: bool) -> None:
            self._on_disk = more
        return self._ask("forget", None).addCallback(forgotten)

    def stop(self) -> Deferred[None]:
        return self._ask("stop", None)

    def _ask(self, what: str, payload: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._queue.put((what, payload, d))
        return d

    def _run(self) -> None:
        while True:
            what, payload, d = self._queue.get()
            try:
                result = getattr(self, "_" + what)(payload)
            except Exception as exc:
                self.reactor.callFromThread(d.errback, exc)
            else:
                self.reactor.callFromThread(d.callback, result)
            if what == "stop":
                return

    def _append(self, rows: list[list[Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())

    def _take(self, _: None) -> list[Row]:
        if not self.aside.exists():
            if not self.path.exists():
                return []
            os.replace(self.path, self.aside)
        with self.aside.open(encoding="utf-8") as f:
            return [tuple(json.loads(line)) for line in f if line.strip()]

    def _forget(self, _: None) -> bool:
        """Remove the replayed rows; are there newer ones?  (Appends asked for before this
        are written by now: the writer takes requests in order.)"""
        self.aside.unlink(missing_ok=True)
        return self.path.exists()

    def _stop(self, _: None) -> None:
        return None
