"""CallBlast lists: items (message, schedule, retries) with their phones, and the result of
every attempt.  Tenant functions take the owner; the scheduler's claim is across tenants."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from xvbd.store.accounts import Conflict, NotFound, _unique
from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

PHONE_STATUSES = ("pending", "calling", "done", "failed")
#: A list is called while ``active``; ``paused`` by its tenant; ``done`` once no phone is
#: left to call (adding phones makes it active again).
ITEM_STATUSES = ("active", "paused", "done")
RESULTS = ("answered", "busy", "noanswer", "machine", "failed")


@dataclass(frozen=True)
class CallblastItem:
    id: int
    user_id: int
    extension_id: int
    name: str
    message: str
    settings: str
    status: str
    position: int
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class CallblastPhone:
    id: int
    item_id: int
    user_id: int
    phone: str
    status: str
    attempts: int
    last_result: str
    last_attempt_at: int
    next_attempt_at: int
    locked_by: str
    locked_until: int


@dataclass(frozen=True)
class CallblastResult:
    id: int
    user_id: int
    item_id: int
    phone: str
    result: str
    call_id: str
    duration: int
    created_at: int
    detail: str = ""


ITEMS = Table("callblast_items", CallblastItem, owner="user_id", audit=True)
PHONES = Table("callblast_phones", CallblastPhone, owner="user_id", audit=True)
RESULT_ROWS = Table("callblast_results", CallblastResult, owner="user_id")


class NotPausable(Conflict):
    """The list has called every phone: there is nothing to pause."""


class LimitReached(Conflict):
    """The tenant's group allows no more of these (its message names the limit)."""


def _group_limits(txn: Txn, user_id: int) -> tuple[int, int]:
    """The group's "Maximum Number of CallBlast items in ext" and "Maximum Phones for
    CallBlast item" (negative: no limit)."""
    row = txn.one("SELECT g.max_callblast_items, g.max_callblast_phones FROM users u "
                  "JOIN user_groups g ON g.id = u.group_id WHERE u.id = ?", (user_id,))
    if row is None:
        raise NotFound(f"no user {user_id}")
    return int(row["max_callblast_items"]), int(row["max_callblast_phones"])


def _check_phones(txn: Txn, user_id: int, item_id: int, adding: int, limit: int) -> None:
    if limit < 0:
        return
    have = PHONES.count(txn, "item_id = ?", (item_id,), owner=user_id)
    if have + adding > limit:
        raise LimitReached(f"a callblast item may have at most {limit} phone(s) in this "
                           f"plan; it has {have}")


