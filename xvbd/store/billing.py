"""Money held for calls, and fees charged once per period.

Every change of a balance is one conditional UPDATE (``balance >= amount``) in the same
transaction as its journal row: concurrent calls on one balance can never take more than
it holds, whatever the number of xvbd processes.

A hold names the xvbd process (instance) that made it and carries what the call's record
needs.  When that process dies mid-call, another one settles the hold as *cut*
(:meth:`Billing.cut_hold`): in one transaction the cost is kept, the rest goes back and the
row is marked ``cut_by``; the row goes (:meth:`Billing.forget_cut`) once the call's record
is written, so a reconciler that dies in between leaves the record to the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.ids import new_id
from xvbd.store.accounts import InsufficientBalance, move_balance
from xvbd.store.db import Database, Row, Txn
from xvbd.store.table import ANY_OWNER, Table


@dataclass(frozen=True)
class Hold:
    call_id: str
    user_id: int
    amount: int
    covers_until: int
    server_id: str
    created_at: int
    instance: str = ""
    started_at: int = 0
    held_at: int = 0
    per_minute: int = 0
    per_call: int = 0
    call_type: str = ""
    currency_id: int = 0
    access_code: str = ""
    caller_id: str = ""
    called_id: str = ""
    cut_by: str = ""
    cut_cost: int = 0
    cut_stop: int = 0


@dataclass(frozen=True)
class HeldCall:
    """What a hold records about its call, for the record written if its xvbd dies."""

    server_id: str
    started_at: int
    per_minute: int
    per_call: int
    call_type: str = "incoming"
    currency_id: int = 0
    access_code: str = ""
    caller_id: str = ""
    called_id: str = ""

    def columns(self) -> dict[str, object]:
        return {"server_id": self.server_id,
                "started_at": self.started_at, "per_minute": self.per_minute,
                "per_call": self.per_call, "call_type": self.call_type,
                "currency_id": self.currency_id, "access_code": self.access_code[:32],
                "caller_id": self.caller_id[:255], "called_id": self.called_id[:255]}


@dataclass(frozen=True)
class LostHold:
    """A hold whose process is dead (or unknown), as read to be settled: ``seen_at`` is that
    process's last heartbeat, None when the process is not known."""

    hold: Hold
    seen_at: int | None


@dataclass(frozen=True)
class Cut:
    """A hold settled as cut: the row as marked (``cut_cost`` kept, ``cut_stop``), what went
    back to the balance, and why its process was taken for gone: ``silent`` (no heartbeat
    for the lease), ``stopped`` (it stopped without settling it), ``unknown`` (no heartbeat
    ever seen), or ``record`` (settled before by a reconciler that died before writing the
    call's record: only the record is left to write)."""

    hold: Hold
    returned: int
    why: str


class HoldCut(Exception):
    """The hold was settled as cut by another xvbd, which took this one for dead."""


HOLDS = Table("balance_holds", Hold, key="call_id", owner="user_id")

#: When a hold's process ``p`` is dead (parameters: held before, silent since): it is not
#: known (and the hold is older than the lease: a process that has just started may not
#: have written its first heartbeat yet), it has stopped, or it is silent.
_DEAD = ("(p.instance IS NULL AND h.held_at < ?) OR p.stopped_at > 0 OR p.seen_at < ?")
_CUTTER_DEAD = "c.instance IS NULL OR c.stopped_at > 0 OR c.seen_at < ?"
#: The same rules inside an UPDATE of ``balance_holds`` (parameters: silent since, twice).
_GONE_MAKER = (
    "NOT EXISTS (SELECT 1 FROM processes p WHERE p.instance = balance_holds.instance "
    "AND p.stopped_at = 0 AND p.seen_at >= ?) AND (held_at < ? OR EXISTS "
    "(SELECT 1 FROM processes p WHERE p.instance = balance_holds.instance))")
_GONE_CUTTER = (
    "NOT EXISTS (SELECT 1 FROM processes c WHERE c.instance = balance_holds.cut_by "
    "AND c.stopped_at = 0 AND c.seen_at >= ?)")
_LOST_SQL = (
    "SELECT h.call_id AS call_id, h.user_id AS user_id, p.seen_at AS seen_at "
    "FROM balance_holds h LEFT JOIN processes p ON p.instance = h.instance "
    "LEFT JOIN processes c ON c.instance = h.cut_by "
    f"WHERE h.instance <> ? AND ((h.cut_by = '' AND ({_DEAD})) "
    f"OR (h.cut_by <> '' AND (h.cut_by = ? OR {_CUTTER_DEAD}))) "
    "ORDER BY h.held_at, h.call_id")


