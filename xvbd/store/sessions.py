"""Web sessions: server-side rows keyed by a random id (the cookie holds only the id), each
with its CSRF token; they end at ``expires_at``, slide while used, and are swept away."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

KINDS = ("admin", "partner", "user")


@dataclass(frozen=True)
class WebSession:
    id: str
    kind: str  # admin | partner | user
    principal: str  # admin login, partner id, user id
    csrf_token: str
    created_at: int
    expires_at: int


SESSIONS = Table("web_sessions", WebSession)


class Sessions:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def open(self, kind: str, principal: str, lifetime: int) -> WebSession:
        if kind not in KINDS:
            raise ValueError(f"a session is one of {KINDS}, got {kind!r}")
        now = self._now()
        session = WebSession(secrets.token_urlsafe(32), kind, principal,
                             secrets.token_urlsafe(32), now, now + lifetime)

        def put(txn: Txn) -> None:
            SESSIONS.insert(txn, session.__dict__)
        await self._db.run_interaction(put)
        return session

    async def get(self, session_id: str, lifetime: int) -> WebSession | None:
        """The live session with this id, its end moved ``lifetime`` s ahead (at most once a
        minute: a page view is not a write); None when unknown or over."""
        if not session_id or len(session_id) > 64:
            return None
        now = self._now()

        def read(txn: Txn) -> WebSession | None:
            session = SESSIONS.get(txn, session_id)
            if session is None or session.expires_at <= now:
                return None
            if session.expires_at - now < lifetime - 60:
                SESSIONS.update(txn, session_id, {"expires_at": now + lifetime})
            return session
        return await self._db.run_interaction(read)

    async def close(self, session_id: str) -> None:
        await self._db.run_interaction(SESSIONS.delete, session_id)

    async def close_all(self, kind: str, principal: str) -> int:
        """End every session of one person (their password changed, they were locked)."""
        def close(txn: Txn) -> int:
            txn.execute("DELETE FROM web_sessions WHERE kind = ? AND principal = ?",
                        (kind, principal))
            return txn.rowcount
        return await self._db.run_interaction(close)

    async def sweep(self) -> int:
        now = self._now()

        def sweep(txn: Txn) -> int:
            txn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
            return txn.rowcount
        return await self._db.run_interaction(sweep)
