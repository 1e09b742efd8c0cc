"""Who is changing things: every change made on behalf of a person is journaled by the
storage layer itself, in the transaction that makes it.

The web sets the acting person for a request (:func:`acting`); ``Database.run_interaction``
hands it to the transaction; an audited table's insert, update and delete then write one
journal row per changed field (old → new), so no page or API route can forget to.  Secret
columns (PINs, password hashes) are journaled as changed, never with their values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xvbd.store.db import Txn

ACTOR_KINDS = ("admin", "partner", "user", "system")
HIDDEN = "(changed)"


@dataclass(frozen=True)
class Actor:
    """A person acting: ``kind`` admin / partner / user / system, ``name`` their login (or
    the user's access code), ``address`` where they came from."""

    kind: str
    name: str
    address: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"an actor is one of {ACTOR_KINDS}, got {self.kind!r}")


ACTOR: ContextVar[Actor | None] = ContextVar("xvbd_actor", default=None)


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Changes made inside the block are the actor's (and journaled as theirs)."""
    token = ACTOR.set(actor)
    try:
        yield actor
    finally:
        ACTOR.reset(token)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def journal_rows(txn: Txn, actor: Actor, object_kind: str, object_id: Any,
                 old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                 user_id: int | None, secret: frozenset[str] = frozenset(),
                 ignore: frozenset[str] = frozenset()) -> None:
    """One journal row per field that changed between ``old`` and ``new`` (a creation has
    no ``old``, a deletion no ``new``: one row saying so)."""
    now = int(time.time())
    rows: list[tuple[str, str, str]] = []
    if old is None or new is None:
        rows.append(("", "" if old is None else "(deleted)",
                     "" if new is None else "(created)"))
    else:
        for name, value in new.items():
            if name in ignore or name not in old:
                continue
            before, after = _text(old[name]), _text(value)
            if before == after:
                continue
            if name in secret:
                before, after = (HIDDEN if before else ""), HIDDEN
            rows.append((name, before, after))
    if rows:
        txn.executemany("INSERT INTO journal (created_at, actor_kind, actor, address, user_id, "
                        "object_kind, object_id, field, old_value, new_value) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(now, actor.kind, actor.name[:64], actor.address[:64], user_id,
                          object_kind, str(object_id)[:64], field, before, after)
                         for field, before, after in rows])
