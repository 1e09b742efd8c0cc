"""Web sessions: server-side rows keyed by a random id (the cookie holds only the id), each
with its CSRF token; they end at ``expires_at``, slide while used, and are swept away.  And
the one-time links that let a tenant set a new web password (:class:`PasswordResets`)."""

from __future__ import annotations

import hashlib
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

#: How long a web password reset link works (seconds).
RESET_LIFETIME = 24 * 3600


@dataclass(frozen=True)
class PasswordReset:
    user_id: int
    token_hash: str
    issued_by: str
    created_at: int
    expires_at: int


RESETS = Table("web_password_resets", PasswordReset, key="user_id", owner="user_id")


def _token_hash(token: str) -> str:
    # the token is 256 random bits: a plain digest keeps it from the database's readers
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordResets:
    """One-time, expiring links for a tenant to set a new web password."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def issue(self, user_id: int, issued_by: str, lifetime: int = RESET_LIFETIME
                    ) -> tuple[str, int]:
        """A new link's token (shown once; only its hash is kept) and when it ends; the
        user's earlier link stops working."""
        token = secrets.token_urlsafe(32)
        now = self._now()

        def put(txn: Txn) -> None:
            RESETS.delete(txn, user_id, owner=user_id)
            RESETS.insert(txn, {"user_id": user_id, "token_hash": _token_hash(token),
                                "issued_by": issued_by, "created_at": now,
                                "expires_at": now + lifetime})
        await self._db.run_interaction(put)
        return token, now + lifetime

    async def valid(self, token: str) -> int | None:
        """The user whose live link this is; None when unknown, used or over."""
        if not token or len(token) > 64:
            return None
        now = self._now()

        def read(txn: Txn) -> int | None:
            row = txn.one("SELECT user_id, expires_at FROM web_password_resets "
                          "WHERE token_hash = ?", (_token_hash(token),))
            return int(row["user_id"]) if row and int(row["expires_at"]) > now else None
        return await self._db.run_interaction(read)

    async def spend(self, token: str) -> int | None:
        """Use the link once: the user it was for (and it is gone), or None."""
        now = self._now()

        def take(txn: Txn) -> int | None:
            row = txn.one("SELECT user_id, expires_at FROM web_password_resets "
                          "WHERE token_hash = ?", (_token_hash(token),))
            if row is None:
                return None
            txn.execute("DELETE FROM web_password_resets WHERE token_hash = ?",
                        (_token_hash(token),))
            spent_here = txn.rowcount == 1  # of two at once, one spends it
            return int(row["user_id"]) if spent_here and int(row["expires_at"]) > now \
                else None
        return await self._db.run_interaction(take)


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
