"""Lockouts: a source that guessed wrong too often, refused for a while.

The row is the truth every xvbd reads (so a lockout holds on every node, with or without
Redis); the failures that lead to one are counted in ``xvbd.counters``.  A lockout is
journaled when it is made (by the system, from the source) and when the operator lifts it
(by that person, through the audited table).  Each lockout of a source that was locked
out not long before lasts longer (:func:`lockout_seconds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.store.audit import Actor, journal_rows
from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

#: Each further lockout of a source lasts this many times the one before.
ESCALATION = 4


@dataclass(frozen=True)
class Lockout:
    id: int
    source: str
    target: str  # '' every code and PIN; else the account 'NUMBER#CODE' (or its extension)
    user_id: int | None
    called_id: str
    caller_id: str
    level: int
    failures: int
    started_at: int
    ends_at: int
    lifted_at: int
    lifted_by: str

    @property
    def what(self) -> str:
        """What the source may not try, for a person."""
        return f"the PIN of {self.target}" if self.target else "every access code and PIN"

    def active(self, now: float) -> bool:
        return not self.lifted_at and self.ends_at > now


LOCKOUTS = Table("lockouts", Lockout, audit=True, tenant="user_id")


def lockout_seconds(level: int, first: int, longest: int) -> int:
    """How long the ``level``-th lockout in a row lasts: ``first``, then 4 times longer each
    time, never more than ``longest``."""
    return min(first * ESCALATION ** min(max(level, 1) - 1, 32), longest)


class Lockouts:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def lock(self, *, source: str, target: str = "", user_id: int | None = None,
                   called_id: str = "", caller_id: str = "", failures: int, first: int,
                   longest: int, now: int | None = None) -> Lockout:
        """Lock ``source`` out (of ``target``, or of everything) from ``now``: one lockout
        longer than the last if the source was locked out in the last ``longest`` seconds
        (lifted ones do not count: the operator said they were a mistake).  Journaled."""
        at = self._now() if now is None else int(now)

        def lock(txn: Txn) -> Lockout:
            row = txn.one("SELECT COUNT(*) AS n FROM lockouts WHERE source = ? AND "
                          "ends_at >= ? AND lifted_at = 0", (source, at - longest))
            level = 1 + int(row["n"] if row else 0)
            ends = at + lockout_seconds(level, first, longest)
            values = {"source": source[:255], "target": target[:255], "user_id": user_id,
                      "called_id": called_id[:255], "caller_id": caller_id[:255],
                      "level": level, "failures": failures, "started_at": at,
                      "ends_at": ends, "lifted_at": 0, "lifted_by": ""}
            new_id = LOCKOUTS.insert(txn, values)
            made = Lockout(id=new_id, **values)  # type: ignore[arg-type]
            journal_rows(txn, Actor("system", "xvbd", source[:64]), "lockouts", new_id,
                         {"lockout": ""}, {"lockout": describe(made)}, user_id)
            return made
        return await self._db.run_interaction(lock)

    async def active(self, source: str, target: str = "", now: float | None = None
                     ) -> Lockout | None:
        """The lockout that refuses ``source`` at ``target`` now (one of the whole source
        first), or None."""
        at = self._now() if now is None else int(now)
        rows = await self._db.run_interaction(
            LOCKOUTS.select, "source = ? AND ends_at > ? AND lifted_at = 0 AND target IN (?, ?)",
            (source, at, "", target), order="target, ends_at DESC", limit=1)
        return rows[0] if rows else None

    async def current(self, now: float | None = None, limit: int = 500) -> list[Lockout]:
        """Lockouts in force, the newest first."""
        at = self._now() if now is None else int(now)
        return await self._db.run_interaction(
            LOCKOUTS.select, "ends_at > ? AND lifted_at = 0", (at,),
            order="started_at DESC, id DESC", limit=limit)

    async def get(self, lockout_id: int) -> Lockout | None:
        return await self._db.run_interaction(LOCKOUTS.get, lockout_id)

    async def lift(self, lockout_id: int, by: str, now: float | None = None) -> Lockout | None:
        """End a lockout in force now (journaled as the acting person's); None when there is
        no such lockout in force."""
        at = self._now() if now is None else int(now)

        def lift(txn: Txn) -> Lockout | None:
            found = LOCKOUTS.get(txn, lockout_id)
            if found is None or not found.active(at):
                return None
            LOCKOUTS.update(txn, lockout_id, {"lifted_at": at, "lifted_by": by[:64]})
            return LOCKOUTS.get(txn, lockout_id)
        return await self._db.run_interaction(lift)


def describe(lockout: Lockout) -> str:
    """One line for the journal and the log."""
    return (f"{lockout.what} refused from {lockout.source} until "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(lockout.ends_at))} "
            f"(lockout {lockout.level} in a row, after {lockout.failures} wrong)")
