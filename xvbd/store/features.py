"""Lists kept by extension types: company directory entries, votes, stored variables,
callback requests and Dtmf2Email digits.  Every function is scoped to its owner."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xvbd.store.accounts import NotFound, _unique
from xvbd.store.db import Database, Txn
from xvbd.store.outbox import Draft, queue_in
from xvbd.store.table import Table


@dataclass(frozen=True)
class DirectoryEntry:
    id: int
    user_id: int
    extension_id: int
    number: str
    name: str
    name_keys: str
    phones: str
    recording: str
    position: int

    def phone_list(self) -> list[str]:
        return list(json.loads(self.phones))


@dataclass(frozen=True)
class Vote:
    id: int
    user_id: int
    extension_id: int
    caller_id: str
    choice: str
    created_at: int


@dataclass(frozen=True)
class CallbackRequest:
    id: int
    user_id: int
    extension_id: int | None
    phone: str
    target_path: str
    status: str
    attempts: int
    last_result: str
    created_at: int
    updated_at: int
    locked_by: str = ""
    locked_until: int = 0
    next_attempt_at: int = 0
    call_id: str = ""


@dataclass(frozen=True)
class DtmfMessage:
    id: int
    user_id: int
    extension_id: int | None
    caller_id: str
    digits: str
    created_at: int
    emailed_at: int


DIRECTORY = Table("directory_entries", DirectoryEntry, owner="user_id", audit=True)
VOTES = Table("votes", Vote, owner="user_id")
CALLBACKS = Table("callback_requests", CallbackRequest, owner="user_id")
DTMF = Table("dtmf_messages", DtmfMessage, owner="user_id")

_KEYPAD = {c: d for d, letters in {"2": "abcабвг", "3": "defдеёжз", "4": "ghiийкл",
                                   "5": "jklмноп", "6": "mnoрст", "7": "pqrsуфхц",
                                   "8": "tuvчшщъ", "9": "wxyzыьэюя"}.items() for c in letters}


def keypad_digits(name: str) -> str:
    """The phone-keypad digits of a name's letters ('Ivanov' -> '482668')."""
    return "".join(_KEYPAD.get(c, "") for c in name.lower())


def _owns_extension(txn: Txn, user_id: int, extension_id: int) -> None:
    if not txn.scalar("SELECT COUNT(*) FROM extensions WHERE id = ? AND user_id = ?",
                      (extension_id, user_id)):
        raise NotFound(f"no extension {extension_id} for this user")


