"""API keys: a tenant's credentials for the tenant API, each scoped (read or write) and
revocable.

A key is ``xvb_`` and 256 random bits, shown to the tenant once; the table keeps only its
SHA-256 (a fast digest is right for a long random key: there is nothing to guess a word
from) and its first :data:`PREFIX_LENGTH` characters, by which it is found and recognised.
Creating and revoking a key are journaled by the audited table; using one is not (it moves
``last_used_at``, at most once a :data:`USE_RESOLUTION`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from xvbd.store.db import Database, Txn
from xvbd.store.table import ANY_OWNER, Table

SCOPES = ("read", "write")
KEY_START = "xvb_"
PREFIX_LENGTH = 12  # "xvb_" and 8 characters of the random part (48 bits)
#: ``last_used_at`` is written when it is older than this (seconds): a request is no write.
USE_RESOLUTION = 60
#: Keys a tenant may hold that are not revoked.
MAX_LIVE_KEYS = 20


@dataclass(frozen=True)
class ApiKey:
    id: int
    user_id: int
    name: str
    scope: str  # read | write
    prefix: str
    key_hash: str
    created_at: int
    last_used_at: int
    revoked_at: int

    @property
    def revoked(self) -> bool:
        return bool(self.revoked_at)

    @property
    def writes(self) -> bool:
        return self.scope == "write"


API_KEYS = Table("api_keys", ApiKey, owner="user_id", audit=True,
                 secret=frozenset({"key_hash"}))


class TooManyKeys(Exception):
    """The tenant holds :data:`MAX_LIVE_KEYS` keys already."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(text: str) -> bool:
    return text.startswith(KEY_START) and PREFIX_LENGTH < len(text) <= 64


class ApiKeys:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def create(self, user_id: int, name: str, scope: str) -> tuple[ApiKey, str]:
        """A new key of ``user_id``'s: the stored record and the key itself (to show once;
        it is kept nowhere).  Journaled as the acting person's."""
        if scope not in SCOPES:
            raise ValueError(f"an API key's scope is one of {SCOPES}, got {scope!r}")
        key = KEY_START + secrets.token_urlsafe(32)
        values = {"user_id": user_id, "name": name[:64], "scope": scope,
                  "prefix": key[:PREFIX_LENGTH], "key_hash": key_hash(key),
                  "created_at": self._now(), "last_used_at": 0, "revoked_at": 0}

        def put(txn: Txn) -> ApiKey:
            live = API_KEYS.count(txn, "revoked_at = 0", owner=user_id)
            if live >= MAX_LIVE_KEYS:
                raise TooManyKeys(f"You have {live} API keys already; revoke one you no "
                                  "longer use first.")
            new_id = API_KEYS.insert(txn, values)
            made = API_KEYS.get(txn, new_id, owner=user_id)
            assert made is not None
            return made
        return await self._db.run_interaction(put), key

    async def of_user(self, user_id: int) -> list[ApiKey]:
        """The tenant's keys, revoked ones too, the newest first."""
        return await self._db.run_interaction(API_KEYS.select, owner=user_id,
                                              order="id DESC")

    async def revoke(self, user_id: int, key_id: int) -> ApiKey | None:
        """Revoke one of ``user_id``'s keys (journaled); None when they have no such key.
        A key revoked already stays as it was."""
        now = self._now()

        def revoke(txn: Txn) -> ApiKey | None:
            found = API_KEYS.get(txn, key_id, owner=user_id)
            if found is None:
                return None
            if not found.revoked:
                API_KEYS.update(txn, key_id, {"revoked_at": now}, owner=user_id)
            return API_KEYS.get(txn, key_id, owner=user_id)
        return await self._db.run_interaction(revoke)

    async def authenticate(self, key: str) -> ApiKey | None:
        """The stored key that ``key`` is (revoked or not), or None.  Found by its prefix,
        the hash compared in constant time; a live key's ``last_used_at`` moved when it is
        older than :data:`USE_RESOLUTION`."""
        if not looks_like_key(key):
            return None
        digest = key_hash(key)
        now = self._now()

        def find(txn: Txn) -> ApiKey | None:
            # whose key it is is what this finds out: the one read across tenants
            candidates = API_KEYS.select(txn, "prefix = ?", (key[:PREFIX_LENGTH],),
                                         owner=ANY_OWNER, limit=16)
            match = None
            for candidate in candidates:
                if hmac.compare_digest(candidate.key_hash.encode(), digest.encode()):
                    match = candidate
            if match is None or match.revoked or now - match.last_used_at < USE_RESOLUTION:
                return match
            # not through the audited update: a use is no change to journal
            txn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ? AND user_id = ?",
                        (now, match.id, match.user_id))
            return API_KEYS.get(txn, match.id, owner=match.user_id)
        return await self._db.run_interaction(find)
