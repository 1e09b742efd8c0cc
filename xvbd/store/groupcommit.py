"""Group commit: many small writes from concurrent calls share one transaction.

While one batch is in the database, the items submitted meanwhile gather for the next, so
a quiet system writes each item at once and a busy one writes hundreds per transaction.
Each submitter's Deferred fires when its own item is committed (a voicemail row before
the caller hears "saved", a CDR record before the call is let go).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from xvbd.store.db import DatabaseUnavailable

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """``write_batch(items)`` stores items in one transaction and returns one result per
    item, in order.  When a batch fails, each item of it is tried alone, so one bad item
    fails only its own submitter."""

    def __init__(self, write_batch: Callable[[list[Item]], Awaitable[Sequence[Result]]]
                 ) -> None:
        self._write_batch = write_batch
        self._items: list[Item] = []
        self._waiting: list[Deferred[Result]] = []
        self._busy = False
        self._idle: list[Deferred[None]] = []

    def submit(self, item: Item) -> Deferred[Result]:
        d: Deferred[Result] = Deferred()
        self._items.append(item)
        self._waiting.append(d)
        if not self._busy:
            self._flush()
        return d

    def _flush(self) -> None:
        items, waiting = self._items, self._waiting
        self._items, self._waiting = [], []
        self._busy = True
        Deferred.fromCoroutine(self._write(items, waiting)).addBoth(self._flushed)

    async def _write(self, items: list[Item], waiting: list[Deferred[Result]]) -> None:
        try:
            results = await self._write_batch(items)
        except Exception as exc:
            if len(items) == 1 or isinstance(exc, DatabaseUnavailable):  # no use one by one
                failure = Failure()
                for d in waiting:
                    d.errback(failure)
                return
            for item, d in zip(items, waiting, strict=True):
                try:
                    (result,) = await self._write_batch([item])
                except Exception:
                    d.errback(Failure())
                else:
                    d.callback(result)
            return
        for d, result in zip(waiting, results, strict=True):
            d.callback(result)

    def _flushed(self, _: object) -> None:
        self._busy = False
        if self._waiting:
            self._flush()
        elif self._idle:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def when_idle(self) -> Deferred[None]:
        """Fires once nothing is being written (at once when nothing is)."""
        d: Deferred[None] = Deferred()
        if self._busy or self._waiting:
            self._idle.append(d)
        else:
            d.callback(None)
        return d
