"""SQL reports: their definitions (running them read-only is the admin web's work)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

REPORT_ACCESS = ("admin", "all")


@dataclass(frozen=True)
class Report:
    id: int
    name: str
    sql_text: str
    default_start: str
    default_stop: str
    cache_ttl: int
    owner: str
    access: str
    created_at: int
    updated_at: int


REPORTS = Table("reports", Report, audit=True)


class Reports:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def create(self, name: str, sql_text: str, **fields: Any) -> Report:
        if fields.get("access", "admin") not in REPORT_ACCESS:
            raise ValueError(f"access is one of {REPORT_ACCESS}, got {fields['access']!r}")
        now = self._now()

        def create(txn: Txn) -> Report:
            new_id = REPORTS.insert(txn, {"name": name, "sql_text": sql_text,
                                          "created_at": now, "updated_at": now, **fields})
            return REPORTS.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get(self, report_id: int) -> Report | None:
        return await self._db.run_interaction(REPORTS.get, report_id)

    async def list(self) -> list[Report]:
        return await self._db.run_interaction(REPORTS.select, order="id DESC")

    async def update(self, report_id: int, **changes: Any) -> bool:
        if "access" in changes and changes["access"] not in REPORT_ACCESS:
            raise ValueError(f"access is one of {REPORT_ACCESS}, got {changes['access']!r}")
        return await self._db.run_interaction(REPORTS.update, report_id,
                                              {**changes, "updated_at": self._now()})

    async def delete(self, report_id: int) -> bool:
        return await self._db.run_interaction(REPORTS.delete, report_id)
