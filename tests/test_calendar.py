"""Calendar schedules: what is on at a moment in an iCalendar feed (a weekly RRULE with a
TZID, an EXDATE, an all-day event, a floating time, a DST change), and calls through the
FastAGI peer on both backends against a real HTTP server process serving the feed (on →
one branch, off → the other, the feed down → the fallback with one WARN, the cache on the
test's clock).

The feed is ``tests/fixtures/ical/office.ics``: office hours 09:00–18:00 Europe/Berlin on
weekdays from 2026-03-02 except Easter Monday (2026-04-06), Good Friday (2026-04-03) all
day, and a floating "Team call" 2026-04-01 19:00–20:00.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import WebServerEngineCase
from xvbd.engine import icalfeed
from xvbd.engine.netguard import WebFailure
from xvbd.engine.types import SettingsError, read_settings
from xvbd.engine.types.calendar_ import CalendarSettings, choose

FEED = (Path(__file__).parent / "fixtures" / "ical" / "office.ics").read_bytes()
BERLIN = "Europe/Berlin"


def on_at(utc: str, zone: str = BERLIN, limit: int = -1) -> list[str]:
    """The events on at a UTC moment ('2026-03-16 09:00'), read in the tenant's ``zone``."""
    moment = datetime.fromisoformat(utc).replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    return icalfeed.events_at(icalfeed.parse(FEED), moment, limit)


def test_a_weekly_rule_in_its_own_zone() -> None:
    assert on_at("2026-03-16 08:00") == ["Office hours"], "Monday 09:00 CET"
    assert on_at("2026-03-16 07:59") == [], "08:59 in Berlin"
    assert on_at("2026-03-16 17:00") == [], "18:00: the end is not in the event"
    assert on_at("2026-03-21 10:00") == [], "a Saturday"
    assert on_at("2026-03-16 08:00", "America/New_York") == ["Office hours"], \
        "an event with a TZID is in its own zone whatever the tenant's"


def test_an_excluded_date() -> None:
    assert on_at("2026-04-06 10:00") == [], "Easter Monday is an EXDATE"
    assert on_at("2026-04-07 10:00") == ["Office hours"], "the Tuesday after is not"


def test_an_all_day_event_is_the_tenants_day() -> None:
    assert on_at("2026-04-03 12:00") == ["Holiday: Good Friday", "Office hours"], \
        "earliest start first"
    assert on_at("2026-04-02 23:30") == ["Holiday: Good Friday"], "01:30 on Friday in Berlin"
    assert on_at("2026-04-02 23:30", "America/New_York") == [], "19:30 Thursday in New York"
    assert on_at("2026-04-03 22:30") == [], "00:30 Saturday in Berlin"
    assert on_at("2026-04-03 12:00", limit=1) == ["Holiday: Good Friday"], \
        "the group's events limit"


def test_a_floating_time_is_the_tenants_zone() -> None:
    assert on_at("2026-04-01 16:30", "Europe/Moscow") == ["Team call"], "19:30 in Moscow"
    assert on_at("2026-04-01 16:30") == [], "18:30 in Berlin: office over, no call yet"
    assert on_at("2026-04-01 17:30") == ["Team call"], "19:30 in Berlin"


def test_the_dst_change() -> None:
    # Berlin goes from CET (+1) to CEST (+2) on Sunday 2026-03-29.
    assert on_at("2026-03-27 08:30") == ["Office hours"], "09:30 CET"
    assert on_at("2026-03-27 07:30") == [], "08:30 CET"
    assert on_at("2026-03-30 07:30") == ["Office hours"], "09:30 CEST, the same local hour"
    assert on_at("2026-03-30 15:30") == ["Office hours"], "17:30 CEST"
    assert on_at("2026-03-30 16:30") == [], "18:30 CEST"


def test_a_google_calendars_x_wr_timezone_keeps_its_local_hour() -> None:
    # Google writes a weekly event in UTC and means it in the calendar's zone.
    feed = "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Google Inc//Google Calendar//EN",
        "X-WR-TIMEZONE:Europe/Berlin", "BEGIN:VEVENT", "UID:standup@xvbd",
        "SUMMARY:Standup", "DTSTART:20260302T080000Z", "DTEND:20260302T083000Z",
        "RRULE:FREQ=WEEKLY;BYDAY=MO", "END:VEVENT", "END:VCALENDAR", ""]).encode()
    calendar = icalfeed.parse(feed)

    def at(text: str) -> list[str]:
        moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return icalfeed.events_at(calendar, moment.astimezone(ZoneInfo(BERLIN)))
    assert at("2026-03-23 08:10") == ["Standup"], "09:10 CET"
    assert at("2026-03-30 07:10") == ["Standup"], "09:10 CEST: the same local hour"
    assert at("2026-03-30 08:10") == []


