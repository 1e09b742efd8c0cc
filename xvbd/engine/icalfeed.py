"""iCalendar feeds for calendar schedules: parsing a feed and what is on at a moment.

Pure functions of the feed's bytes and of a moment, so they run in the thread pool and in
tests without a reactor.  :func:`parse` reads a feed (``BAD_CALENDAR`` when it is not
one); :func:`events_at` expands recurring events (RRULE, RDATE, EXDATE, changed
occurrences) with recurring-ical-events and gives the summaries of the events going on at
the moment.  An event with a ``TZID`` is in its own zone; a floating time (no zone) and an
all-day event are read in the zone of the moment given, the tenant's.  A Google calendar's
``X-WR-TIMEZONE`` is honoured for its floating times as that calendar means them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import icalendar
import recurring_ical_events
import x_wr_timezone

from xvbd.engine.netguard import WebFailure


def parse(data: bytes) -> Any:
    """The calendar of a feed's bytes, or ``WebFailure("BAD_CALENDAR")``."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise WebFailure("BAD_CALENDAR", f"the feed is not iCalendar "
                         f"({str(exc)[:80]})") from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise WebFailure("BAD_CALENDAR", "the feed is not iCalendar (no VCALENDAR)")
    try:
        return x_wr_timezone.to_standard(calendar)
    except (ValueError, KeyError) as exc:
        raise WebFailure("BAD_CALENDAR", f"the feed's X-WR-TIMEZONE is not a zone "
                         f"({str(exc)[:80]})") from None


def events_at(calendar: Any, moment: datetime, limit: int = -1) -> list[str]:
    """The summaries of the events going on at ``moment`` (an aware datetime in the
    tenant's zone), earliest start first; at most ``limit`` (-1: all).  A feed whose
    recurrences cannot be read is ``WebFailure("BAD_CALENDAR")``."""
    try:
        found = recurring_ical_events.of(calendar).at(moment)
        events = sorted(found, key=lambda e: _start(e, moment))
    except (ValueError, KeyError, TypeError, recurring_ical_events.InvalidCalendar) as exc:
        raise WebFailure("BAD_CALENDAR", f"the feed's events cannot be read "
                         f"({str(exc)[:80]})") from None
    summaries = [str(e.get("SUMMARY", "")) for e in events]
    return summaries if limit < 0 else summaries[:limit]


def _start(event: Any, moment: datetime) -> datetime:
    start = event.get("DTSTART")
    value = start.dt if start is not None else moment
    if not isinstance(value, datetime):  # an all-day event: its day's start, here
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=moment.tzinfo)
    return value
