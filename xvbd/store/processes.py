"""The running xvbd processes, each known by its heartbeat.

Every xvbd names itself by an instance id made when it starts (two processes may share a
SERVER_ID, so the server id does not tell them apart) and writes ``seen_at`` every
``[TIMEOUT] HEARTBEAT`` seconds; a clean stop writes ``stopped_at``.  An instance whose
heartbeat is older than the lease, or that stopped, is dead: the money its calls held is
settled by another (``Billing.cut_hold``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

#: How long a stopped or dead instance's row is kept once none of its holds is left: long
#: enough to read when it was last seen, short enough that the table stays small.
KEEP_DEAD = 86400


@dataclass(frozen=True)
class Process:
    instance: str
    server_id: str
    pid: int
    started_at: int
    seen_at: int
    stopped_at: int


PROCESSES = Table("processes", Process, key="instance")


class Processes:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def beat(self, instance: str, server_id: str, pid: int) -> int | None:
        """This instance is alive now.  Returns the previous heartbeat's time (None for the
        first), so the caller can tell when it was silent for longer than the lease."""
        now = self._now()

        def beat(txn: Txn) -> int | None:
            before = PROCESSES.get(txn, instance)
            if before is None:
                PROCESSES.insert(txn, {"instance": instance, "server_id": server_id,
                                       "pid": pid, "started_at": now, "seen_at": now,
                                       "stopped_at": 0})
                return None
            PROCESSES.update(txn, instance, {"seen_at": max(now, before.seen_at)})
            return before.seen_at
        return await self._db.run_interaction(beat)

    async def stopped(self, instance: str) -> None:
        """A clean stop: what this instance still holds may be settled at once."""
        now = self._now()

        def stop(txn: Txn) -> None:
            txn.execute("UPDATE processes SET seen_at = ?, stopped_at = ? WHERE instance = ?",
                        (now, now, instance))
        await self._db.run_interaction(stop)

    async def get(self, instance: str) -> Process | None:
        return await self._db.run_interaction(PROCESSES.get, instance)

    async def forget_dead(self, lease: int) -> int:
        """Remove the rows of instances dead (or stopped) for :data:`KEEP_DEAD` seconds
        whose holds are all settled."""
        cutoff = self._now() - KEEP_DEAD

        def forget(txn: Txn) -> int:
            txn.execute("DELETE FROM processes WHERE seen_at < ? AND NOT EXISTS "
                        "(SELECT 1 FROM balance_holds h WHERE h.instance = processes.instance"
                        " OR h.cut_by = processes.instance)", (cutoff - lease,))
            return txn.rowcount
        return await self._db.run_interaction(forget)