@pytest.mark.parametrize("data", [b"Your balance is 12 dollars", b"<html>no</html>", b"",
                                  b"BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n"])
def test_what_is_not_icalendar_is_a_bad_calendar(data: bytes) -> None:
    with pytest.raises(WebFailure) as caught:
        icalfeed.parse(data)
    assert caught.value.cause == "BAD_CALENDAR"


def test_keywords_first_then_on_and_off() -> None:
    settings = read_settings(CalendarSettings, {
        "url": "https://example.com/a.ics", "on": "1", "off": "2",
        "events": [{"keyword": "HOLIDAY", "target": "3"}, {"keyword": "call", "target": "4"}]})
    assert choose(settings, ["Office hours", "Holiday: Good Friday"]) == ("EVENT=1", "3")
    assert choose(settings, ["Team call"]) == ("EVENT=2", "4")
    assert choose(settings, ["Office hours"]) == ("ON", "1")
    assert choose(settings, []) == ("OFF", "2")


@pytest.mark.parametrize(("data", "says"), [
    ({"url": "ftp://x/a.ics"}, "url starts with http:// or https://"),
    ({"url": "https://x/a.ics", "timezone": "Mars/Olympus"}, "timezone is a zone name"),
    ({"url": "https://x/a.ics", "cache_seconds": -1}, "cache_seconds is 0 to 86400"),
    ({"url": "https://x/a.ics", "events": [{"keyword": " ", "target": "1"}]}, "keyword is"),
])
def test_bad_settings_say_what_is_wrong(data: dict[str, Any], says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        read_settings(CalendarSettings, data)


# ---------------------------------------------------------------------- calls


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class CalendarCallTests(WebServerEngineCase):
    maxDiff = None


    async def tenant(self, **settings: Any) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1)).id
        user = await acc.create_user("613", "10001", gid, timezone=BERLIN)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        self.user_id, self.root_id = user.id, root.id
        await ivr.add_child(user.id, root.id, "1", "Calendar", {
            "url": self.server.url("/ics/office"), "on": "7", "off": "8", **settings})
        await ivr.add_child(user.id, root.id, "7", "DateTime", {"timezone": "UTC"})
        await ivr.add_child(user.id, root.id, "8", "Pause", {"seconds": 1})
        await ivr.add_child(user.id, root.id, "9", "Pause", {"seconds": 2})

    async def branch_at(self, moment: float) -> str:
        """Which branch a call at ``moment`` (on the test's clock) took: 7, 8, 9 or up."""
        self.clock.advance(moment - self.clock.seconds())
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        if any(c.startswith("SAY DATETIME") for c in peer.commands):
            return "7"
        for c in peer.commands:
            if c.startswith("EXEC Wait"):
                return {"1": "8", "2": "9"}[c.split()[-1].strip('"')]
        return "up"

    def steps(self) -> list[str]:
        return [re.sub(r".*EXT_NUMBER=([^,]*),.*TYPE=\w+, DATA=", r"\1 ", line)
                for line in self.cdr_lines() if ", TYPE=Calendar" in line]

    async def hits(self) -> int:
        assert self.engine.web is not None
        answer = await self.engine.web.fetch(self.server.url("/hits?path=/ics/office"))
        return int(answer.text())

    async def test_an_event_on_takes_one_branch_none_the_other(self) -> None:
        await self.tenant(cache_seconds=0,
                          events=[{"keyword": "holiday", "target": "9"}])
        seen = [await self.branch_at(utc(t)) for t in (
            "2026-03-16 08:30",  # Monday 09:30 in Berlin
            "2026-03-21 10:00",  # Saturday
            "2026-03-30 07:30",  # 09:30 CEST, after the change
            "2026-04-03 10:00",  # Good Friday: the keyword first
            "2026-04-06 10:00")]  # Easter Monday, excluded
        self.assertEqual(seen, ["7", "8", "7", "9", "8"])
        self.assertEqual(self.steps(), [
            "1 MATCH=ON, TARGET=7, RESULT=OK", "1 MATCH=OFF, TARGET=8, RESULT=OK",
            "1 MATCH=ON, TARGET=7, RESULT=OK", "1 MATCH=EVENT=1, TARGET=9, RESULT=OK",
            "1 MATCH=OFF, TARGET=8, RESULT=OK"])
        self.assertEqual(await self.hits(), 5, "cache_seconds 0: fetched each call")
        self.assertEqual(self.logs, [])

    async def test_the_feed_is_kept_for_its_cache_seconds_on_the_clock(self) -> None:
        await self.tenant(cache_seconds=300)
        start = utc("2026-03-16 08:30")
        seen = [await self.branch_at(start)]
        self.assertEqual(await self.hits(), 1)
        self.server.stop()  # kept: the calls within the 300 s do not ask the server
        seen.append(await self.branch_at(start + 200))
        self.assertEqual(self.steps()[-1], "1 MATCH=ON, TARGET=7, RESULT=CACHED")
        seen.append(await self.branch_at(start + 300))  # past it: asked, and down
        # the last good copy decides while the feed is down (and says so once)
        self.assertEqual(seen, ["7", "7", "7"])
        self.assertEqual(self.steps()[-1], "1 MATCH=ON, TARGET=7, RESULT=STALE, "
                         "CAUSE=UNREACHABLE")
        self.assertEqual(len(self.logs), 1, self.logs)
        self.assertIn("calls follow the feed's last good copy", self.logs[0])
        seen.append(await self.branch_at(start + 300 + 86400))  # a day on: no copy left
        self.assertEqual(seen[-1], "8")
        self.assertEqual(self.steps()[-1], "1 MATCH=FALLBACK, TARGET=8, "
                         "RESULT=FEED_FAILED, CAUSE=UNREACHABLE")

    async def test_a_failing_feed_goes_to_the_fallback_and_warns_once(self) -> None:
        await self.tenant(fallback="9", cache_seconds=300)
        self.server.stop()
        moment = utc("2026-03-16 08:30")
        self.assertEqual([await self.branch_at(moment + n) for n in (0, 30, 61)],
                         ["9", "9", "9"])
        self.assertEqual(self.steps(), ["1 MATCH=FALLBACK, TARGET=9, RESULT=FEED_FAILED, "
                                        "CAUSE=UNREACHABLE"] * 3)
        # the feed was asked at 0 and at 61 s, not at 30 s: a call does not wait on a feed
        # that failed within the minute
        self.server.start()
        self.assertEqual(await self.hits(), 0, "the server (started anew) saw none since")
        self.clock.advance(30)  # within the minute after the last failure: not asked yet
        self.assertEqual(await self.branch_at(moment + 61 + 30), "9")
        self.assertEqual(await self.hits(), 0)
        self.clock.advance(31)
        self.assertEqual(await self.branch_at(moment + 61 + 61), "7", "the feed is back")
        self.assertEqual(await self.hits(), 1)
        self.assertEqual(len(self.logs), 1, self.logs)
        self.assertIn("Calendar extension 1 of user 1: ", self.logs[0])
        self.assertIn("(RESULT=UNREACHABLE); calls go to 9 until the feed answers",
                      self.logs[0])

    async def test_a_refused_address_and_a_feed_that_is_not_icalendar(self) -> None:
        await self.tenant(url=f"http://127.0.0.2:{self.server.port}/ics/office")
        for number, path in (("2", "/text"), ("3", "/status/404")):
            await self.store.ivr.add_child(self.user_id, self.root_id, number, "Calendar", {
                "url": self.server.url(path), "on": "7", "off": "8"})
        self.clock.advance(utc("2026-03-16 08:30") - self.clock.seconds())
        peer = await self.call(Caller(keys=["1", "2", "3", "*"]), args=("100",))
        self.assertEqual([c for c in peer.commands if c.startswith("EXEC Wait")],
                         ['EXEC Wait "1"'] * 3, "no fallback: the off branch, each time")
        self.assertEqual(self.steps(), [
            f"{n} MATCH=FALLBACK, TARGET=8, RESULT=FEED_FAILED, CAUSE={cause}"
            for n, cause in (("1", "REFUSED"), ("2", "BAD_CALENDAR"), ("3", "HTTP_404"))])
        self.assertEqual(len(self.logs), 3, self.logs)
        self.assertIn("127.0.0.2 is loopback", self.logs[0])
        self.assertIn("the feed is not iCalendar", self.logs[1])


CalendarCallsOnSQLite, CalendarCallsOnMariaDB = on_both_backends(CalendarCallTests)
