"""Daily clean-up: CDRs older than ``[COMMON] CDR_STORE`` days and journal entries older
than ``JOURNAL_STORE`` days leave the database (0 keeps none: CDRs go to the file only, and
there is no journal), and so do web sessions that have ended.  Runs at start and then every
day, on the reactor's clock."""

from __future__ import annotations

from typing import Any

from twisted.application.internet import TimerService

from xvbd.logs import logger
from xvbd.store import Store

log = logger("xvbd.retention")

DAY = 86400.0


class Retention(TimerService):
    def __init__(self, store: Store, cdr_days: int, journal_days: int, clock: Any,
                 interval: float = DAY) -> None:
        super().__init__(interval, self.run_once)
        self.clock = clock
        self.store = store
        self.cdr_days = cdr_days
        self.journal_days = journal_days

    async def run_once(self) -> tuple[int, int]:
        try:
            cdrs = await self.store.cdrs.purge_older_than(self.cdr_days)
            journal = await self.store.journal.purge_older_than(self.journal_days)
            await self.store.sessions.sweep()
        except Exception as exc:
            log.error("the daily clean-up failed ({error}); it runs again tomorrow",
                      error=str(exc))
            return 0, 0
        if cdrs or journal:
            log.info("clean-up: {cdrs} CDR record(s) older than {cd} days and {journal} "
                     "journal entries older than {jd} days removed", cdrs=cdrs, journal=journal,
                     cd=self.cdr_days, jd=self.journal_days)
        return cdrs, journal
