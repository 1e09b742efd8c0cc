"""CDR records in the database (the DB sink writes here; the web lists them).

A tenant's list is always read through its owner (``subscr_id``).  The operator's list
(:meth:`CDRs.listing`) has every filter of the admin screen, newest first, and pages by
keyset on ``(start_timestamp, id)``: a page is one indexed range read of ``limit + 1`` rows
however deep it is, never an OFFSET or a COUNT(*).  The CSV export reads the same order in
batches (:meth:`CDRs.batch`), one round trip each.  Every filter has an index that also
gives the order (schema 001 and 006), so no filter sorts its matches.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from xvbd.store.db import Database, Txn
from xvbd.store.table import ANY_OWNER, Table, chunks, delete_all_before


@dataclass(frozen=True)
class CDRRow:
    id: int
    record_id: str
    call_id: str
    server_id: str
    subscr_id: int
    access_code: str
    caller_id: str
    called_id: str
    ext_number: str
    type: str
    call_type: str
    create_timestamp: int
    start_timestamp: int
    stop_timestamp: int
    process_timestamp: int
    cost: int
    sys_cost: int
    currency_id: int
    data: str

    @property
    def duration(self) -> int:
        return max(0, self.stop_timestamp - self.start_timestamp)


CDRS = Table("cdrs", CDRRow, owner="subscr_id")
#: The columns a record is written with, in the order of its values (the CDR sink's rows).
INSERT_COLUMNS = tuple(c for c in CDRS.columns if c != "id")
_DIGITS = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class CDRFilter:
    start_from: int | None = None
    start_to: int | None = None
    caller_id: str | None = None
    called_id: str | None = None
    access_code: str | None = None
    type: str | None = None
    call_type: str | None = None
    server_id: str | None = None

    def where(self, *, use_index: bool = True) -> tuple[str, list[Any]]:
        """The filter as SQL and its parameters.

        Each column has an index ``(column, start_timestamp)``.  When several are given, only
        the most selective one (in :data:`_BY_SELECTIVITY` order) is left for an index; the
        others are compared through ``COALESCE`` (the same value: the columns are NOT NULL),
        which no index serves.  Without that, SQLite (which keeps no statistics unless
        ANALYZE is run) picks among equal-looking indexes by their order, and would read
        every "XVB" record to find one user's.  ``use_index=False`` leaves none for an index
        (a tenant's list reads along its owner's).
        """
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (("start_timestamp >= ?", self.start_from),
                              ("start_timestamp < ?", self.start_to)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        indexed = not use_index
        for column in _BY_SELECTIVITY:
            value = getattr(self, column)
            if value is None or value == "":
                continue
            clauses.append(f"COALESCE({column}, '') = ?" if indexed else f"{column} = ?")
            params.append(value)
            indexed = True
        return " AND ".join(clauses) or "1 = 1", params


#: The equality filters, the one that usually matches fewest rows first: a person's columns
#: (thousands of rows at most), then the categories (a share of the whole table).
_BY_SELECTIVITY = ("access_code", "caller_id", "called_id", "call_type", "type", "server_id")


@dataclass(frozen=True, order=True)
class CDRKey:
    """A place in the operator's list (newest first): the rows after it are older, or as
    old with a smaller id.  ``str()`` is its form in a page link."""

    start_timestamp: int
    id: int

    @classmethod
    def of(cls, row: CDRRow) -> CDRKey:
        return cls(row.start_timestamp, row.id)

    @classmethod
    def parse(cls, text: str) -> CDRKey:
        """The key of a page link; ValueError when it is not one."""
        start, sep, row_id = text.partition("_")
        if not sep or not _DIGITS.fullmatch(start) or not _DIGITS.fullmatch(row_id):
            raise ValueError(f"not a place in the list: {text[:40]!r}")
        return cls(int(start), int(row_id))

    def __str__(self) -> str:
        return f"{self.start_timestamp}_{self.id}"


@dataclass(frozen=True)
class CDRPage:
    rows: list[CDRRow]
    #: Where the next page starts; None on the last page.
    next: CDRKey | None


#: Newest first; the index of each filter ends in start_timestamp, and every index carries
#: the row id after its columns (SQLite's rowid, InnoDB's primary key), so this order is
#: read straight off the index.
NEWEST_FIRST = "start_timestamp DESC, id DESC"


def _listing(txn: Txn, flt: CDRFilter, before: CDRKey | None, limit: int,
             owner: Any = ANY_OWNER) -> list[CDRRow]:
    # One tenant's records are read along the (subscr_id, start_timestamp) index whatever
    # else is filtered: no filter column is left for an index then.
    where, params = flt.where(use_index=owner is ANY_OWNER)
    if before is not None:
        # (start_timestamp, id) < before, written so that both engines see the range on
        # start_timestamp (a row-value or a bare OR would scan from the newest row).
        where += " AND start_timestamp <= ? AND (start_timestamp < ? OR id < ?)"
        params += [before.start_timestamp, before.start_timestamp, before.id]
    return CDRS.select(txn, where, params, owner=owner, order=NEWEST_FIRST, limit=limit)


def _page(rows: list[CDRRow], limit: int) -> CDRPage:
    """``rows`` read with ``limit + 1``: the page, and where the next one starts."""
    more = len(rows) > limit
    rows = rows[:limit]
    return CDRPage(rows, CDRKey.of(rows[-1]) if more and rows else None)


def insert_cdr_rows(txn: Txn, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert CDR rows (tuples of :data:`INSERT_COLUMNS`) in a few multi-row statements
    (:func:`~xvbd.store.table.chunks`); a record already stored is skipped.  Returns how
    many were new."""
    new = 0
    for chunk in chunks(rows):
        txn.execute(txn.dialect.insert_ignore("cdrs", INSERT_COLUMNS, len(chunk)),
                    [value for row in chunk for value in row])
        new += max(txn.rowcount, 0)
    return new