def _move(txn: Txn, user_id: int, amount: int, now: int, reason: str, call_id: str,
          allow_overdraft: bool = False) -> int:
    return move_balance(txn, user_id, amount, now, reason, actor="billing", call_id=call_id,
                        allow_overdraft=allow_overdraft)


class Billing:
    """``instance`` names this process (:mod:`xvbd.store.processes`): its holds record it."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time,
                 instance: str = "") -> None:
        self._db = db
        self._now = lambda: int(clock())
        self.instance = instance or new_id()

    async def hold(self, user_id: int, call_id: str, wanted: int, least: int,
                   covers_until: Callable[[int], int], call: HeldCall, *,
                   more: bool = False) -> int:
        """Hold ``wanted`` for a call, or as much of the balance as there is if that is at
        least ``least``; 0 when not even ``least`` is there.  ``covers_until(amount)`` says
        until when the amount pays.  With ``more`` (a call adding to its hold) 0 as well
        when the hold is not there any more: settled as cut, by another xvbd that took
        this one for dead."""
        now = self._now()

        def take(txn: Txn) -> int:
            existing = HOLDS.get(txn, call_id, owner=user_id)
            if (existing is None and more) or (existing is not None and existing.cut_by):
                return 0  # settled for a process taken for dead: no more money for it
            balance = int(txn.scalar("SELECT balance FROM users WHERE id = ?"
                                     + txn.dialect.for_update, (user_id,)) or 0)
            amount = min(wanted, balance)
            if amount < least or amount <= 0:
                return 0
            try:
                _move(txn, user_id, -amount, now, "call: held", call_id)
            except InsufficientBalance:  # another call took it meanwhile
                return 0
            if existing is None:
                HOLDS.insert(txn, {"call_id": call_id, "user_id": user_id, "amount": amount,
                                   "covers_until": covers_until(amount), "created_at": now,
                                   "held_at": now, "instance": self.instance,
                                   **call.columns()})
            else:
                total = existing.amount + amount
                HOLDS.update(txn, call_id, {"amount": total, "held_at": now,
                                            "covers_until": covers_until(total)},
                             owner=user_id)
            return amount
        return await self._db.run_interaction(take)

    async def settle(self, user_id: int, call_id: str, cost: int) -> tuple[int, int]:
        """End a call's hold: the cost is kept (never more than was held), the rest goes
        back.  Returns (cost charged, amount given back).  :class:`HoldCut` when another
        xvbd settled it already, taking this one for dead."""
        now = self._now()

        def settle(txn: Txn) -> tuple[int, int]:
            hold = HOLDS.get(txn, call_id, owner=user_id)
            if hold is None:
                return 0, 0
            if hold.cut_by:
                raise HoldCut(f"the hold of call {call_id} was settled by {hold.cut_by}")
            charged = min(cost, hold.amount)
            back = hold.amount - charged
            if back:
                _move(txn, user_id, back, now, "call: unused hold returned", call_id)
            HOLDS.delete(txn, call_id, owner=user_id)
            return charged, back
        return await self._db.run_interaction(settle)

    async def held(self, user_id: int, call_id: str) -> Hold | None:
        return await self._db.run_interaction(HOLDS.get, call_id, owner=user_id)

    # -------------------------------------------------------------- holds of dead processes

    async def lost_holds(self, mine: str, lease: int, limit: int = 100) -> list[LostHold]:
        """Holds (of every tenant) whose process is not ``mine`` and is dead: silent for
        more than ``lease`` seconds, stopped, or unknown; and holds settled as cut whose
        record is still to be written by a dead process, or by ``mine`` in an earlier
        round.  Oldest first."""
        silent_since = self._now() - lease

        def read(txn: Txn) -> list[LostHold]:
            rows = txn.all(_LOST_SQL + f" LIMIT {int(limit)}",
                           (mine, silent_since, silent_since, mine, silent_since))
            out = []
            for row in rows:
                hold = HOLDS.get(txn, row["call_id"], owner=int(row["user_id"]))
                if hold is not None:
                    out.append(LostHold(hold, _seen(row)))
            return out
        return await self._db.run_interaction(read)

    async def cut_hold(self, lost: LostHold, mine: str, lease: int,
                       price: Callable[[LostHold], tuple[int, int]]) -> Cut | None:
        """Settle the hold of a call cut when its xvbd died: ``price(lost)`` gives (cost,
        the time the call is known to have lasted until); the cost (at most the hold) is
        kept, the rest goes back to the balance, and the row is marked cut by ``mine``.
        A hold already marked by a dead process (its record not written) is taken over
        without moving money again.  None when it is not lost any more (settled meanwhile,
        its process alive, another reconciler has it)."""
        now = self._now()
        silent_since = now - lease
        key, user_id = lost.hold.call_id, lost.hold.user_id

        def cut(txn: Txn) -> Cut | None:
            # The claim comes first: one conditional UPDATE, so of two reconcilers (or the
            # call's own settle) exactly one goes on, and the rest of the work is inside
            # its write transaction on both backends.
            before = lost.hold.cut_by
            if before:  # money settled already; the record is what is left to do
                txn.execute("UPDATE balance_holds SET cut_by = ? WHERE call_id = ? AND "
                            f"user_id = ? AND cut_by = ? AND (cut_by = ? OR {_GONE_CUTTER})",
                            (mine, key, user_id, before, mine, silent_since))
                if txn.rowcount != 1 and before != mine:
                    return None
                marked = HOLDS.get(txn, key, owner=user_id)
                if marked is None:
                    return None
                return Cut(marked, marked.amount - marked.cut_cost, "record")
            txn.execute("UPDATE balance_holds SET cut_by = ? WHERE call_id = ? AND user_id = ? "
                        f"AND cut_by = '' AND instance <> ? AND {_GONE_MAKER}",
                        (mine, key, user_id, mine, silent_since, silent_since))
            if txn.rowcount != 1:
                return None  # not lost (any more), or another reconciler was first
            hold = HOLDS.get(txn, key, owner=user_id)
            assert hold is not None
            maker = txn.one("SELECT seen_at, stopped_at FROM processes WHERE instance = ?",
                            (hold.instance,))
            seen = None if maker is None else int(maker["seen_at"])
            why = "unknown" if maker is None else "stopped" if maker["stopped_at"] else "silent"
            cost, stop = price(LostHold(hold, seen))
            cost = max(0, min(cost, hold.amount))
            txn.execute("UPDATE balance_holds SET cut_cost = ?, cut_stop = ? WHERE call_id = ? "
                        "AND user_id = ?", (cost, stop, key, user_id))
            back = hold.amount - cost
            if back:
                _move(txn, user_id, back, now, "call cut: unused hold returned", key)
            marked = HOLDS.get(txn, key, owner=user_id)
            assert marked is not None
            return Cut(marked, back, why)
        return await self._db.run_interaction(cut)

    async def forget_cut(self, hold: Hold, mine: str) -> bool:
        """The cut call's record is written: its hold row goes."""
        def forget(txn: Txn) -> bool:
            txn.execute("DELETE FROM balance_holds WHERE call_id = ? AND user_id = ? AND "
                        "cut_by = ?", (hold.call_id, hold.user_id, mine))
            return txn.rowcount > 0
        return await self._db.run_interaction(forget)

    async def all_holds(self) -> list[Hold]:
        """Every hold of every tenant (the operator's view, tests)."""
        return await self._db.run_interaction(
            lambda txn: HOLDS.select(txn, owner=ANY_OWNER, order="created_at, call_id"))

    async def charge_fee(self, user_id: int, kind: str, period: str, amount: int) -> bool:
        """Charge a daily or monthly fee once for ``period`` ('2026-11-26', '2026-11'): the
        key of fee_charges lets exactly one charge of a period through, whatever runs it.
        The fee may take the balance below zero (it is owed)."""
        now = self._now()

        def charge(txn: Txn) -> bool:
            txn.execute(txn.dialect.insert_ignore(
                "fee_charges", ("user_id", "kind", "period", "amount", "charged_at")),
                (user_id, kind, period, amount, now))
            if txn.rowcount <= 0:
                return False
            _move(txn, user_id, -amount, now, f"{kind} fee {period}", "",
                  allow_overdraft=True)
            return True
        return await self._db.run_interaction(charge)

    async def fee_payers(self, after_id: int, limit: int) -> list[tuple[int, int, int]]:
        """(user id, daily fee, monthly fee) of active users whose tariff has a fee."""
        def read(txn: Txn) -> list[tuple[int, int, int]]:
            rows = txn.all(
                "SELECT u.id AS id, t.daily_fee AS daily, t.monthly_fee AS monthly "
                "FROM users u JOIN user_groups g ON g.id = u.group_id "
                "JOIN tariffs t ON t.id = g.tariff_id "
                "WHERE u.id > ? AND u.status = 'active' "
                "AND (t.daily_fee > 0 OR t.monthly_fee > 0) "
                f"ORDER BY u.id LIMIT {int(limit)}", (after_id,))
            return [(int(r["id"]), int(r["daily"]), int(r["monthly"])) for r in rows]
        return await self._db.run_interaction(read)


def _seen(row: Row) -> int | None:
    return None if row["seen_at"] is None else int(row["seen_at"])

