"""The journal: who changed which setting, when, from where (kept JOURNAL_STORE days)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.store.audit import ACTOR_KINDS
from xvbd.store.db import Database
from xvbd.store.table import Table, delete_all_before


@dataclass(frozen=True)
class JournalEntry:
    id: int
    created_at: int
    actor_kind: str
    actor: str
    address: str
    user_id: int | None
    object_kind: str
    object_id: str
    field: str
    old_value: str
    new_value: str


JOURNAL = Table("journal", JournalEntry)


class Journal:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def record(self, *, actor_kind: str, actor: str, object_kind: str,
                     object_id: str = "", field: str = "", old_value: str = "",
                     new_value: str = "", user_id: int | None = None,
                     address: str = "") -> int:
        if actor_kind not in ACTOR_KINDS:
            raise ValueError(f"actor_kind is one of {ACTOR_KINDS}, got {actor_kind!r}")
        values = {"created_at": self._now(), "actor_kind": actor_kind, "actor": actor,
                  "address": address, "user_id": user_id, "object_kind": object_kind,
                  "object_id": str(object_id), "field": field, "old_value": str(old_value),
                  "new_value": str(new_value)}
        return await self._db.run_interaction(JOURNAL.insert, values)

    async def for_user(self, user_id: int, *, before_id: int | None = None,
                       limit: int = 50) -> list[JournalEntry]:
        """A tenant's own journal, newest first."""
        where, params = "user_id = ?", [user_id]
        if before_id is not None:
            where += " AND id < ?"
            params.append(before_id)
        return await self._db.run_interaction(JOURNAL.select, where, params, order="id DESC",
                                              limit=limit)

    async def all(self, *, before_id: int | None = None, limit: int = 50) -> list[JournalEntry]:
        """The operator's view of every change, newest first."""
        if before_id is None:
            return await self._db.run_interaction(JOURNAL.select, order="id DESC", limit=limit)
        return await self._db.run_interaction(JOURNAL.select, "id < ?", (before_id,),
                                              order="id DESC", limit=limit)

    async def purge_older_than(self, days: int, step: int = 20000) -> int:
        """Delete entries older than ``days``, ``step`` rows a transaction."""
        return await delete_all_before(self._db, JOURNAL, "created_at",
                                       self._now() - days * 86400, step)
