"""A tenant's call queues, written into Asterisk's realtime ``queues`` / ``queue_members``
tables from its Queue extensions (the extension owns its queue; deleting it drops both)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xvbd.store.db import Database, Txn
from xvbd.store.features import _owns_extension

QUEUE_COLUMNS = ("musiconhold", "context", "timeout", "ringinuse", "announce_frequency",
                 "announce_position", "announce_holdtime", "retry", "wrapuptime", "maxlen",
                 "strategy", "joinempty", "leavewhenempty")


def queue_name(extension_id: int) -> str:
    return f"xvb_q_{int(extension_id)}"


class Queues:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, user_id: int, extension_id: int, options: dict[str, Any],
                  members: Sequence[str]) -> str:
        """Make the realtime rows of an extension's queue say ``options`` and ``members``
        (interfaces such as ``Local/79001@ctx/n``), writing only what differs from what they
        say now (whoever wrote it: this process, another node, an operator); returns the
        queue's name.  Members are rewritten only when they changed, so the callers waiting
        in the queue are not disturbed by a call that brings nothing new."""
        unknown = set(options) - set(QUEUE_COLUMNS)
        if unknown:
            raise ValueError(f"queues has no column {', '.join(sorted(unknown))}")
        name = queue_name(extension_id)

        def put(txn: Txn) -> str:
            _owns_extension(txn, user_id, extension_id)
            now = txn.one(f"SELECT extension_id, {', '.join(options)} FROM queues "
                          "WHERE name = ?", (name,)) if options else None
            wanted = {"extension_id": extension_id, **options}
            if now is None or any(_differs(now[k], v) for k, v in wanted.items()):
                cols = ("name", "extension_id", *options)
                txn.execute(txn.dialect.upsert("queues", cols, ("name",)),
                            (name, extension_id, *options.values()))
            there = [r["interface"] for r in txn.all(
                "SELECT interface FROM queue_members WHERE queue_name = ? ORDER BY uniqueid",
                (name,))]
            if there != list(members):
                txn.execute("DELETE FROM queue_members WHERE queue_name = ?", (name,))
                txn.executemany("INSERT INTO queue_members (queue_name, interface, "
                                "membername, penalty, paused) VALUES (?, ?, ?, 0, 0)",
                                [(name, member, member) for member in members])
            return name
        return await self._db.run_interaction(put)

    async def members(self, user_id: int, extension_id: int) -> list[str]:
        def read(txn: Txn) -> list[str]:
            return [r["interface"] for r in txn.all(
                "SELECT m.interface FROM queue_members m JOIN queues q ON q.name = m.queue_name "
                "JOIN extensions e ON e.id = q.extension_id WHERE e.id = ? AND e.user_id = ? "
                "ORDER BY m.uniqueid", (extension_id, user_id))]
        return await self._db.run_interaction(read)

    async def options(self, user_id: int, extension_id: int) -> dict[str, Any] | None:
        def read(txn: Txn) -> dict[str, Any] | None:
            return txn.one(f"SELECT {', '.join('q.' + c for c in QUEUE_COLUMNS)} FROM queues q "
                           "JOIN extensions e ON e.id = q.extension_id "
                           "WHERE e.id = ? AND e.user_id = ?", (extension_id, user_id))
        return await self._db.run_interaction(read)


def _differs(stored: Any, wanted: Any) -> bool:
    """Whether a column's stored value is not the one wanted (numbers and their text, as
    the backends give them back, compare as equal)."""
    if stored is None or wanted is None:
        return stored is not wanted
    return str(stored) != str(wanted)
