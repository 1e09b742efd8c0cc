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
        self.has_rows = self.aside.exists() or (path.exists() and path.stat().st_size > 0)
        self._thread = threading.Thread(target=self._run, name="xvbd-cdr-spool", daemon=True)
        self._thread.start()

    def append(self, rows: Sequence[Row]) -> Deferred[None]:
        return self._ask("append", [list(row) for row in rows])

    def take(self) -> Deferred[list[Row]]:
        """The oldest rows: the file aside if a replay was interrupted, else the spool."""
        return self._ask("take", None)

    def taken(self) -> Deferred[None]:
        """The rows of :meth:`take` are in the database: forget them."""
        return self._ask("forget", None)

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
        self.has_rows = True
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

    def _forget(self, _: None) -> None:
        self.aside.unlink(missing_ok=True)
        self.has_rows = self.path.exists()

    def _stop(self, _: None) -> None:
        return None
