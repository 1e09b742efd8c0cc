"""The mail outbox: e-mail queued in the transaction of what it reports, claimed by one
sender at a time, marked sent after the relay's 250, or kept as a dead letter.

A row is claimed with one conditional UPDATE (``claimed_by``, ``claimed_until``): of two
xvbd sharing a database, one sends it.  A sender that dies holding a claim leaves the row
to be claimed again once ``claimed_until`` has passed.  Tenants' choices for their mail
(the recording as WAV or MP3, the daily statistics) are ``mail_prefs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from xvbd.store.db import Database, Txn
from xvbd.store.table import ANY_OWNER, Table

#: The formats a tenant may have the recording attached as.
ATTACH_FORMATS = ("wav", "mp3")

#: Which table a kind of mail marks ``emailed_at`` in once it is sent.
_REPORTED = {"voicemail": "messages", "dtmf": "dtmf_messages"}


@dataclass(frozen=True)
class OutboxMail:
    id: int
    user_id: int
    kind: str
    ref_id: int | None
    recipients: str
    subject: str
    body: str
    notice: str
    attachment: str
    attach_format: str
    attach_as: str
    attach_limit: int
    message_id: str
    status: str
    tries: int
    next_at: int
    claimed_by: str
    claimed_until: int
    last_error: str
    created_at: int
    sent_at: int

    @property
    def addresses(self) -> list[str]:
        return [a for a in self.recipients.split(",") if a]


@dataclass(frozen=True)
class MailPrefs:
    user_id: int
    attach_as: str = "wav"
    daily_stats: bool = False
    stats_day: str = ""


OUTBOX = Table("mail_outbox", OutboxMail, owner="user_id", audit=True)
PREFS = Table("mail_prefs", MailPrefs, key="user_id", owner="user_id", audit=True)


class Draft(Protocol):
    """A mail waiting for the id of what it reports: ``row`` gives the outbox row's values
    (called inside the transaction that writes the thing, on the pool's thread)."""

    @property
    def user_id(self) -> int: ...

    def row(self, ref_id: int | None, prefs: MailPrefs) -> Mapping[str, Any] | None: ...


def prefs_in(txn: Txn, user_id: int) -> MailPrefs:
    return PREFS.get(txn, user_id, owner=user_id) or MailPrefs(user_id)


def queue_in(txn: Txn, draft: Draft, ref_id: int | None) -> int | None:
    """Queue ``draft``'s mail in the transaction ``txn``; the outbox id (None: the draft
    has nobody to send to)."""
    values = draft.row(ref_id, prefs_in(txn, draft.user_id))
    if values is None:
        return None
    return OUTBOX.insert(txn, {"ref_id": ref_id, "status": "queued", "tries": 0,
                               **values})


class Outbox:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def queue(self, draft: Draft, ref_id: int | None = None) -> int | None:
        """Queue a mail in a transaction of its own."""
        return await self._db.run_interaction(queue_in, draft, ref_id)

    async def claim(self, worker: str, now: int, until: int, limit: int) -> list[OutboxMail]:
        """Take up to ``limit`` mails due at ``now`` for ``worker`` until ``until``; each
        claim counts as a try."""
        def claim(txn: Txn) -> list[OutboxMail]:
            taken: list[OutboxMail] = []
            for _ in range(3):  # another sender may take some of those we saw
                ids = [r["id"] for r in txn.all(
                    "SELECT id FROM mail_outbox WHERE status = 'queued' AND next_at <= ? "
                    "AND claimed_until <= ? ORDER BY next_at, id "
                    f"LIMIT {int(limit - len(taken))}", (now, now))]
                if not ids:
                    break
                for mail_id in ids:
                    txn.execute("UPDATE mail_outbox SET claimed_by = ?, claimed_until = ?, "
                                "tries = tries + 1 WHERE id = ? AND status = 'queued' "
                                "AND next_at <= ? AND claimed_until <= ?",
                                (worker, until, mail_id, now, now))
                    if txn.rowcount:
                        mail = OUTBOX.get(txn, mail_id, owner=ANY_OWNER)
                        if mail is not None:
                            taken.append(mail)
                if len(taken) >= limit:
                    break
            return taken
        return await self._db.run_interaction(claim)

    async def sent(self, mail: OutboxMail, worker: str, now: int, note: str = "") -> bool:
        """The relay took ``mail`` (its 250 for the DATA): sent, and what it reports marked
        e-mailed.  False when ``worker`` no longer holds the claim."""
        def sent(txn: Txn) -> bool:
            txn.execute("UPDATE mail_outbox SET status = 'sent', sent_at = ?, claimed_by = '', "
                        "claimed_until = 0, last_error = ? WHERE id = ? AND claimed_by = ? "
                        "AND status = 'queued'", (now, note[:1000], mail.id, worker))
            if not txn.rowcount:
                return False
            table = _REPORTED.get(mail.kind)
            if table and mail.ref_id is not None:
                txn.execute(f"UPDATE {table} SET emailed_at = ? WHERE id = ? AND user_id = ?",
                            (now, mail.ref_id, mail.user_id))
            return True
        return await self._db.run_interaction(sent)

    async def failed(self, mail: OutboxMail, worker: str, error: str,
                     retry_at: int | None) -> bool:
        """A try of ``mail`` failed: due again at ``retry_at``, or a dead letter (None).
        False when ``worker`` no longer holds the claim."""
        status, next_at = ("queued", retry_at) if retry_at is not None else ("dead", 0)

        def failed(txn: Txn) -> bool:
            txn.execute("UPDATE mail_outbox SET status = ?, next_at = ?, claimed_by = '', "
                        "claimed_until = 0, last_error = ? WHERE id = ? AND claimed_by = ? "
                        "AND status = 'queued'",
                        (status, next_at, error[:1000], mail.id, worker))
            return bool(txn.rowcount)
        return await self._db.run_interaction(failed)

    async def get(self, mail_id: int, *, owner: Any) -> OutboxMail | None:
        return await self._db.run_interaction(OUTBOX.get, mail_id, owner=owner)

    async def for_user(self, user_id: int, limit: int = 50) -> list[OutboxMail]:
        return await self._db.run_interaction(OUTBOX.select, owner=user_id, order="id DESC",
                                              limit=limit)

    async def dead_letters(self, limit: int = 200) -> list[OutboxMail]:
        """Every tenant's dead letters (the operator's view), newest first."""
        return await self._db.run_interaction(OUTBOX.select, "status = 'dead'", (),
                                              owner=ANY_OWNER, order="id DESC", limit=limit)

    async def resend(self, mail_id: int) -> OutboxMail | None:
        """A dead letter queued again with its tries counted anew (journaled on behalf of
        the acting person); None when ``mail_id`` is not a dead letter."""
        now = self._now()

        def resend(txn: Txn) -> OutboxMail | None:
            mail = OUTBOX.get(txn, mail_id, owner=ANY_OWNER)
            if mail is None or mail.status != "dead":
                return None
            OUTBOX.update(txn, mail_id, {"status": "queued", "tries": 0, "next_at": now,
                                         "claimed_until": 0}, owner=ANY_OWNER)
            return OUTBOX.get(txn, mail_id, owner=ANY_OWNER)
        return await self._db.run_interaction(resend)

    async def counts(self) -> dict[str, int]:
        """Mails waiting and dead letters, across tenants."""
        def counts(txn: Txn) -> dict[str, int]:
            out = {"queued": 0, "dead": 0}
            for row in txn.all("SELECT status, COUNT(*) AS n FROM mail_outbox "
                               "WHERE status IN ('queued', 'dead') GROUP BY status"):
                out[str(row["status"])] = int(row["n"])
            return out
        return await self._db.run_interaction(counts)

    # ------------------------------------------------------------------ prefs

    async def prefs(self, user_id: int) -> MailPrefs:
        return await self._db.run_interaction(prefs_in, user_id)

    async def set_prefs(self, user_id: int, *, attach_as: str, daily_stats: bool) -> None:
        if attach_as not in ATTACH_FORMATS:
            raise ValueError(f"attach_as is {' or '.join(ATTACH_FORMATS)}, got {attach_as!r}")

        def save(txn: Txn) -> None:
            changes = {"attach_as": attach_as, "daily_stats": int(daily_stats)}
            if PREFS.get(txn, user_id, owner=user_id) is None:
                PREFS.insert(txn, {"user_id": user_id, **changes})
            else:
                PREFS.update(txn, user_id, changes, owner=user_id)
        await self._db.run_interaction(save)
