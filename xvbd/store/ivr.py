"""A tenant's extension tree.

Each extension is one row: its DTMF ``path`` from the root ('' for the root, '9', '9*3'),
its type, and its settings as a JSON document that the type's own settings class checks.
Every function takes the owner (``user_id``) and reads or writes only that owner's rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xvbd.store.accounts import Conflict, NotFound, _unique
from xvbd.store.db import Database, Txn
from xvbd.store.table import STARTS_WITH, Table, starts_with

ROOT_PATH = ""
_NUMBER = re.compile(r"[0-9]{1,8}")


@dataclass(frozen=True)
class Extension:
    id: int
    user_id: int
    parent_id: int | None
    path: str
    type: str
    name: str
    settings: str
    position: int
    created_at: int
    updated_at: int

    @property
    def number(self) -> str:
        """The digits that select this extension in its parent ('' for the root)."""
        return self.path.rsplit("*", 1)[-1]

    @property
    def cdr_number(self) -> str:
        """EXT_NUMBER as the CDR shows it: '0' for the root, else the path."""
        return self.path or "0"

    def settings_dict(self) -> dict[str, Any]:
        value = json.loads(self.settings)
        return value if isinstance(value, dict) else {}


EXTENSIONS = Table("extensions", Extension, owner="user_id", audit=True)


def child_path(parent_path: str, number: str) -> str:
    return number if parent_path == ROOT_PATH else f"{parent_path}*{number}"


class IVR:
    """Repository of extension trees, always scoped to one tenant."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def create_root(self, user_id: int, type_name: str, settings: dict[str, Any],
                          name: str = "") -> Extension:
        return await self._create(user_id, None, ROOT_PATH, type_name, settings, name)

    async def add_child(self, user_id: int, parent_id: int, number: str, type_name: str,
                        settings: dict[str, Any], name: str = "") -> Extension:
        if not _NUMBER.fullmatch(number):
            raise ValueError(f"an extension number is 1-8 digits, got {number!r}")
        return await self._create(user_id, parent_id, number, type_name, settings, name)

    async def _create(self, user_id: int, parent_id: int | None, number: str, type_name: str,
                      settings: dict[str, Any], name: str) -> Extension:
        now = self._now()
        body = json.dumps(settings, ensure_ascii=False, sort_keys=True)

        def create(txn: Txn) -> Extension:
            if parent_id is None:
                path = ROOT_PATH
            else:
                parent = EXTENSIONS.get(txn, parent_id, owner=user_id)
                if parent is None:
                    raise NotFound(f"no extension {parent_id} for this user")
                path = child_path(parent.path, number)
            new_id = _unique(txn, lambda: EXTENSIONS.insert(txn, {
                "user_id": user_id, "parent_id": parent_id, "path": path, "type": type_name,
                "name": name, "settings": body, "position": int(number or 0),
                "created_at": now, "updated_at": now}),
                f"extension {path or '0'}")
            return EXTENSIONS.get(txn, new_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get(self, user_id: int, ext_id: int) -> Extension | None:
        return await self._db.run_interaction(EXTENSIONS.get, ext_id, owner=user_id)

    async def by_path(self, user_id: int, path: str) -> Extension | None:
        rows = await self._db.run_interaction(EXTENSIONS.select, "path = ?", (path,),
                                              owner=user_id)
        return rows[0] if rows else None

    async def root(self, user_id: int) -> Extension | None:
        return await self.by_path(user_id, ROOT_PATH)

    async def children(self, user_id: int, ext_id: int) -> list[Extension]:
        return await self._db.run_interaction(EXTENSIONS.select, "parent_id = ?", (ext_id,),
                                              owner=user_id, order="position, id")

    async def tree(self, user_id: int) -> list[Extension]:
        """Every extension of the user, parents before children."""
        rows = await self._db.run_interaction(EXTENSIONS.select, owner=user_id, order="path")
        return sorted(rows, key=lambda e: [int(p) for p in e.path.split("*")] if e.path else [])

    async def count(self, user_id: int, type_name: str | None = None) -> int:
        if type_name is None:
            return await self._db.run_interaction(EXTENSIONS.count, owner=user_id)
        return await self._db.run_interaction(EXTENSIONS.count, "type = ?", (type_name,),
                                              owner=user_id)

    async def update(self, user_id: int, ext_id: int, *, name: str | None = None,
                     type_name: str | None = None,
                     settings: dict[str, Any] | None = None) -> bool:
        changes: dict[str, Any] = {"updated_at": self._now()}
        if name is not None:
            changes["name"] = name
        if type_name is not None:
            changes["type"] = type_name
        if settings is not None:
            changes["settings"] = json.dumps(settings, ensure_ascii=False, sort_keys=True)
        return await self._db.run_interaction(EXTENSIONS.update, ext_id, changes, owner=user_id)

    async def renumber(self, user_id: int, ext_id: int, number: str) -> Extension:
        """Give an extension another number in its menu; its whole subtree follows."""
        return await self.move(user_id, ext_id, None, number)

    async def move(self, user_id: int, ext_id: int, parent_id: int | None,
                   number: str) -> Extension:
        """Put an extension under another menu (``parent_id``; None: the same one) with the
        number ``number``; its whole subtree follows.  An extension cannot go under itself."""
        if not _NUMBER.fullmatch(number):
            raise ValueError(f"an extension number is 1-8 digits, got {number!r}")

        def move(txn: Txn) -> Extension:
            ext = EXTENSIONS.get(txn, ext_id, owner=user_id)
            if ext is None:
                raise NotFound(f"no extension {ext_id} for this user")
            if ext.parent_id is None:
                raise ValueError("the root extension has no number and cannot move")
            new_parent_id = ext.parent_id if parent_id is None else parent_id
            parent = EXTENSIONS.get(txn, new_parent_id, owner=user_id)
            if parent is None:
                raise NotFound(f"no extension {new_parent_id} for this user")
            old = ext.path
            if parent.path == old or parent.path.startswith(old + "*"):
                raise ValueError("an extension cannot go under itself or its own children")
            new = child_path(parent.path, number)
            if new == old:
                return ext
            if EXTENSIONS.count(txn, "path = ?", (new,), owner=user_id):
                raise Conflict(f"extension {new} already exists")
            subtree = EXTENSIONS.select(txn, f"path = ? OR path {STARTS_WITH}",
                                        (old, starts_with(old + "*")), owner=user_id)
            for row in sorted(subtree, key=lambda e: -len(e.path)):
                EXTENSIONS.update(txn, row.id, {"path": new + row.path[len(old):],
                                                "updated_at": self._now()}, owner=user_id)
            EXTENSIONS.update(txn, ext_id, {"position": int(number),
                                            "parent_id": new_parent_id}, owner=user_id)
            return EXTENSIONS.get(txn, ext_id, owner=user_id)  # type: ignore[return-value]
        return await self._db.run_interaction(move)

    async def delete(self, user_id: int, ext_id: int) -> int:
        """Delete the extension and its whole subtree (each row journaled when someone is
        acting); returns how many extensions went, 0 when there was no such extension."""
        def delete(txn: Txn) -> int:
            ext = EXTENSIONS.get(txn, ext_id, owner=user_id)
            if ext is None:
                return 0
            subtree = (EXTENSIONS.select(txn, owner=user_id) if ext.path == ROOT_PATH else
                       EXTENSIONS.select(txn, f"path = ? OR path {STARTS_WITH}",
                                         (ext.path, starts_with(ext.path + "*")),
                                         owner=user_id))
            for row in sorted(subtree, key=lambda e: -len(e.path)):  # leaves first
                EXTENSIONS.delete(txn, row.id, owner=user_id)
            return len(subtree)
        return await self._db.run_interaction(delete)

