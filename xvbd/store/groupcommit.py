"""Group commit: many small writes from concurrent calls share one transaction.

While one batch is in the database, the items submitted meanwhile gather for the next, so
a quiet system writes each item at once and a busy one writes hundreds per transaction.
Each submitter's Deferred fires when its own item is committed (a voicemail row before
the caller hears "saved", a CDR record before the call is let go).

:class:`GroupWrites` is the database's one queue of such writes: voicemail rows and CDR
records of calls ending together go in the same transaction, each kind in as few
statements as it can (a multi-row INSERT), not one transaction per kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from xvbd.store.audit import ACTOR, Actor
from xvbd.store.db import DatabaseUnavailable

if TYPE_CHECKING:
    from xvbd.store.db import Database, Txn

Item = TypeVar("Item")
Result = TypeVar("Result")

#: A kind of write: ``write(txn, items)`` stores items of one kind in the transaction
#: ``txn`` and returns one result per item, in order.
BatchWrite = Callable[["Txn", list[Any]], Sequence[Any]]


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


class GroupWrites:
    """The database's group commit for writes of every kind (:data:`BatchWrite`).

    ``submit(write, item)`` returns a Deferred that fires with the item's result once it
    is committed.  Items submitted while a batch is being written share the next
    transaction; in it, the items of each kind are handed to their ``write`` together, in
    the order they came.  Each item is written on behalf of the
    :data:`~xvbd.store.audit.ACTOR` of its submitter (``txn.actor``), as if alone.  When
    a batch fails, each item is tried alone in a transaction of its own.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._commit: GroupCommit[tuple[BatchWrite, Actor | None, Any], Any] = \
            GroupCommit(self._write)

    def submit(self, write: BatchWrite, item: Any) -> Deferred[Any]:
        return self._commit.submit((write, ACTOR.get(), item))

    def when_idle(self) -> Deferred[None]:
        """Fires once nothing is being written (at once when nothing is)."""
        return self._commit.when_idle()

    async def _write(self, items: list[tuple[BatchWrite, Actor | None, Any]]) -> list[Any]:
        return await self._db.run_interaction(_write_all, items)


def _write_all(txn: Txn, items: list[tuple[BatchWrite, Actor | None, Any]]) -> list[Any]:
    kinds: dict[tuple[BatchWrite, Actor | None], list[int]] = {}
    for n, (write, actor, _) in enumerate(items):
        kinds.setdefault((write, actor), []).append(n)
    results: list[Any] = [None] * len(items)
    for (write, actor), places in kinds.items():
        txn.actor = actor
        done = write(txn, [items[n][2] for n in places])
        for n, result in zip(places, done, strict=True):
            results[n] = result
    return results
