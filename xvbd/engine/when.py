"""Time of day and day of week in the tenant's timezone, for schedules and conditions.

A range is days of the week (1 Monday … 7 Sunday) and a start and end time of day; an end
before its start runs past midnight into the next day (22:00-06:00 on Friday covers Saturday
morning).  Wall-clock time comes from the zone database, so a range means the same local
hours on both sides of a DST change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xvbd.engine.types import SettingsError

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def hhmm(text: str, name: str) -> time:
    match = _HHMM.fullmatch(text)
    if match is None:
        raise SettingsError(f"{name} is a time of day like 09:30, got {text!r}")
    return time(int(match[1]), int(match[2]))


@cache
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(seconds: float, timezone: str) -> datetime:
    return datetime.fromtimestamp(seconds, zone(timezone))


@dataclass(frozen=True)
class TimeRange:
    days: str = "1234567"
    start: str = "00:00"
    end: str = "23:59"

    def __post_init__(self) -> None:
        if not self.days or any(d not in "1234567" for d in self.days):
            raise SettingsError(f"days are digits 1 (Monday) to 7 (Sunday), got {self.days!r}")
        hhmm(self.start, "start")
        hhmm(self.end, "end")

    def matches(self, moment: datetime) -> bool:
        now = moment.time().replace(second=0, microsecond=0)
        start, end = hhmm(self.start, "start"), hhmm(self.end, "end")
        today = str(moment.isoweekday())
        if start <= end:
            return today in self.days and start <= now <= end
        yesterday = str((moment - timedelta(days=1)).isoweekday())
        return (today in self.days and now >= start) or (yesterday in self.days and now <= end)


def is_holiday(moment: datetime, holidays: tuple[str, ...]) -> bool:
    """Holidays are ``YYYY-MM-DD`` (that day) or ``MM-DD`` (every year)."""
    day: date = moment.date()
    return day.isoformat() in holidays or day.isoformat()[5:] in holidays


def check_holidays(holidays: tuple[str, ...]) -> None:
    for holiday in holidays:
        if not re.fullmatch(r"(\d{4}-)?(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", holiday):
            raise SettingsError(f"a holiday is YYYY-MM-DD or MM-DD, got {holiday!r}")
