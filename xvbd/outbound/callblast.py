"""CallBlast, the auto-informer: every minute, call the due phones of the tenants' callblast
items on this node.

A run (``[CALLBLAST]``) places at most ``MAX_CALLS`` calls, ``SLEEP`` seconds apart, and
stops when the node is at ``LOAD_THRESHOLD`` of its limits (0.9 of calls:100 is 90 calls in
progress, ringing ones included).  Items take turns, one phone each, so one tenant's long
list does not hold up another's.  An item is worked by one xvbd process at a time (a lock
with expiry in Redis when ``MEM_CACHED_SHARED`` is set), and each phone is claimed by one
conditional UPDATE, so no phone is ever dialed twice at once.

What an item may do: its schedule (days and hours in the tenant's timezone, not before
``start_at``), its retries, ring time and caller id (:class:`ItemSettings`); its group's
"Maximum Number of CallBlast items in ext" and "Maximum Phones for CallBlast item" (the first
N work), the CallBlast type's limit, and with internal billing a balance above zero.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater

from xvbd.accounting.billing import prices
from xvbd.config import Settings
from xvbd.counters import Counters
from xvbd.engine.directory import Directory
from xvbd.engine.types import SettingsError, extension_allowed, settings_of, within
from xvbd.engine.when import TimeRange, local_time
from xvbd.logs import logger
from xvbd.outbound.dialer import (
    CLAIM_MARGIN,
    Dialer,
    NodeRoom,
    Placement,
    caller_id,
    new_token,
    report,
)
from xvbd.store import Store
from xvbd.store.outbound import DueItem

log = logger("xvbd.callblast")

RUN_EVERY = 60.0
#: Seconds after an AMI login before the calls that wait are placed.
AFTER_LOGIN = 5.0


@dataclass(frozen=True)
class ItemSettings:
    """A callblast item's settings (its ``settings`` JSON object)."""

    days: str = "1234567"   # days it may call: 1 Monday … 7 Sunday
    start: str = "09:00"    # from this local time (the tenant's timezone) …
    end: str = "21:00"      # … to this one; an end before the start runs past midnight
    start_at: int = 0       # not before this moment (Unix seconds; 0: at once)
    retries: int = within(2, 0, 10)  # more attempts after a busy, unanswered or failed one
    retry_interval: int = within(600, 60, 7 * 86400)  # seconds between attempts
    ring_timeout: int = within(30, 5, 180)  # seconds the phone rings
    caller_id: str = ""     # the number shown to the callee ('' = the tenant's number)
    caller_name: str = ""

    def __post_init__(self) -> None:
        TimeRange(self.days, self.start, self.end)

    def window_open(self, now: float, timezone: str) -> bool:
        if now < self.start_at:
            return False
        return TimeRange(self.days, self.start, self.end).matches(local_time(now, timezone))


def item_settings(due: DueItem) -> ItemSettings:
    return settings_of(ItemSettings, due.item.settings or "{}")


@dataclass
class RunReport:
    """What one run did, for logs and tests."""

    placed: int = 0
    items: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    stopped: str = ""

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


