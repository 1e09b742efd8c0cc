"""Daily and monthly fees.

Every ``interval`` seconds (an hour by default) each active user whose tariff has a fee is
charged for the current day and month (UTC) — once: the fee_charges key refuses a second
charge of a period, whichever process or restart tries.  (The holds of calls whose xvbd
died are settled by :mod:`xvbd.accounting.lostcalls`, at every heartbeat.)
"""

from __future__ import annotations

import time
from typing import Any

from twisted.application.internet import TimerService

from xvbd.logs import logger
from xvbd.store.billing import Billing

log = logger("xvbd.fees")

PAGE = 500


class FeeCharger(TimerService):
    def __init__(self, billing: Billing, clock: Any, interval: float = 3600.0) -> None:
        super().__init__(interval, self.run_once)
        self.billing = billing
        self.clock = clock  # the timer's clock (TimerService schedules on it)
        self.now = clock.seconds

    async def run_once(self) -> int:
        """Charge what is due now; returns how many fees were charged."""
        try:
            charged = await self.charge_due(self.now())
        except Exception as exc:
            log.error("charging fees failed ({error}); the next run tries again",
                      error=str(exc))
            return 0
        if charged:
            log.info("fees: {charged} charged", charged=charged)
        return charged

    async def charge_due(self, now: float) -> int:
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        month = day[:7]
        charged, after = 0, 0
        while True:
            payers = await self.billing.fee_payers(after, PAGE)
            if not payers:
                return charged
            for user_id, daily, monthly in payers:
                if daily > 0 and await self.billing.charge_fee(user_id, "daily", day, daily):
                    charged += 1
                if monthly > 0 and await self.billing.charge_fee(user_id, "monthly", month,
                                                                 monthly):
                    charged += 1
            after = payers[-1][0]
