"""SQL reports: their definitions, who may run them, and the default period.

A report's default start and stop are *moments* in a small language of our own, computed in
Python so that the same report runs on SQLite and on MariaDB/MySQL (the original stored
MySQL expressions such as ``UNIX_TIMESTAMP(...)``; those are refused with a hint):

* ``now``, ``today`` (00:00), ``yesterday``, ``tomorrow``, ``week_start`` (Monday 00:00),
  ``month_start``, ``year_start``;
* any of those followed by offsets ``+N`` / ``-N`` with a unit ``s``, ``m`` (minutes),
  ``h``, ``d``, ``w`` or ``mo`` (months): ``today-7d``, ``month_start-1mo``, ``now-90m``;
* a Unix time (``1700000000``) or a date ``2026-01-31`` / ``2026-01-31 08:00[:00]``.

Days and months count on the calendar of the time zone given (UTC on the admin pages, as
every time they show), so ``today-1d`` is yesterday's midnight across a DST change too.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from xvbd.store.db import Database, Txn
from xvbd.store.table import Table

#: Who may run a report: ``admin``, only the admin login that owns it; ``all``, every admin
#: login.  A partner never runs reports (they read every tenant's data).
REPORT_ACCESS = ("admin", "all")
UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class Report:
    id: int
    name: str
    sql_text: str
    default_start: str
    default_stop: str
    cache_ttl: int
    owner: str
    access: str
    created_at: int
    updated_at: int

    @property
    def has_period(self) -> bool:
        """Reports with a default start and stop take a period (and show date pickers)."""
        return bool(self.default_start and self.default_stop)

    def runs_for(self, admin_login: str) -> bool:
        return self.access == "all" or self.owner == admin_login


REPORTS = Table("reports", Report, audit=True)


class Reports:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._now = lambda: int(clock())

    async def create(self, name: str, sql_text: str, **fields: Any) -> Report:
        _check(fields)
        now = self._now()

        def create(txn: Txn) -> Report:
            new_id = REPORTS.insert(txn, {"name": name, "sql_text": sql_text,
                                          "created_at": now, "updated_at": now, **fields})
            return REPORTS.get(txn, new_id)  # type: ignore[return-value]
        return await self._db.run_interaction(create)

    async def get(self, report_id: int) -> Report | None:
        return await self._db.run_interaction(REPORTS.get, report_id)

    async def list(self, name_contains: str = "") -> list[Report]:
        """Every report (newest first), or those whose name contains the text (any case)."""
        if not name_contains:
            return await self._db.run_interaction(REPORTS.select, order="id DESC")
        pattern = "%" + _like_literal(name_contains.lower()) + "%"
        return await self._db.run_interaction(REPORTS.select, "LOWER(name) LIKE ? ESCAPE '!'",
                                              (pattern,), order="id DESC")

    async def update(self, report_id: int, **changes: Any) -> bool:
        _check(changes)
        return await self._db.run_interaction(REPORTS.update, report_id,
                                              {**changes, "updated_at": self._now()})

    async def delete(self, report_id: int) -> bool:
        return await self._db.run_interaction(REPORTS.delete, report_id)

    async def admin_logins(self) -> builtins.list[str]:
        """The admin logins (a report's possible owners); never their passwords."""
        def logins(txn: Txn) -> list[str]:
            return [r["login"] for r in txn.all("SELECT login FROM admins ORDER BY login")]
        return await self._db.run_interaction(logins)


def _like_literal(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _check(fields: dict[str, Any]) -> None:
    """What the storage layer insists on; the form also checks the default period (a bad one
    stored by other means is said plainly when the report runs)."""
    if "access" in fields and fields["access"] not in REPORT_ACCESS:
        raise ValueError(f"access is one of {REPORT_ACCESS}, got {fields['access']!r}")


# ------------------------------------------------------------------ moments

MOMENT_HELP = ("now, today, yesterday, tomorrow, week_start, month_start or year_start, "
               "optionally with offsets as in today-7d or month_start-1mo (units s m h d w "
               "mo), a Unix time, or a date like 2026-01-31 or 2026-01-31 08:00")
_BASES = ("now", "today", "yesterday", "tomorrow", "week_start", "month_start", "year_start")
_MOMENT = re.compile(r"(?P<base>[a-z_]+)(?P<offsets>(?:\s*[+-]\s*\d{1,6}\s*(?:mo|s|m|h|d|w))*)")
_OFFSET = re.compile(r"([+-])\s*(\d{1,6})\s*(mo|s|m|h|d|w)")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def moment(text: str, now: float, tz: tzinfo = UTC) -> int:
    """The Unix time ``text`` names at ``now`` in ``tz``; ValueError says what is accepted."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d{1,12}", raw):
        return int(raw)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([ t]\d{2}:\d{2}(:\d{2})?)?", raw):
        try:
            stamp = datetime.fromisoformat(raw.replace("t", " "))
        except ValueError:
            raise ValueError(f"{text!r} is not a real date; use {MOMENT_HELP}") from None
        return int(stamp.replace(tzinfo=tz).timestamp())
    match = _MOMENT.fullmatch(raw)
    if not match or match["base"] not in _BASES:
        raise ValueError(f"{text!r} is not a moment xvbd knows; use {MOMENT_HELP}")
    local = datetime.fromtimestamp(now, tz)
    wall = _base(match["base"], local)
    seconds = 0
    for sign, number, unit in _OFFSET.findall(match["offsets"]):
        amount = int(number) * (-1 if sign == "-" else 1)
        if unit == "mo":
            wall = _add_months(wall, amount)
        elif unit in ("d", "w"):
            wall += timedelta(days=amount * (7 if unit == "w" else 1))
        else:
            seconds += amount * _SECONDS[unit]
    if match["base"] == "now" and not match["offsets"]:
        return int(now)
    return int(wall.replace(tzinfo=tz).timestamp()) + seconds


def _base(name: str, local: datetime) -> datetime:
    """The wall-clock (naive) time a base name stands for."""
    midnight = datetime.combine(local.date(), clock_time())
    if name == "now":
        return local.replace(tzinfo=None)
    if name == "yesterday":
        return midnight - timedelta(days=1)
    if name == "tomorrow":
        return midnight + timedelta(days=1)
    if name == "week_start":
        return midnight - timedelta(days=local.weekday())
    if name == "month_start":
        return midnight.replace(day=1)
    if name == "year_start":
        return midnight.replace(month=1, day=1)
    return midnight


def _add_months(wall: datetime, months: int) -> datetime:
    index = wall.year * 12 + wall.month - 1 + months
    year, month = divmod(index, 12)
    first_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    last_day = (first_next - timedelta(days=1)).day
    return wall.replace(year=year, month=month + 1, day=min(wall.day, last_day))
