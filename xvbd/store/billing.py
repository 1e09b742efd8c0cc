"""Money held for calls, and fees charged once per period.

Every change of a balance is one conditional UPDATE (``balance >= amount``) in the same
transaction as its journal row: concurrent calls on one balance can never take more than
it holds, whatever the number of xvbd processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.store.accounts import InsufficientBalance, move_balance
from xvbd.store.db import Database, Txn
from xvbd.store.table import Table


@dataclass(frozen=True)
class Hold:
    call_id: str
    user_id: int
    amount: int
    covers_until: int
    server_id: str
    created_at: int


HOLDS = Table("balance_holds", Hold, key="call_id", owner="user_id")


def _move(txn: Txn, user_id: int, amount: int, now: int, reason: str, call_id: str,
          allow_overdraft: bool = False) -> int:
    return move_balance(txn, user_id, amount, now, reason, actor="billing", call_id=call_id,
                        allow_overdraft=allow_overdraft)


class Billing:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def hold(self, user_id: int, call_id: str, wanted: int, least: int,
                   covers_until: Callable[[int], int], server_id: str = "") -> int:
        """Hold ``wanted`` for a call, or as much of the balance as there is if that is at
        least ``least``; 0 when not even ``least`` is there.  ``covers_until(amount)`` says
        until when the amount pays."""
        now = self._now()

        def take(txn: Txn) -> int:
            balance = int(txn.scalar("SELECT balance FROM users WHERE id = ?"
                                     + txn.dialect.for_update, (user_id,)) or 0)
            amount = min(wanted, balance)
            if amount < least or amount <= 0:
                return 0
            try:
                _move(txn, user_id, -amount, now, "call: held", call_id)
            except InsufficientBalance:  # another call took it meanwhile
                return 0
            existing = HOLDS.get(txn, call_id, owner=user_id)
            if existing is None:
                HOLDS.insert(txn, {"call_id": call_id, "user_id": user_id, "amount": amount,
                                   "covers_until": covers_until(amount),
                                   "server_id": server_id, "created_at": now})
            else:
                total = existing.amount + amount
                HOLDS.update(txn, call_id, {"amount": total,
                                            "covers_until": covers_until(total)},
                             owner=user_id)
            return amount
        return await self._db.run_interaction(take)

    async def settle(self, user_id: int, call_id: str, cost: int) -> tuple[int, int]:
        """End a call's hold: the cost is kept (never more than was held), the rest goes
        back.  Returns (cost charged, amount given back)."""
        now = self._now()

        def settle(txn: Txn) -> tuple[int, int]:
            hold = HOLDS.get(txn, call_id, owner=user_id)
            if hold is None:
                return 0, 0
            charged = min(cost, hold.amount)
            back = hold.amount - charged
            if back:
                _move(txn, user_id, back, now, "call: unused hold returned", call_id)
            HOLDS.delete(txn, call_id, owner=user_id)
            return charged, back
        return await self._db.run_interaction(settle)

    async def held(self, user_id: int, call_id: str) -> Hold | None:
        return await self._db.run_interaction(HOLDS.get, call_id, owner=user_id)

    async def clear_lost_holds(self, older_than: int) -> int:
        """Holds of calls whose xvbd died: past what they covered by ``older_than`` seconds,
        they are kept as the calls' cost and their rows removed."""
        cutoff = self._now() - older_than

        def clear(txn: Txn) -> int:
            txn.execute("DELETE FROM balance_holds WHERE covers_until < ?", (cutoff,))
            return txn.rowcount
        return await self._db.run_interaction(clear)

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
