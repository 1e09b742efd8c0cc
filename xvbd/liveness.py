"""This process's heartbeat, and the settling of calls whose xvbd died.

Every ``[TIMEOUT] HEARTBEAT`` seconds (and once at the start) :class:`Liveness` writes this
process's heartbeat (``store.processes``, by instance id: two processes may share a
SERVER_ID), then runs :meth:`LostCalls.reconcile`.  A process silent for
:data:`LEASE_BEATS` heartbeats is dead, so the money held by a call that was cut when its
xvbd was killed is back on the balance within that lease plus one heartbeat.  A clean stop
writes ``stopped_at``: what the process still held (a call whose end could not be settled)
is then settled at the next round of any process.

The nodes' clocks must agree to well within the lease (NTP): a heartbeat is written in
the writer's time and read in the reader's.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred

from xvbd.accounting.lostcalls import LostCalls
from xvbd.logs import logger
from xvbd.store.db import DatabaseUnavailable
from xvbd.store.processes import Processes

log = logger("xvbd.liveness")

#: Heartbeats a process may miss before it is taken for dead.
LEASE_BEATS = 3
#: Seconds between two clean-ups of the rows of processes long dead.
FORGET_EVERY = 3600


def lease_for(heartbeat: float) -> int:
    return int(LEASE_BEATS * heartbeat)


class Liveness(TimerService):
    def __init__(self, processes: Processes, lost: LostCalls, server_id: str,
                 heartbeat: float, clock: Any, pid: int | None = None) -> None:
        super().__init__(heartbeat, self.beat)
        self.clock = clock  # the timer's clock (TimerService schedules on it)
        self.now = clock.seconds
        self.processes = processes
        self.lost = lost
        self.server_id = server_id
        self.lease = lease_for(heartbeat)
        self.pid = pid
        self._away = False
        self._forgotten_at: float | None = None

    @property
    def instance(self) -> str:
        return self.lost.instance

    def startService(self) -> None:
        if self.pid is None:
            self.pid = os.getpid()  # after twistd's fork
        log.info("heartbeat every {n} s as instance {instance} (pid {pid}); an xvbd silent "
                 "for {lease} s is taken for dead", n=self.step, instance=self.instance,
                 pid=self.pid, lease=self.lease)
        super().startService()

    async def beat(self) -> None:
        try:
            previous = await self.processes.beat(self.instance, self.server_id, self.pid or 0)
        except Exception as exc:
            if not self._away:
                self._away = True
                log.error("the heartbeat could not be written ({error}); if this lasts {n} s, "
                          "other xvbd processes take this one for dead and settle its calls' "
                          "holds as cut", error=str(exc), n=self.lease)
            return
        now = self.now()
        if self._away:
            self._away = False
            log.info("the heartbeat is written again")
        if previous is not None and now - previous > self.lease:
            log.warn("this xvbd's heartbeat was {n} s late (the lease is {lease} s): another "
                     "xvbd may have taken it for dead and settled its calls' holds as cut. "
                     "Check the database's latency, this machine's load and its clock",
                     n=int(now - previous), lease=self.lease)
        try:
            await self.lost.reconcile()
            if self._forgotten_at is None or now - self._forgotten_at >= FORGET_EVERY:
                self._forgotten_at = now
                await self.processes.forget_dead(self.lease)
        except DatabaseUnavailable as exc:
            log.error("settling the holds of calls cut when their xvbd died failed ({error});"
                      " the next heartbeat tries again", error=str(exc))
        except Exception:
            log.failure("settling the holds of calls cut when their xvbd died failed; the "
                        "next heartbeat tries again")

    def stopService(self) -> Any:
        stopping = super().stopService()

        async def stopped(_: object) -> None:
            try:
                await self.processes.stopped(self.instance)
            except Exception as exc:
                log.warn("the clean stop could not be written ({error}): this xvbd's "
                         "holds, if any, are settled {n} s after its last heartbeat",
                         error=str(exc), n=self.lease)

        return stopping.addCallback(lambda r: Deferred.fromCoroutine(stopped(r)))