class Callblast:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def create_item(self, user_id: int, extension_id: int, *, name: str = "",
                          message: str = "", settings: dict[str, Any] | None = None,
                          phones: tuple[str, ...] | list[str] = ()) -> CallblastItem:
        now = self._now()

        def create(txn: Txn) -> CallblastItem:
            kind = txn.scalar("SELECT type FROM extensions WHERE id = ? AND user_id = ?",
                              (extension_id, user_id))
            if kind is None:
                raise NotFound(f"no extension {extension_id} for this user")
            if kind != "CallBlast":
                raise Conflict(f"extension {extension_id} is a {kind} extension; callblast "
                               "items belong to a CallBlast extension")
            max_items, max_phones = _group_limits(txn, user_id)
            have = ITEMS.count(txn, "extension_id = ?", (extension_id,), owner=user_id)
            if max_items >= 0 and have >= max_items:
                raise LimitReached(f"a callblast extension may have at most {max_items} "
                                   f"item(s) in this plan; it has {have}")
            if max_phones >= 0 and len(set(phones)) > max_phones:
                raise LimitReached(f"a callblast item may have at most {max_phones} phone(s) "
                                   f"in this plan, got {len(set(phones))}")
            item_id = ITEMS.insert(txn, {
                "user_id": user_id, "extension_id": extension_id, "name": name,
                "message": message, "settings": json.dumps(settings or {}, sort_keys=True),
                "created_at": now, "updated_at": now})
            for phone in phones:
                row = {"item_id": item_id, "user_id": user_id, "phone": phone}
                _unique(txn, partial(PHONES.insert, txn, row),
                        f"phone {phone} in this item")
            return ITEMS.get(txn, item_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get_item(self, user_id: int, item_id: int) -> CallblastItem | None:
        return await self._db.run_interaction(ITEMS.get, item_id, owner=user_id)

    async def list_items(self, user_id: int, extension_id: int | None = None
                         ) -> list[CallblastItem]:
        if extension_id is None:
            return await self._db.run_interaction(ITEMS.select, owner=user_id,
                                                  order="position, id")
        return await self._db.run_interaction(ITEMS.select, "extension_id = ?", (extension_id,),
                                              owner=user_id, order="position, id")

    async def update_item(self, user_id: int, item_id: int, **changes: Any) -> bool:
        if "settings" in changes and not isinstance(changes["settings"], str):
            changes["settings"] = json.dumps(changes["settings"], sort_keys=True)
        return await self._db.run_interaction(ITEMS.update, item_id,
                                              {**changes, "updated_at": self._now()},
                                              owner=user_id)

    async def set_paused(self, user_id: int, item_id: int, paused: bool) -> CallblastItem:
        """Pause a list (no new call is placed for it; calls already ringing end as they
        will, and a phone they leave due waits) or resume it (called again within its
        hours; a list with no phone left to call becomes ``done``).  Pausing or resuming
        twice changes nothing.  The change is journaled as the acting user's.
        NotFound: not the user's list; NotPausable: a finished list cannot be paused."""
        def change(txn: Txn) -> CallblastItem:
            item = ITEMS.get(txn, item_id, owner=user_id)
            if item is None:
                raise NotFound(f"no callblast item {item_id} for this user")
            if paused:
                if item.status == "done":
                    raise NotPausable("this list has called all its phones; there is "
                                      "nothing to pause (add phones to call it again)")
                status = "paused"
            else:
                if item.status != "paused":
                    return item
                left = txn.scalar("SELECT COUNT(*) FROM callblast_phones WHERE item_id = ? "
                                  "AND user_id = ? AND status IN ('pending', 'calling')",
                                  (item_id, user_id))
                status = "active" if left else "done"
            if status != item.status:
                ITEMS.update(txn, item_id, {"status": status, "updated_at": self._now()},
                             owner=user_id)
            return ITEMS.get(txn, item_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(change)

    async def delete_item(self, user_id: int, item_id: int) -> bool:
        return await self._db.run_interaction(ITEMS.delete, item_id, owner=user_id)

    async def add_phone(self, user_id: int, item_id: int, phone: str) -> CallblastPhone:
        def add(txn: Txn) -> CallblastPhone:
            if ITEMS.get(txn, item_id, owner=user_id) is None:
                raise NotFound(f"no callblast item {item_id} for this user")
            _check_phones(txn, user_id, item_id, 1, _group_limits(txn, user_id)[1])
            new_id = _unique(txn, lambda: PHONES.insert(
                txn, {"item_id": item_id, "user_id": user_id, "phone": phone}),
                f"phone {phone} in this item")
            # A finished list called again for its new phone.
            txn.execute("UPDATE callblast_items SET status = 'active' WHERE id = ? AND "
                        "user_id = ? AND status = 'done'", (item_id, user_id))
            return PHONES.get(txn, new_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(add)

    async def add_phones(self, user_id: int, item_id: int, phones: list[str]
                         ) -> tuple[int, str]:
        """Add ``phones`` to a list in one transaction (one already there, or twice in
        ``phones``, is skipped): how many were added, and '' or the plan's limit that
        stopped the rest."""
        def add(txn: Txn) -> tuple[int, str]:
            if ITEMS.get(txn, item_id, owner=user_id) is None:
                raise NotFound(f"no callblast item {item_id} for this user")
            limit = _group_limits(txn, user_id)[1]
            there = {p.phone for p in PHONES.select(txn, "item_id = ?", (item_id,),
                                                     owner=user_id)}
            added, why = 0, ""
            for phone in dict.fromkeys(phones):
                if phone in there:
                    continue
                if 0 <= limit <= len(there):
                    why = (f"a callblast item may have at most {limit} phone(s) in this "
                           f"plan; it has {len(there)}")
                    break
                PHONES.insert(txn, {"item_id": item_id, "user_id": user_id, "phone": phone})
                there.add(phone)
                added += 1
            if added:  # a finished list is called again for its new phones
                txn.execute("UPDATE callblast_items SET status = 'active' WHERE id = ? AND "
                            "user_id = ? AND status = 'done'", (item_id, user_id))
            return added, why
        return await self._db.run_interaction(add)

    async def phones(self, user_id: int, item_id: int) -> list[CallblastPhone]:
        return await self._db.run_interaction(PHONES.select, "item_id = ?", (item_id,),
                                              owner=user_id)

    async def delete_phone(self, user_id: int, phone_id: int, item_id: int | None = None
                           ) -> bool:
        """Remove one of the user's phones (of list ``item_id`` when given); False when
        there is no such phone."""
        def delete(txn: Txn) -> bool:
            if item_id is not None and not PHONES.count(txn, "id = ? AND item_id = ?",
                                                        (phone_id, item_id), owner=user_id):
                return False
            return PHONES.delete(txn, phone_id, owner=user_id)
        return await self._db.run_interaction(delete)

    async def record_result(self, user_id: int, phone_id: int, result: str, *,
                            call_id: str = "", duration: int = 0,
                            next_attempt_at: int | None = None) -> CallblastResult:
        """Keep the outcome of one attempt; the phone is done, failed, or due again."""
        if result not in RESULTS:
            raise ValueError(f"result is one of {RESULTS}, got {result!r}")
        now = self._now()

        def record(txn: Txn) -> CallblastResult:
            phone = PHONES.get(txn, phone_id, owner=user_id)
            if phone is None:
                raise NotFound(f"no callblast phone {phone_id} for this user")
            if result in ("answered", "machine"):
                status = "done"
            elif next_attempt_at is None:
                status = "failed"
            else:
                status = "pending"
            PHONES.update(txn, phone_id, {
                "status": status, "attempts": phone.attempts + 1, "last_result": result,
                "last_attempt_at": now, "next_attempt_at": next_attempt_at or 0,
                "locked_by": "", "locked_until": 0}, owner=user_id)
            new_id = RESULT_ROWS.insert(txn, {
                "user_id": user_id, "item_id": phone.item_id, "phone": phone.phone,
                "result": result, "call_id": call_id, "duration": duration, "created_at": now})
            return RESULT_ROWS.get(txn, new_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(record)

    async def results(self, user_id: int, item_id: int | None = None,
                      limit: int = 100) -> list[CallblastResult]:
        if item_id is None:
            return await self._db.run_interaction(RESULT_ROWS.select, owner=user_id,
                                                  order="id DESC", limit=limit)
        return await self._db.run_interaction(RESULT_ROWS.select, "item_id = ?", (item_id,),
                                              owner=user_id, order="id DESC", limit=limit)
