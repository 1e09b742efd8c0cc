"""Calls cut because their xvbd died: their holds settled, their records written.

A priced call holds money (:mod:`xvbd.accounting.billing`); its end settles the hold.  When
its xvbd dies mid-call (SIGKILL, a crash, the machine lost), nothing ends it: the caller
hears Asterisk's fallback, and the hold would stay taken.  Every xvbd runs
:meth:`LostCalls.reconcile` at each heartbeat (:mod:`xvbd.liveness`), at its start too.
It settles the holds of every *other* process that is gone (no heartbeat for the lease,
stopped, or never seen):

- the call is charged by :func:`~xvbd.accounting.billing.cut_cost` (its prices, from its
  start to its process's last heartbeat, never past what the hold paid for); the rest goes
  back to the balance (a ``balance_ops`` row), in the transaction that marks the hold cut:
  of two processes reconciling at once one settles, the other finds nothing;
- the call's summary record goes to every CDR sink (``TYPE=XVB``, record id
  ``CALL_ID:cut``, ``DATA=DTMF=, RESULT=CUT``, its cost, tenant and node): the books show
  the call once;
- one log line names the call, the tenant, what was kept and given back, and what to do;
- with RADIUS accounting, the Stop its process never sent (the session's length as charged);
- then the hold's row goes.  A reconciler that dies between the money and the record
  leaves a marked row: the next one writes the record (the DB sink ignores a second copy
  of the same record id; the FILE and UDP sinks may then see the line twice).
"""

from __future__ import annotations

from typing import Any

from xvbd.accounting.billing import cut_cost
from xvbd.accounting.cdr import CallCDR, CDRRecord, money
from xvbd.accounting.radius import RadiusAccounting
from xvbd.accounting.sinks import CDREmitter
from xvbd.logs import logger
from xvbd.store.billing import Billing, Cut, Hold

log = logger("xvbd.billing")

#: Holds settled in one round at most (the next heartbeat takes the rest).
PAGE = 100
CUT_RESULT = "CUT"


def cut_record(hold: Hold, now: int) -> CDRRecord:
    """The summary of a cut call, from what its hold recorded."""
    cdr = CallCDR({"ACCESS_CODE": hold.access_code, "CALLED_ID": hold.called_id,
                   "CALLER_ID": hold.caller_id, "CALL_ID": hold.call_id,
                   "SERVER_ID": hold.server_id, "SUBSCR_ID": hold.user_id})
    start = hold.started_at or hold.created_at
    return cdr.summary(call_type=hold.call_type or "incoming", start=start,
                       stop=max(start, hold.cut_stop), now=now, cost=hold.cut_cost,
                       sys_cost=hold.cut_cost, currency_id=hold.currency_id, dtmf="",
                       result=CUT_RESULT, record_id=f"{hold.call_id}:cut")


class LostCalls:
    """Settles the holds of dead processes (see the module's text).  ``lease``: seconds of
    silence after which a process is dead."""

    def __init__(self, billing: Billing, cdr: CDREmitter, lease: int, clock: Any,
                 radius: RadiusAccounting | None = None) -> None:
        self.billing = billing
        self.cdr = cdr
        self.radius = radius
        self.lease = lease
        self.clock = clock

    @property
    def instance(self) -> str:
        return self.billing.instance

    async def reconcile(self) -> int:
        """One round; returns how many cut calls were settled (or their records written)."""
        done = 0
        for lost in await self.billing.lost_holds(self.instance, self.lease, PAGE):
            cut = await self.billing.cut_hold(lost, self.instance, self.lease, cut_cost)
            if cut is None:
                continue  # settled meanwhile, by its call or by another xvbd
            await self.cdr.emit([cut_record(cut.hold, int(self.clock.seconds()))])
            if self.radius is not None:
                self.radius.cut(cut.hold)  # never awaited, as a call's packets are not
            await self.billing.forget_cut(cut.hold, self.instance)
            self._say(cut)
            done += 1
        return done

    def _say(self, cut: Cut) -> None:
        hold = cut.hold
        fields = {"call_id": hold.call_id, "user_id": hold.user_id,
                  "access_code": hold.access_code or "-", "node": hold.server_id or "-",
                  "process": hold.instance or "-", "kept": money(hold.cut_cost),
                  "returned": money(cut.returned),
                  "seconds": max(0, hold.cut_stop - (hold.started_at or hold.created_at))}
        if cut.why == "record":
            log.info("call {call_id} (tenant {user_id}): its hold was settled as cut before "
                     "(kept {kept}), by an xvbd that died before writing its record; the "
                     "RESULT=CUT record is written now (the FILE and UDP sinks may have it "
                     "twice). Nothing to do", **fields)
        elif cut.why == "stopped":
            log.warn("call {call_id} (tenant {user_id}, access code {access_code}, node "
                     "{node}) was still holding money when its xvbd ({process}) stopped: "
                     "settled as cut, {seconds} s charged: kept {kept}, returned {returned}; "
                     "RESULT=CUT record written. Check that xvbd's log for why the call's "
                     "end was not settled (database away at its stop?)", **fields)
        else:
            log.warn("call {call_id} (tenant {user_id}, access code {access_code}, node "
                     "{node}) was cut when its xvbd ({process}) died: {seconds} s charged "
                     "(until its last heartbeat): kept {kept}, returned {returned}; "
                     "RESULT=CUT record written. Check why that xvbd died (its log, the "
                     "system journal: killed, out of memory, machine lost)", **fields)
