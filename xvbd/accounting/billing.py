"""Internal billing (``[COMMON] USE_BILLING = 1``): what a call costs, and the money it holds.

Prices are in 1/10000 of the tariff's currency.  A call of ``s`` seconds (the whole call,
rounded up to the second) costs ``per_call + ceil(per_minute * s / 60)``: the per-minute
price is paid by the second, the rounding (up, to 1/10000) always in the operator's favour
and never by more than one unit.

A priced call needs its per-call price and one minute on the balance to start.  It then
*holds* money in steps of a minute, each taken by one conditional UPDATE; the call may last
as long as what it holds pays for, and holds the next step 15 s before that runs out.  So
fifty calls on a balance worth ten minutes get ten minutes between them, never more.  At the
end the cost is kept and the rest of the hold goes back in one transaction; the CDR summary
shows the cost.

A call cut because its xvbd died (SIGKILL, a crash, the machine lost) is settled by
another xvbd, or by the next start (:mod:`xvbd.accounting.lostcalls`), with
:func:`cut_cost`: the call is charged at the prices it started with, from its start until
the last moment it is known to have run: its process's last heartbeat (or, when that
process never wrote one, the last time money was added to its hold), never past what the
hold paid for.  The seconds after the last heartbeat (at most one ``[TIMEOUT] HEARTBEAT``)
are not charged: nothing proves the call lasted them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from xvbd.logs import logger
from xvbd.store.accounts import Tariff
from xvbd.store.billing import Billing, HeldCall, HoldCut, LostHold

log = logger("xvbd.billing")

HOLD_SECONDS = 60  # one step of a hold
EXTEND_BEFORE = 15  # seconds before a hold runs out that the next step is taken
MIN_SECONDS = 60  # what the balance must pay for (besides the per-call price) to start

_PRICES = {"incoming": ("ivr_minute", "ivr_call"), "callblast": ("callblast_minute",
           "callblast_call"), "callback": ("callback_minute", "callback_call")}


@dataclass(frozen=True)
class Prices:
    per_minute: int
    per_call: int

    @property
    def free(self) -> bool:
        return self.per_minute <= 0 and self.per_call <= 0

    def cost(self, seconds: float) -> int:
        """What ``seconds`` of call cost, in 1/10000 units (rounded up)."""
        whole = max(0, math.ceil(seconds))
        return self.per_call + -(-self.per_minute * whole // 60)

    def seconds_paid(self, amount: int) -> float:
        """How long ``amount`` (a hold) lets a call last."""
        if self.per_minute <= 0:
            return math.inf
        return max(0, amount - self.per_call) * 60 // self.per_minute


def cut_cost(lost: LostHold) -> tuple[int, int]:
    """(cost, time the call is known to have lasted until) of a call cut when its xvbd died.
    A hold made before holds kept their prices (none recorded) is kept whole, as the
    janitor of that release did."""
    hold = lost.hold
    start = hold.started_at or hold.created_at
    alive = lost.seen_at if lost.seen_at is not None else hold.held_at
    stop = max(start, min(hold.covers_until, alive))
    if hold.per_minute <= 0 and hold.per_call <= 0:
        return hold.amount, stop
    return min(hold.amount, Prices(hold.per_minute, hold.per_call).cost(stop - start)), stop


def prices(tariff: Tariff | None, call_type: str) -> Prices:
    if tariff is None or call_type not in _PRICES:
        return Prices(0, 0)
    minute, call = _PRICES[call_type]
    return Prices(getattr(tariff, minute), getattr(tariff, call))


class CallCharge:
    """The money of one priced call: its hold, how long it may last, its cost at the end."""

    def __init__(self, billing: Billing, clock: Any, user_id: int, call_id: str,
                 started: float, price: Prices, held: HeldCall) -> None:
        self.billing = billing
        self.clock = clock
        self.user_id = user_id
        self.call_id = call_id
        self.started = started
        self.price = price
        self.held_call = held  # what the hold records of the call, should this xvbd die
        self.held = 0
        self.cost = 0
        self._timer: Any = None
        self._extending: Deferred[None] | None = None
        self._settled = False

    @property
    def paid_until(self) -> float:
        return self.started + self.price.seconds_paid(self.held)

    def _covers(self, amount: int) -> int:
        seconds = self.price.seconds_paid(amount)
        return int(self.started + (seconds if seconds != math.inf else 86400))

    async def start(self) -> bool:
        """Hold the first step; False when the balance cannot pay for the call to start."""
        wanted = self.price.cost(HOLD_SECONDS)
        least = self.price.cost(MIN_SECONDS)  # the per-call price alone when unpriced by time
        got = await self.billing.hold(self.user_id, self.call_id, wanted, least, self._covers,
                                      self.held_call)
        self.held = got
        if got:
            self._schedule()
        return bool(got)

    async def ensure(self, seconds: float) -> None:
        """Hold enough (if the balance has it) for the call to go on ``seconds`` more, before
        a long step such as a bridged call."""
        elapsed = self.clock.seconds() - self.started
        missing = self.price.cost(elapsed + seconds) - self.held
        if missing > 0:
            await self._take(missing)

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self.price.per_minute <= 0:
            return
        delay = max(0.0, self.paid_until - EXTEND_BEFORE - self.clock.seconds())
        self._timer = self.clock.callLater(delay, self._extend)

    def _extend(self) -> None:
        self._timer = None
        self._extending = Deferred.fromCoroutine(
            self._take(self.price.cost(HOLD_SECONDS) - self.price.per_call))

    async def settled_extension(self) -> None:
        """Wait for a hold being taken right now, if one is."""
        extending = self._extending
        if extending is not None and not extending.called:
            waiter: Deferred[None] = Deferred()

            def done(result: object) -> object:
                waiter.callback(None)
                return result
            extending.addBoth(done)
            await waiter

    async def _take(self, amount: int) -> None:
        if self._settled or amount <= 0:
            return
        try:
            got = await self.billing.hold(self.user_id, self.call_id, amount, 1, self._covers,
                                          self.held_call, more=True)
        except Exception as exc:
            log.error("holding more money for call {call_id} failed ({error}); the call "
                      "ends when what it holds runs out", call_id=self.call_id, error=str(exc))
            return
        if got and not self._settled:
            self.held += got
            self._schedule()

    async def settle(self, stop: float) -> int:
        """Keep the cost, give back the rest; returns the cost (once)."""
        if self._settled:
            return self.cost
        self._settled = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        wanted = self.price.cost(stop - self.started)
        try:
            self.cost, _ = await self.billing.settle(self.user_id, self.call_id, wanted)
        except HoldCut as exc:
            log.warn("call {call_id}: {reason}, which took this xvbd for dead (its heartbeat "
                     "was late by more than the lease: check the database's latency and the "
                     "clocks of the nodes); the call's cost is on that record (RESULT=CUT), "
                     "this one shows none", call_id=self.call_id, reason=str(exc))
            self.cost = 0
        return self.cost
