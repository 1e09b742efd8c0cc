"""The daily CDR statistics mail (opt-in per user: ``mail_prefs.daily_stats``).

Every hour (and at start) the users who asked for it and have an address are read; for
each whose yesterday (in their own time zone) is not yet reported, one transaction claims
the day (a conditional UPDATE of ``stats_day``: of two xvbd, one reports it), sums that
day's calls from the ``cdrs`` table, writes the text and queues the mail.  The work runs on
the database pool's threads, never on the reactor, at most ``[EMAIL] FORKS`` users at once
(the original forked that many processes for it; here they are concurrent transactions,
which on SQLite's single connection take turns).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults

from xvbd.logs import logger
from xvbd.mail.compose import MailSetup, TextDraft
from xvbd.store import Store
from xvbd.store.db import Txn
from xvbd.store.outbox import queue_in

log = logger("xvbd.mail")

HOUR = 3600.0


def yesterday(now: float, zone: str) -> tuple[str, int, int]:
    """Yesterday in ``zone``: (YYYY-MM-DD, its first second, the first second after it)."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    today = datetime.fromtimestamp(now, tz).date()
    day = today - timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime(today.year, today.month, today.day, tzinfo=tz)
    return day.isoformat(), int(start.timestamp()), int(end.timestamp())


def render(day: str, rows: list[dict[str, Any]]) -> str:
    """The statistics' text from the day's summary records grouped by call type."""
    calls = sum(int(r["calls"]) for r in rows)
    seconds = sum(int(r["seconds"] or 0) for r in rows)
    cost = sum(int(r["cost"] or 0) for r in rows)
    lines = [f"Your calls on {day}: {calls}, {seconds // 60} min {seconds % 60} s in all.", ""]
    for r in sorted(rows, key=lambda r: str(r["call_type"])):
        s = int(r["seconds"] or 0)
        lines.append(f"  {r['call_type'] or 'incoming'}: {int(r['calls'])} calls, "
                     f"{s // 60} min {s % 60} s")
    if cost:
        lines += ["", f"Cost: {cost / 10000:.2f}"]
    lines += ["", "You get this mail because daily statistics are on in your account; turn "
              "them off on the Account page."]
    return "\n".join(lines) + "\n"


def _report(txn: Txn, setup: MailSetup, user: dict[str, Any], now: int) -> int | None:
    day, start, end = yesterday(now, user["timezone"])
    txn.execute("UPDATE mail_prefs SET stats_day = ? WHERE user_id = ? AND daily_stats = 1 "
                "AND stats_day < ?", (day, user["user_id"], day))
    if not txn.rowcount:  # reported already (by another xvbd, or earlier)
        return None
    rows = txn.all("SELECT call_type, COUNT(*) AS calls, "
                   "SUM(stop_timestamp - start_timestamp) AS seconds, SUM(cost) AS cost "
                   "FROM cdrs WHERE subscr_id = ? AND type = 'XVB' AND start_timestamp >= ? "
                   "AND start_timestamp < ? GROUP BY call_type", (user["user_id"], start, end))
    draft = TextDraft(setup, int(user["user_id"]), str(user["email"]), "stats",
                      f"Calls of {day}", render(day, rows), now)
    return queue_in(txn, draft, None)


class DailyStats(TimerService):
    """Queues each day's statistics mail of the users who want one."""

    name = "mail-stats"

    def __init__(self, store: Store, setup: MailSetup, forks: int, clock: Any,
                 queued: Any = None, interval: float = HOUR) -> None:
        super().__init__(interval, self.run_once)
        self.clock = clock  # the TimerService's
        self._time = clock
        self.store = store
        self.setup = setup
        self.forks = DeferredSemaphore(forks)
        self.queued = queued or (lambda: None)

    async def run_once(self) -> int:
        """One pass: how many statistics mails were queued."""
        now = int(self._time.seconds())
        try:
            users = await self.store.db.run_interaction(lambda txn: txn.all(
                "SELECT p.user_id, p.stats_day, u.timezone, u.email FROM mail_prefs p "
                "JOIN users u ON u.id = p.user_id WHERE p.daily_stats = 1 AND u.email <> ''"))
        except Exception as exc:
            log.warn("daily statistics: the users could not be read ({why}); the next pass "
                     "in an hour tries again", why=str(exc))
            return 0
        due = [u for u in users if str(u["stats_day"]) < yesterday(now, u["timezone"])[0]]

        def one(user: dict[str, Any]) -> Deferred[int | None]:
            return self.forks.run(lambda: Deferred.fromCoroutine(
                self.store.db.run_interaction(_report, self.setup, user, now)))
        try:
            done = await gatherResults([one(u) for u in due], consumeErrors=True)
        except Exception as exc:
            log.warn("daily statistics: a user's mail could not be prepared ({why}); the "
                     "next pass tries again", why=str(exc))
            return 0
        queued = sum(1 for d in done if d is not None)
        if queued:
            self.queued()
        return queued
