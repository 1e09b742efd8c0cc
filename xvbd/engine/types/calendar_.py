"""Calendar schedule (the original's "Google Calendar - Schedule" and "- Events"): an
iCalendar feed decides where a call goes.

The feed (any iCalendar URL: a Google calendar's secret address, Nextcloud, Outlook) is
fetched by the engine's guarded :class:`~xvbd.engine.webfetch.WebFetcher` under the
group's size and time caps, parsed in the thread pool and kept ``cache_seconds`` per
tenant and URL on the engine's clock.  At the call's moment (in the tenant's zone, or
``timezone``), the events going on are looked at: the first ``events`` entry whose keyword
is in an event's summary (case ignored) gives the target (the "Events" type); else any
event goes to ``on``, none to ``off``.  The group's "Maximum Number of GoogleCalendar
events" bounds the events looked at.  A feed that fails (no answer, a refused address, not
iCalendar) sends the call to ``fallback`` (or ``off``), with one WARN per extension and
cause; the CDR step says ``RESULT=OK``, ``CACHED`` or ``FEED_FAILED`` with the ``CAUSE``.
While a feed fails, its last good copy decides (``RESULT=STALE``, for up to a day), and the
feed is not asked again for :data:`FAILED_FOR` seconds, so no call waits on a dead feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.internet.threads import deferToThreadPool

from xvbd.engine import icalfeed, prompts
from xvbd.engine.netguard import WebFailure
from xvbd.engine.types import Next, SettingsError, register, within
from xvbd.engine.types.webrequest import check_url, limits
from xvbd.engine.when import local_time

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class CalendarEvent:
    keyword: str  # a word of the event's summary (case ignored)
    target: str

    def __post_init__(self) -> None:
        if not self.keyword.strip() or len(self.keyword) > 200:
            raise SettingsError("keyword is a word of the event's title (1 to 200 "
                                "characters), like Holiday")


@dataclass(frozen=True)
class CalendarSettings:
    url: str
    greeting: str = ""
    on: str = ""  # the extension while an event is on ('' = back up)
    off: str = ""  # the extension while none is ('' = back up)
    events: tuple[CalendarEvent, ...] = ()  # by a keyword of the event's title, first
    fallback: str = ""  # the extension when the feed fails ('' = off)
    cache_seconds: int = within(300, 0, 86400)  # how long a fetched feed is kept
    timezone: str = ""  # floating and all-day times' zone ('' = the user's)

    def __post_init__(self) -> None:
        check_url(self.url, "https://calendar.google.com/calendar/ical/…/basic.ics")
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise SettingsError(f"timezone is a zone name like Europe/Moscow, got "
                                    f"{self.timezone!r}") from None


def choose(settings: CalendarSettings, summaries: list[str]) -> tuple[str, str]:
    """(why, target) for the events going on: 'EVENT=N' (the events entry), 'ON' or
    'OFF'."""
    for n, rule in enumerate(settings.events, 1):
        word = rule.keyword.strip().casefold()
        if any(word in summary.casefold() for summary in summaries):
            return f"EVENT={n}", rule.target
    return ("ON", settings.on) if summaries else ("OFF", settings.off)


#: A feed that failed is not asked again for this long: the calls meanwhile do not wait for
#: it (each would wait up to the group's web time cap) but decide at once.
FAILED_FOR = 60.0
#: While a feed fails, the last copy it gave decides, for at most this long.
STALE_FOR = 86400.0


async def feed_of(call: Call, url: str, cache_seconds: int
                  ) -> tuple[Any, str, WebFailure | None]:
    """(calendar, RESULT word, the failure if the feed failed): the tenant's feed from the
    cache, fetched and parsed, or, while it fails, its last good copy (``STALE``);
    :class:`WebFailure` when it failed and there is no copy."""
    assert call.user is not None
    web = call.engine.web
    if web is None:
        raise WebFailure("OFF", "this xvbd has no web client")
    key, stale_key, failed_key = (("calendar", call.user.id, url),
                                  ("calendar-copy", call.user.id, url),
                                  ("calendar-failed", call.user.id, url))
    found = web.cached(key)
    if found is not None:
        return found, "CACHED", None
    failure = web.cached(failed_key)
    if failure is None:
        max_bytes, seconds = limits(call)
        try:
            answer = await web.fetch(url, max_bytes=max_bytes, seconds=seconds)
            calendar = await deferToThreadPool(web.reactor, web.threadpool, icalfeed.parse,
                                               answer.body)
        except WebFailure as exc:
            failure = exc
            web.keep(failed_key, failure, FAILED_FOR)
        else:
            web.keep(key, calendar, cache_seconds)
            web.keep(stale_key, calendar, STALE_FOR)
            return calendar, "OK", None
    copy = web.cached(stale_key)
    if copy is None:
        raise failure
    return copy, "STALE", failure


class CalendarType:
    name = "Calendar"
    number = 24  # the original left no number for its (disabled) Google Calendar types
    settings = CalendarSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None and call.group is not None
        moment = local_time(call.engine.clock.seconds(),
                            settings.timezone or call.user.timezone)
        try:
            calendar, result, failure = await feed_of(call, settings.url,
                                                      settings.cache_seconds)
            web = call.engine.web
            assert web is not None
            if failure is not None:  # the last good copy decides meanwhile
                web.warn_once(ext, self.name, failure,
                              "calls follow the feed's last good copy (up to a day old) "
                              "until it answers")
            summaries = await deferToThreadPool(web.reactor, web.threadpool,
                                                icalfeed.events_at, calendar, moment,
                                                call.group.max_calendar_events)
            why, target = choose(settings, summaries)
            call.step_data = {"MATCH": why, "TARGET": target or "-", "RESULT": result}
            if failure is not None:
                call.step_data["CAUSE"] = failure.cause
        except WebFailure as failure:
            target = settings.fallback or settings.off
            call.step_data = {"MATCH": "FALLBACK", "TARGET": target or "-",
                              "RESULT": "FEED_FAILED", "CAUSE": failure.cause}
            if call.engine.web is not None:
                call.engine.web.warn_once(ext, self.name, failure,
                                          f"calls go to {target or 'the menu above'} "
                                          "until the feed answers")
        if not target:
            return Next.UP
        found = tree.by_path.get(target)
        if found is None:
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        return Next.goto(found)


register(CalendarType())
