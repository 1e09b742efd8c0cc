"""CDR records in the database (the DB sink writes here; the web lists them).

A tenant's list is always read through its owner (``subscr_id``); the operator's list has
every filter of the admin screen.  Both page by keyset (``before_id``) on indexed columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from xvbd.store.db import Database, Txn
from xvbd.store.table import ANY_OWNER, Table


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
_INSERT_COLUMNS = tuple(c for c in CDRS.columns if c != "id")


@dataclass(frozen=True)
class CDRFilter:
    start_from: int | None = None
    start_to: int | None = None
    caller_id: str | None = None
    called_id: str | None = None
    access_code: str | None = None
    type: str | None = None
    call_type: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (("start_timestamp >= ?", self.start_from),
                              ("start_timestamp < ?", self.start_to),
                              ("caller_id = ?", self.caller_id),
                              ("called_id = ?", self.called_id),
                              ("access_code = ?", self.access_code),
                              ("type = ?", self.type), ("call_type = ?", self.call_type)):
            if value is not None and value != "":
                clauses.append(clause)
                params.append(value)
        return " AND ".join(clauses) or "1 = 1", params


class CDRs:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def insert_rows(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows given as tuples of the table's columns without ``id`` (the CDR
        emitter's form); a record already stored is skipped.  Returns how many were new."""
        def insert(txn: Txn) -> int:
            txn.executemany(txn.dialect.insert_ignore("cdrs", _INSERT_COLUMNS), rows)
            return max(txn.rowcount, 0)
        return await self._db.run_interaction(insert) if rows else 0

    async def insert_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert records (dicts of the table's columns, ``record_id`` required); a record
        already stored is skipped, so replaying a batch never duplicates.  Returns how many
        were new."""
        return await self.insert_rows(
            [tuple(r.get(c, _DEFAULTS.get(c)) for c in _INSERT_COLUMNS) for r in records])

    async def for_user(self, user_id: int, flt: CDRFilter = CDRFilter(), *,
                       before_id: int | None = None, limit: int = 50) -> list[CDRRow]:
        where, params = flt.where()
        if before_id is not None:
            where += " AND id < ?"
            params.append(before_id)
        return await self._db.run_interaction(CDRS.select, where, params, owner=user_id,
                                              order="id DESC", limit=limit)

    async def all(self, flt: CDRFilter = CDRFilter(), *, before_id: int | None = None,
                  limit: int = 50) -> list[CDRRow]:
        """The operator's view of every tenant's records."""
        where, params = flt.where()
        if before_id is not None:
            where += " AND id < ?"
            params.append(before_id)

        return await self._db.run_interaction(CDRS.select, where, params, owner=ANY_OWNER,
                                              order="id DESC", limit=limit)

    async def purge_older_than(self, days: int, step: int = 20000) -> int:
        """Delete records that started more than ``days`` ago, ``step`` rows a transaction."""
        cutoff = self._now() - days * 86400
        total = 0
        while True:
            n = await self._db.run_interaction(CDRS.delete_some_before, "start_timestamp",
                                               cutoff, step)
            total += n
            if n < step:
                return total


_DEFAULTS: dict[str, Any] = {
    "server_id": "", "subscr_id": 0, "access_code": "", "caller_id": "", "called_id": "",
    "ext_number": "", "call_type": "", "process_timestamp": 0, "cost": 0, "sys_cost": 0,
    "currency_id": 0, "data": "",
}