class CallblastScheduler(Service):
    name = "callblast"

    def __init__(self, settings: Settings, store: Store, directory: Directory,
                 counters: Counters, dialer: Dialer, room: NodeRoom, clock: Any) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.counters = counters
        self.dialer = dialer
        self.room = room
        self.clock = clock
        self.server_id = settings.common.server_id
        self.last_report: RunReport | None = None
        self.history: deque[RunReport] = deque(maxlen=60)  # the last hour's runs
        self._run: Deferred[RunReport] | None = None
        self._loop = LoopingCall(self.tick)
        self._loop.clock = clock
        self._soon: Any = None  # the run a new AMI session brings forward
        self._told_offline = False
        self._bad_items: set[tuple[int, str]] = set()

    def startService(self) -> None:
        super().startService()
        self._loop.start(RUN_EVERY, now=False)
        self.dialer.ami.on_connected.append(self._asterisk_back)

    def _asterisk_back(self) -> None:
        """A new AMI session (xvbd or Asterisk just started): the calls that wait need not
        wait for the minute."""
        if self.running and (self._soon is None or not self._soon.active()):
            self._soon = self.clock.callLater(AFTER_LOGIN, self.tick)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self._asterisk_back in self.dialer.ami.on_connected:
            self.dialer.ami.on_connected.remove(self._asterisk_back)
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        return self._run if self._run is not None else None

    # ------------------------------------------------------------------ the minute

    def tick(self) -> Deferred[RunReport] | None:
        """The minute's run, unless the last one is still placing calls."""
        if self._run is not None:
            log.info("callblast: the previous run is still placing calls (MAX_CALLS × SLEEP "
                     "is longer than a minute); this minute's run is skipped")
            return None
        run = Deferred.fromCoroutine(self.run_once())
        self._run = run

        def done(result: Any) -> Any:
            self._run = None
            return result
        run.addBoth(done)
        run.addErrback(report, "callblast run failed; the next minute's tries again")
        return run

    async def run_once(self) -> RunReport:
        report = RunReport()
        self.last_report = report
        self.history.append(report)
        if not self.dialer.ready:
            if not self._told_offline:
                log.warn("callblast: no AMI session to Asterisk ({where}); calls wait until "
                         "it is back", where=self.dialer.ami.where)
                self._told_offline = True
            report.stopped = "no AMI session"
            return report
        self._told_offline = False
        now = int(self.clock.seconds())
        eligible = []
        for due in await self.store.outbound.due_items(self.server_id, now):
            settings = await self._may_call(due, now, report)
            if settings is not None:
                eligible.append((due, settings))
        leases: list[tuple[str, str]] = []
        turn: list[tuple[DueItem, ItemSettings]] = []
        try:
            for due, settings in eligible:
                key = f"callblast:item:{due.item.id}"
                lease = await self.counters.acquire(key, 1)
                if lease is None:
                    report.skip("worked by another xvbd")
                    continue
                leases.append((key, lease))
                turn.append((due, settings))
            report.items = len(turn)
            await self._place(turn, report)
        finally:
            for key, lease in leases:
                await self.counters.release(key, lease)
        if report.placed or report.stopped:
            log.info("callblast: {n} call(s) placed for {items} item(s){why}", n=report.placed,
                     items=report.items, why=f"; stopped: {report.stopped}"
                     if report.stopped else "")
        return report

    async def _place(self, turn: list[tuple[DueItem, ItemSettings]], report: RunReport) -> None:
        limit = self.settings.callblast.max_calls
        sleep = self.settings.callblast.sleep
        while turn:
            for entry in list(turn):
                if report.placed >= limit:
                    report.stopped = f"MAX_CALLS ({limit}) placed"
                    return
                if not self.running or not self.dialer.ready:
                    report.stopped = "stopping" if not self.running else "AMI session lost"
                    return
                full = await self.room.why_full(self.dialer.ringing)
                if full:
                    report.stopped = f"node load: {full}"
                    return
                due, item = entry
                now = int(self.clock.seconds())
                token = new_token(self.server_id)
                phone = await self.store.outbound.claim_phone(
                    due.item.id, token, now, now + item.ring_timeout + CLAIM_MARGIN,
                    due.max_phones)
                if phone is None:
                    turn.remove(entry)
                    continue
                placement = Placement(
                    phone=phone.phone, dialout_context=due.dialout_context,
                    context="xvb-callblast",
                    variables={"__XVB_AC": due.access_code, "XVB_CALL_TYPE": "callblast",
                               "XVB_CB_ITEM": str(due.item.id), "XVB_CB_PHONE": str(phone.id),
                               "XVB_CB_TOKEN": token,
                               "XVB_CHECK_AMD": "1" if self.settings.callblast.check_amd
                               else "0"},
                    caller_id=caller_id(item.caller_id or due.voice_number, item.caller_name),
                    ring_timeout=item.ring_timeout,
                    what=f"callblast item {due.item.id} of user {due.item.user_id}")
                self._follow(placement, phone.id, token, item)
                report.placed += 1
                await deferLater(self.clock, sleep)

    def _follow(self, placement: Placement, phone_id: int, token: str,
                item: ItemSettings) -> None:
        async def finish(result: str, counted: bool, detail: str) -> bool:
            kept = await self.store.outbound.finish_attempt(
                phone_id, token, result, int(self.clock.seconds()),
                max_attempts=1 + item.retries, retry_in=item.retry_interval if counted else 0,
                counted=counted, detail=detail)
            return kept is not None

        self.dialer.launch(placement, finish)

    # ------------------------------------------------------------------ may it call?

    async def _may_call(self, due: DueItem, now: int,
                        report: RunReport) -> ItemSettings | None:
        """The item's settings when it may be called now; None (the report says why)."""
        if due.extension_type != "CallBlast":
            self._bad(due, report, f"its extension is a {due.extension_type}")
            return None
        try:
            settings = item_settings(due)
        except SettingsError as exc:
            self._bad(due, report, f"bad settings: {exc}")
            return None
        if not due.dialout_context:
            self._bad(due, report, "the group has no dialout context")
            return None
        if 0 <= due.max_items <= due.item_rank:
            report.skip("over the group's item limit")
            return None
        if not await self._type_allowed(due):
            report.skip("CallBlast not allowed to the group")
            return None
        if not settings.window_open(now, due.timezone):
            report.skip("outside its hours")
            return None
        if self.settings.common.use_billing == 1 and due.balance <= 0:
            tariff = await self.directory.tariff(due.tariff_id)
            if not prices(tariff, "callblast").free:
                report.skip("no money")
                return None
        return settings

    async def _type_allowed(self, due: DueItem) -> bool:
        """The group's CallBlast type limit, as a call into the tree would meet it."""
        limits = await self.directory.type_limits(due.group_id)
        group = await self.directory.group(due.group_id)
        tree = await self.directory.tree(due.item.user_id)
        ext = tree.by_id.get(due.item.extension_id)
        if group is None or ext is None:  # no place in a tree to rank: the limit alone
            return limits.get("CallBlast", -1) < 0
        return extension_allowed(group, limits, tree, ext)

    def _bad(self, due: DueItem, report: RunReport, why: str) -> None:
        report.skip("misconfigured")
        if (due.item.id, why) not in self._bad_items:  # once per process, not every minute
            self._bad_items.add((due.item.id, why))
            log.warn("callblast item {item} of user {user} is not called: {why}",
                     item=due.item.id, user=due.item.user_id, why=why)