class Features:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    # -------------------------------------------------------------- company directory

    async def add_directory_entry(self, user_id: int, extension_id: int, number: str,
                                  name: str, phones: list[str], recording: str = ""
                                  ) -> DirectoryEntry:
        def add(txn: Txn) -> DirectoryEntry:
            _owns_extension(txn, user_id, extension_id)
            new_id = _unique(txn, lambda: DIRECTORY.insert(txn, {
                "user_id": user_id, "extension_id": extension_id, "number": number,
                "name": name, "name_keys": keypad_digits(name), "phones": json.dumps(phones),
                "recording": recording, "position": 0}), f"employee number {number}")
            return DIRECTORY.get(txn, new_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(add)

    async def directory(self, user_id: int, extension_id: int) -> list[DirectoryEntry]:
        return await self._db.run_interaction(DIRECTORY.select, "extension_id = ?",
                                              (extension_id,), owner=user_id, order="number")

    async def directory_entry(self, user_id: int, entry_id: int) -> DirectoryEntry | None:
        return await self._db.run_interaction(DIRECTORY.get, entry_id, owner=user_id)

    async def update_directory_entry(self, user_id: int, entry_id: int, **changes: Any) -> bool:
        if "phones" in changes:
            changes["phones"] = json.dumps(list(changes["phones"]))
        if "name" in changes:
            changes["name_keys"] = keypad_digits(changes["name"])
        return await self._db.run_interaction(DIRECTORY.update, entry_id, changes, owner=user_id)

    async def delete_directory_entry(self, user_id: int, entry_id: int) -> bool:
        return await self._db.run_interaction(DIRECTORY.delete, entry_id, owner=user_id)

    # -------------------------------------------------------------- voting

    async def vote(self, user_id: int, extension_id: int, caller_id: str, choice: str
                   ) -> tuple[Vote, bool]:
        """Record a caller's vote; a repeat caller keeps their first vote.  Returns the vote
        that stands and whether it is new."""
        values: dict[str, Any] = {"user_id": user_id, "extension_id": extension_id,
                                  "caller_id": caller_id, "choice": choice,
                                  "created_at": self._now()}

        def vote(txn: Txn) -> tuple[Vote, bool]:
            _owns_extension(txn, user_id, extension_id)
            txn.execute(txn.dialect.insert_ignore("votes", tuple(values)),
                        tuple(values.values()))
            if txn.rowcount > 0:
                return Vote(id=txn.lastrowid, **values), True
            rows = VOTES.select(txn, "extension_id = ? AND caller_id = ?",
                                (extension_id, caller_id), owner=user_id)
            return rows[0], False
        return await self._db.run_interaction(vote)

    async def vote_of(self, user_id: int, extension_id: int, caller_id: str) -> Vote | None:
        rows = await self._db.run_interaction(VOTES.select, "extension_id = ? AND caller_id = ?",
                                              (extension_id, caller_id), owner=user_id)
        return rows[0] if rows else None

    async def vote_results(self, user_id: int, extension_id: int) -> dict[str, int]:
        def read(txn: Txn) -> dict[str, int]:
            rows = txn.all("SELECT choice, COUNT(*) AS n FROM votes WHERE user_id = ? AND "
                           "extension_id = ? GROUP BY choice ORDER BY choice",
                           (user_id, extension_id))
            return {r["choice"]: int(r["n"]) for r in rows}
        return await self._db.run_interaction(read)

    async def clear_votes(self, user_id: int, extension_id: int) -> int:
        def clear(txn: Txn) -> int:
            txn.execute("DELETE FROM votes WHERE user_id = ? AND extension_id = ?",
                        (user_id, extension_id))
            return txn.rowcount
        return await self._db.run_interaction(clear)

    # -------------------------------------------------------------- stored variables

    async def set_var(self, user_id: int, name: str, value: str) -> None:
        now = self._now()

        def put(txn: Txn) -> None:
            txn.execute(txn.dialect.upsert("stored_vars", ("user_id", "name", "value",
                                                           "updated_at"), ("user_id", "name")),
                        (user_id, name, value, now))
        await self._db.run_interaction(put)

    async def get_var(self, user_id: int, name: str) -> str | None:
        def get(txn: Txn) -> str | None:
            return txn.scalar("SELECT value FROM stored_vars WHERE user_id = ? AND name = ?",
                              (user_id, name))
        return await self._db.run_interaction(get)

    async def all_vars(self, user_id: int) -> dict[str, str]:
        def read(txn: Txn) -> dict[str, str]:
            return {r["name"]: r["value"] for r in txn.all(
                "SELECT name, value FROM stored_vars WHERE user_id = ? ORDER BY name",
                (user_id,))}
        return await self._db.run_interaction(read)

    async def delete_var(self, user_id: int, name: str) -> bool:
        def delete(txn: Txn) -> bool:
            txn.execute("DELETE FROM stored_vars WHERE user_id = ? AND name = ?",
                        (user_id, name))
            return txn.rowcount > 0
        return await self._db.run_interaction(delete)

    # -------------------------------------------------------------- callback requests

    async def request_callback(self, user_id: int, phone: str, target_path: str = "",
                               extension_id: int | None = None) -> CallbackRequest:
        now = self._now()
        values: dict[str, Any] = {
            "user_id": user_id, "extension_id": extension_id, "phone": phone,
            "target_path": target_path, "status": "pending", "attempts": 0, "last_result": "",
            "created_at": now, "updated_at": now}

        def add(txn: Txn) -> CallbackRequest:
            if extension_id is not None:
                _owns_extension(txn, user_id, extension_id)
            return CallbackRequest(id=CALLBACKS.insert(txn, values), **values)
        return await self._db.run_interaction(add)

    async def callbacks(self, user_id: int, status: str | None = None) -> list[CallbackRequest]:
        if status is None:
            return await self._db.run_interaction(CALLBACKS.select, owner=user_id,
                                                  order="id DESC")
        return await self._db.run_interaction(CALLBACKS.select, "status = ?", (status,),
                                              owner=user_id, order="id DESC")

    async def update_callback(self, user_id: int, request_id: int, **changes: Any) -> bool:
        return await self._db.run_interaction(CALLBACKS.update, request_id,
                                              {**changes, "updated_at": self._now()},
                                              owner=user_id)

    async def delete_callback(self, user_id: int, request_id: int) -> bool:
        return await self._db.run_interaction(CALLBACKS.delete, request_id, owner=user_id)

    # -------------------------------------------------------------- Dtmf2Email

    async def add_dtmf(self, user_id: int, digits: str, caller_id: str = "",
                       extension_id: int | None = None, mail: Draft | None = None
                       ) -> DtmfMessage:
        """Keep the digits; ``mail``, their e-mail, is queued in the same transaction."""
        values: dict[str, Any] = {"user_id": user_id, "extension_id": extension_id,
                                  "caller_id": caller_id, "digits": digits,
                                  "created_at": self._now(), "emailed_at": 0}

        def add(txn: Txn) -> DtmfMessage:
            if extension_id is not None:
                _owns_extension(txn, user_id, extension_id)
            kept = DtmfMessage(id=DTMF.insert(txn, values), **values)
            if mail is not None:
                queue_in(txn, mail, kept.id)
            return kept
        return await self._db.run_interaction(add)

    async def dtmf_messages(self, user_id: int, limit: int = 100) -> list[DtmfMessage]:
        return await self._db.run_interaction(DTMF.select, owner=user_id, order="id DESC",
                                              limit=limit)

    async def mark_dtmf_emailed(self, user_id: int, message_id: int) -> bool:
        return await self._db.run_interaction(DTMF.update, message_id,
                                              {"emailed_at": self._now()}, owner=user_id)

    async def delete_dtmf(self, user_id: int, message_id: int) -> bool:
        return await self._db.run_interaction(DTMF.delete, message_id, owner=user_id)