def _insert_calls(txn: Txn, calls: list[Sequence[tuple[Any, ...]]]) -> list[None]:
    """The group commit's write of CDR rows: the rows of every call, in few statements."""
    insert_cdr_rows(txn, calls[0] if len(calls) == 1 else
                    [row for rows in calls for row in rows])
    return [None] * len(calls)


class CDRs:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def insert_rows(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows given as tuples of the table's columns without ``id`` (the CDR
        emitter's form); a record already stored is skipped.  Returns how many were new."""
        return await self._db.run_interaction(insert_cdr_rows, rows) if rows else 0

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> Deferred[None]:
        """Insert one call's rows (as :meth:`insert_rows` takes them) through the
        database's group commit: calls ending together share one transaction (and its
        statements) with each other and with voicemail rows.  Fires once they are
        committed."""
        return self._db.writes.submit(_insert_calls, rows)

    def when_idle(self) -> Deferred[None]:
        """Fires once the group commit has written everything submitted."""
        return self._db.writes.when_idle()

    async def insert_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert records (dicts of the table's columns, ``record_id`` required); a record
        already stored is skipped, so replaying a batch never duplicates.  Returns how many
        were new."""
        return await self.insert_rows(
            [tuple(r.get(c, _DEFAULTS.get(c)) for c in INSERT_COLUMNS) for r in records])

    async def for_user(self, user_id: int, flt: CDRFilter = CDRFilter(), *,
                       before_id: int | None = None, limit: int = 50) -> list[CDRRow]:
        where, params = flt.where()
        if before_id is not None:
            where += " AND id < ?"
            params.append(before_id)
        return await self._db.run_interaction(CDRS.select, where, params, owner=user_id,
                                              order="id DESC", limit=limit)

    async def user_listing(self, user_id: int, flt: CDRFilter = CDRFilter(), *,
                           before: CDRKey | None = None, limit: int = 50) -> CDRPage:
        """A tenant's own records, newest first, as :meth:`listing` pages them: read along
        the ``(subscr_id, start_timestamp)`` index whatever else is filtered."""
        return _page(await self._db.run_interaction(_listing, flt, before, limit + 1,
                                                    owner=user_id), limit)

    async def all(self, flt: CDRFilter = CDRFilter(), *, before_id: int | None = None,
                  limit: int = 50) -> list[CDRRow]:
        """The operator's view of every tenant's records."""
        where, params = flt.where()
        if before_id is not None:
            where += " AND id < ?"
            params.append(before_id)

        return await self._db.run_interaction(CDRS.select, where, params, owner=ANY_OWNER,
                                              order="id DESC", limit=limit)

    async def listing(self, flt: CDRFilter = CDRFilter(), *, before: CDRKey | None = None,
                      limit: int = 50) -> CDRPage:
        """The operator's list of every tenant's records: ``limit`` rows matching ``flt``
        after ``before`` (from the newest when None), newest first, and where the next page
        starts."""
        return _page(await self._db.run_interaction(_listing, flt, before, limit + 1), limit)

    async def batch(self, flt: CDRFilter, before: CDRKey | None, size: int) -> list[CDRRow]:
        """Up to ``size`` rows of the operator's list after ``before`` (one round trip): the
        export reads the filtered set this way, a batch at a time; fewer than ``size`` rows
        means the set is done."""
        return await self._db.run_interaction(_listing, flt, before, size)

    async def purge_older_than(self, days: int, step: int = 20000) -> int:
        """Delete records that started more than ``days`` ago, ``step`` rows a transaction."""
        return await delete_all_before(self._db, CDRS, "start_timestamp",
                                       self._now() - days * 86400, step)


_DEFAULTS: dict[str, Any] = {
    "server_id": "", "subscr_id": 0, "access_code": "", "caller_id": "", "called_id": "",
    "ext_number": "", "call_type": "", "process_timestamp": 0, "cost": 0, "sys_cost": 0,
    "currency_id": 0, "data": "",
}
