"""Attempts of outbound calls (CallBlast phones and Callback requests): which are due on a
node, claiming one for an attempt, and its outcome.

These functions work across tenants, as the dialer does (each row still names its tenant).
An attempt is claimed with a random *token* written into ``locked_by`` by one conditional
UPDATE, so two processes can never claim the same phone; the outcome is written only by the
holder of that token, once: a late or repeated report (the call's own FastAGI session, the
OriginateResponse, a watchdog) finds the token gone and changes nothing.  A claim left by
a process that died is taken over after ``locked_until``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xvbd.store.callblast import (
    ITEMS,
    PHONES,
    RESULT_ROWS,
    CallblastItem,
    CallblastPhone,
    CallblastResult,
)
from xvbd.store.db import Database, Txn
from xvbd.store.features import CALLBACKS, CallbackRequest
from xvbd.store.table import ANY_OWNER, Table


def _due(t: str = "") -> str:
    """Due for an attempt: pending and its time has come, or claimed by a process that let
    its claim lapse (two parameters: now, now)."""
    return (f"(({t}status = 'pending' AND {t}next_attempt_at <= ?) OR "
            f"({t}status = 'calling' AND {t}locked_until < ?))")


_DUE = _due()


def _after(attempts: int, result: str, now: int, counted: bool, max_attempts: int,
           retry_in: int) -> tuple[int, str, int]:
    """Attempts made, status and when due again, once an attempt ended with ``result``:
    reached is done; otherwise due again while attempts remain (an attempt that does not
    count always leaves one), else failed for good."""
    attempts += 1 if counted else 0
    if result in REACHED:
        return attempts, "done", 0
    if attempts < max_attempts or not counted:
        return attempts, "pending", now + retry_in
    return attempts, "failed", 0
#: A final result of an attempt; the rest may be tried again.
REACHED = ("answered", "machine")


def _settle(txn: Txn, table: Table[Any], row_id: int, token: str, result: str, now: int,
            counted: bool, max_attempts: int, retry_in: int,
            extra: dict[str, Any]) -> Any | None:
    """Write the outcome of the attempt ``token`` on a phone or callback request (and the
    ``extra`` columns); the row as it was before, or None when ``token`` is not its current
    attempt."""
    row = table.get(txn, row_id, owner=ANY_OWNER)
    if row is None or row.status != "calling" or row.locked_by != token:
        return None
    attempts, status, due = _after(row.attempts, result, now, counted, max_attempts, retry_in)
    changes = {"status": status, "attempts": attempts, "last_result": result,
               "next_attempt_at": due, "locked_by": "", "locked_until": 0, **extra}
    txn.execute(f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in changes)} "
                "WHERE id = ? AND locked_by = ?", (*changes.values(), row_id, token))
    return row if txn.rowcount else None


def _finish_phone(txn: Txn, phone_id: int, token: str, result: str, now: int, *,
                  max_attempts: int = 1, retry_in: int = 0, counted: bool = True,
                  call_id: str = "", detail: str = "") -> CallblastResult | None:
    """:meth:`Outbound.finish_attempt` in ``txn``."""
    phone = _settle(txn, PHONES, phone_id, token, result, now, counted, max_attempts,
                    retry_in, {"last_attempt_at": now})
    if phone is None:
        return None
    new_id = RESULT_ROWS.insert(txn, {
        "user_id": phone.user_id, "item_id": phone.item_id, "phone": phone.phone,
        "result": result, "call_id": call_id, "duration": 0, "created_at": now,
        "detail": detail[:255]})
    left = txn.scalar("SELECT COUNT(*) FROM callblast_phones WHERE item_id = ? AND "
                      "status IN ('pending', 'calling')", (phone.item_id,))
    if not left:
        txn.execute("UPDATE callblast_items SET status = 'done', updated_at = ? "
                    "WHERE id = ? AND status = 'active'", (now, phone.item_id))
    return RESULT_ROWS.get(txn, new_id, owner=ANY_OWNER)


@dataclass(frozen=True)
class DueItem:
    """A callblast item with phones to call now, and what the dialer needs of its tenant."""

    item: CallblastItem
    access_code: str
    voice_number: str
    timezone: str
    balance: int
    group_id: int
    tariff_id: int
    dialout_context: str
    max_items: int
    max_phones: int
    extension_type: str
    item_rank: int  # its place among the items of its extension (0 first)


@dataclass(frozen=True)
class DueCallback:
    request: CallbackRequest
    access_code: str
    voice_number: str
    dialout_context: str
    extension_settings: str


@dataclass(frozen=True)
class Answered:
    """An answered callblast attempt: what the call plays and where its result went."""

    phone: CallblastPhone
    item: CallblastItem
    result: CallblastResult


class Outbound:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    # ------------------------------------------------------------------ callblast

    async def due_items(self, server_id: str, now: int) -> list[DueItem]:
        """Active items of active tenants served by ``server_id`` with a phone due."""
        def due(txn: Txn) -> list[DueItem]:
            rows = txn.all(
                f"SELECT {', '.join('i.' + c for c in ITEMS.columns)},"
                " u.access_code, u.voice_number, u.timezone, u.balance,"
                " g.id AS group_id, g.tariff_id, g.dialout_context,"
                " g.max_callblast_items, g.max_callblast_phones, e.type AS extension_type,"
                " (SELECT COUNT(*) FROM callblast_items o WHERE o.extension_id = i.extension_id"
                " AND o.user_id = i.user_id AND (o.position < i.position OR"
                " (o.position = i.position AND o.id < i.id))) AS item_rank"
                " FROM callblast_items i"
                " JOIN users u ON u.id = i.user_id"
                " JOIN user_groups g ON g.id = u.group_id"
                " JOIN extensions e ON e.id = i.extension_id AND e.user_id = i.user_id"
                " WHERE g.server_id = ? AND i.status = 'active' AND u.status = 'active'"
                " AND EXISTS (SELECT 1 FROM callblast_phones p WHERE p.item_id = i.id AND "
                f"{_due('p.')}) ORDER BY i.position, i.id", (server_id, now, now))
            return [DueItem(
                ITEMS.to_record(row), row["access_code"], row["voice_number"], row["timezone"],
                int(row["balance"]), int(row["group_id"]), int(row["tariff_id"]),
                row["dialout_context"], int(row["max_callblast_items"]),
                int(row["max_callblast_phones"]), row["extension_type"], int(row["item_rank"]))
                for row in rows]
        return await self._db.run_interaction(due)

    async def claim_phone(self, item_id: int, token: str, now: int, until: int,
                          max_phones: int = -1) -> CallblastPhone | None:
        """Take the next due phone of an active item for one attempt (None: none left, or
        the item is no longer active).  Only the first ``max_phones`` phones of the item (by
        id) are ever called (< 0: all)."""
        def claim(txn: Txn) -> CallblastPhone | None:
            bound = ""
            params: tuple[Any, ...] = ()
            if max_phones >= 0:
                if max_phones == 0:
                    return None
                last = txn.scalar(f"SELECT id FROM callblast_phones WHERE item_id = ? "
                                  f"ORDER BY id LIMIT 1 OFFSET {int(max_phones) - 1}",
                                  (item_id,))
                if last is not None:
                    bound, params = " AND id <= ?", (last,)
            for _ in range(5):  # another process may take the one we saw
                phone_id = txn.scalar(
                    f"SELECT id FROM callblast_phones WHERE item_id = ? AND {_DUE}{bound} "
                    "ORDER BY next_attempt_at, id LIMIT 1", (item_id, now, now, *params))
                if phone_id is None:
                    return None
                # Only while its list is active: a list paused since the run began (its
                # tenant's Pause) places no further call; the item's row is read locking.
                txn.execute(f"UPDATE callblast_phones SET status = 'calling', locked_by = ?, "
                            f"locked_until = ? WHERE id = ? AND {_DUE} AND EXISTS (SELECT 1 "
                            "FROM callblast_items i WHERE i.id = ? AND i.status = 'active')",
                            (token, until, phone_id, now, now, item_id))
                if txn.rowcount:
                    return PHONES.get(txn, phone_id, owner=ANY_OWNER)
            return None
        return await self._db.run_interaction(claim)

    async def finish_attempt(self, phone_id: int, token: str, result: str, now: int, *,
                             max_attempts: int = 1, retry_in: int = 0, counted: bool = True,
                             call_id: str = "", detail: str = "") -> CallblastResult | None:
        """The outcome of the attempt ``token``: a result row, and the phone done, failed,
        or due again in ``retry_in`` s while it has had fewer than ``max_attempts``
        (``counted=False``: this attempt does not count, e.g. Asterisk restarted).  None,
        changing nothing, when ``token`` is not the phone's current attempt."""
        return await self._db.run_interaction(
            _finish_phone, phone_id, token, result, now, max_attempts=max_attempts,
            retry_in=retry_in, counted=counted, call_id=call_id, detail=detail)

    async def answer_attempt(self, phone_id: int, token: str, result: str, now: int,
                             call_id: str) -> Answered | None:
        """The FastAGI session of an answered callblast call: its result (answered or
        machine) is kept at once, so the phone is never called again whatever happens next.
        None when ``token`` is not the phone's current attempt."""
        def answer(txn: Txn) -> Answered | None:
            kept = _finish_phone(txn, phone_id, token, result, now, call_id=call_id)
            if kept is None:
                return None
            phone = PHONES.get(txn, phone_id, owner=ANY_OWNER)
            item = ITEMS.get(txn, kept.item_id, owner=ANY_OWNER)
            if phone is None or item is None:
                return None
            return Answered(phone, item, kept)
        return await self._db.run_interaction(answer)

    async def set_duration(self, result_id: int, duration: int) -> None:
        await self._db.run_interaction(RESULT_ROWS.update, result_id,
                                       {"duration": max(0, int(duration))}, owner=ANY_OWNER)

    # ------------------------------------------------------------------ callback

    async def due_callbacks(self, server_id: str, now: int, limit: int) -> list[DueCallback]:
        """Pending callback requests of active tenants served by ``server_id``, oldest
        first."""
        def due(txn: Txn) -> list[DueCallback]:
            rows = txn.all(
                f"SELECT {', '.join('r.' + c for c in CALLBACKS.columns)},"
                " u.access_code, u.voice_number, g.dialout_context,"
                " COALESCE(e.settings, '{}') AS ext_settings"
                " FROM callback_requests r"
                " JOIN users u ON u.id = r.user_id"
                " JOIN user_groups g ON g.id = u.group_id"
                " LEFT JOIN extensions e ON e.id = r.extension_id AND e.user_id = r.user_id"
                f" WHERE g.server_id = ? AND u.status = 'active' AND {_due('r.')}"
                f" ORDER BY r.next_attempt_at, r.id LIMIT {int(limit)}", (server_id, now, now))
            return [DueCallback(CALLBACKS.to_record(row), row["access_code"],
                                row["voice_number"], row["dialout_context"],
                                row["ext_settings"]) for row in rows]
        return await self._db.run_interaction(due)

    async def claim_callback(self, request_id: int, token: str, now: int, until: int) -> bool:
        def claim(txn: Txn) -> bool:
            txn.execute(f"UPDATE callback_requests SET status = 'calling', locked_by = ?, "
                        f"locked_until = ?, updated_at = ? WHERE id = ? AND {_DUE}",
                        (token, until, now, request_id, now, now))
            return bool(txn.rowcount)
        return await self._db.run_interaction(claim)

    async def finish_callback(self, request_id: int, token: str, result: str, now: int, *,
                              max_attempts: int = 1, retry_in: int = 0, counted: bool = True,
                              call_id: str = "") -> CallbackRequest | None:
        """Like :meth:`finish_attempt`, for a callback request (its status: ``done`` once
        answered, ``failed`` after the last attempt, else ``pending`` again)."""
        def finish(txn: Txn) -> CallbackRequest | None:
            extra = {"updated_at": now, **({"call_id": call_id} if call_id else {})}
            if _settle(txn, CALLBACKS, request_id, token, result, now, counted, max_attempts,
                       retry_in, extra) is None:
                return None
            return CALLBACKS.get(txn, request_id, owner=ANY_OWNER)
        return await self._db.run_interaction(finish)
