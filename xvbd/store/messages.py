"""Voicemail messages: one row per recording, always read and changed through its owner."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xvbd.store.db import Database, Txn
from xvbd.store.outbox import Draft, queue_in
from xvbd.store.table import Table


@dataclass(frozen=True)
class Message:
    id: int
    user_id: int
    extension_id: int | None
    call_id: str
    caller_id: str
    called_id: str
    created_at: int
    duration: int
    file_name: str
    file_format: str
    size_bytes: int
    is_read: bool
    emailed_at: int


MESSAGES = Table("messages", Message, owner="user_id", audit=True)


def insert_with_mail(txn: Txn, items: list[tuple[dict[str, Any], Draft | None]]) -> list[int]:
    """Messages in few multi-row INSERTs, and each one's mail queued in the outbox in the
    same transaction (a group-commit write: :class:`~xvbd.store.groupcommit.GroupWrites`)."""
    ids = MESSAGES.insert_many(txn, [values for values, _ in items])
    for new_id, (_, draft) in zip(ids, items, strict=True):
        if draft is not None:
            queue_in(txn, draft, new_id)
    return ids


class Messages:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def add(self, user_id: int, *, extension_id: int | None, file_name: str,
                  file_format: str, duration: int, size_bytes: int = 0, caller_id: str = "",
                  called_id: str = "", call_id: str = "", created_at: int | None = None,
                  mail: Draft | None = None) -> Message:
        """Keep a new message; returns once it is committed (through the database's group
        commit: voicemails and CDR records of calls ending together share a transaction,
        the voicemails one multi-row INSERT).  ``mail``: its e-mail, queued in the outbox
        in that transaction."""
        values: dict[str, Any] = {
            "user_id": user_id, "extension_id": extension_id, "file_name": file_name,
            "file_format": file_format, "duration": duration, "size_bytes": size_bytes,
            "caller_id": caller_id, "called_id": called_id, "call_id": call_id,
            "created_at": self._now() if created_at is None else created_at}
        new_id = await self._db.writes.submit(insert_with_mail, (values, mail))
        return Message(id=new_id, is_read=False, emailed_at=0, **values)

    async def get(self, user_id: int, message_id: int) -> Message | None:
        return await self._db.run_interaction(MESSAGES.get, message_id, owner=user_id)

    async def list(self, user_id: int, *, extension_id: int | None = None,
                   unread_only: bool = False, before_id: int | None = None,
                   limit: int = 50) -> list[Message]:
        """Newest first; ``before_id`` pages back (keyset)."""
        where: list[str] = []
        params: list[Any] = []
        if extension_id is not None:
            where.append("extension_id = ?")
            params.append(extension_id)
        if unread_only:
            where.append("is_read = 0")
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        return await self._db.run_interaction(
            MESSAGES.select, " AND ".join(where) or "1 = 1", params, owner=user_id,
            order="id DESC", limit=limit)

    async def count(self, user_id: int, extension_id: int | None = None) -> int:
        if extension_id is None:
            return await self._db.run_interaction(MESSAGES.count, owner=user_id)
        return await self._db.run_interaction(MESSAGES.count, "extension_id = ?",
                                              (extension_id,), owner=user_id)

    async def counts(self, user_id: int, extension_id: int | None = None
                     ) -> tuple[int, int, int]:
        """(messages in the mailbox ``extension_id``, messages of the user, unread ones of
        the user), in one query."""
        def read(txn: Txn) -> tuple[int, int, int]:
            row = txn.one("SELECT COUNT(*) AS total, "
                          "COALESCE(SUM(CASE WHEN extension_id = ? THEN 1 ELSE 0 END), 0) "
                          "AS here, COALESCE(SUM(CASE WHEN is_read = 0 THEN 1 ELSE 0 END), 0) "
                          "AS unread FROM messages WHERE user_id = ?", (extension_id, user_id))
            if row is None:
                return 0, 0, 0
            return int(row["here"]), int(row["total"]), int(row["unread"])
        return await self._db.run_interaction(read)

    async def mark_read(self, user_id: int, message_id: int, read: bool = True) -> bool:
        return await self._db.run_interaction(MESSAGES.update, message_id,
                                              {"is_read": int(read)}, owner=user_id)

    async def mark_emailed(self, user_id: int, message_id: int) -> bool:
        return await self._db.run_interaction(MESSAGES.update, message_id,
                                              {"emailed_at": self._now()}, owner=user_id)

    async def delete(self, user_id: int, message_id: int) -> bool:
        return await self._db.run_interaction(MESSAGES.delete, message_id, owner=user_id)
