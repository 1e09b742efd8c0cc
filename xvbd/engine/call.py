"""One call in progress: who called whom, which tenant it belongs to, what it has done,
and the stop work (hooks, counters, CDR summary) that runs exactly once however it ends."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xvbd.accounting.billing import CallCharge, prices
from xvbd.accounting.cdr import CallCDR
from xvbd.agi.channel import AGIChannel, Playback
from xvbd.agi.protocol import AGIEnv, Hangup
from xvbd.engine.languages import asterisk_language
from xvbd.ids import new_id
from xvbd.logs import DTMF, LEVEL_GATE, logger
from xvbd.store.accounts import Group, Tariff, User
from xvbd.store.billing import HeldCall

if TYPE_CHECKING:
    from xvbd.engine.engine import Engine

log = logger("xvbd.call")

#: The words a call ends with (``Call.result``, the dialplan's ``XVB_RESULT``; the comment
#: of ``[xvb-after-agi]`` in etc/asterisk/extensions.conf says what each means).  One more
#: appears in CDR summaries only: CUT, a call whose xvbd died under it, written by another
#: xvbd (:mod:`xvbd.accounting.lostcalls`).
RESULTS = ("OK", "TIMEUP", "NOUSER", "BADPIN", "THROTTLED", "LOCKED", "BUSY", "NOFUNDS",
           "NOEXT", "ABANDONED", "ERROR")


@dataclass
class Call:
    engine: Engine
    env: AGIEnv
    channel: AGIChannel
    called_id: str
    caller_id: str
    call_type: str = "incoming"
    peer_address: str = ""
    #: Where the call came from as Asterisk saw it: what guessing is counted by
    #: (``engine/guard.py``), never the caller id alone.
    source: str = ""
    call_id: str = field(default_factory=new_id)
    started: float = 0.0
    user: User | None = None
    group: Group | None = None
    tariff: Tariff | None = None
    language: str = ""
    access_code: str = ""
    deadline: float = math.inf
    dtmf: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    step_data: dict[str, Any] = field(default_factory=dict)
    charge: CallCharge | None = None
    #: How the call ended, for the dialplan (``XVB_RESULT``) and the CDR summary: OK once it
    #: is a user's, else why not (etc/asterisk/extensions.conf lists the words); '' while
    #: nothing is decided.
    result: str = ""
    _leases: list[tuple[str, str]] = field(default_factory=list)
    _hooks: list[Any] = field(default_factory=list)
    #: Run once the call is over and its records written (e.g. place a callback, keep the
    #: duration of a callblast attempt); a coroutine is awaited.
    after: list[Callable[[], Any]] = field(default_factory=list)
    stopped: float = 0.0
    _finished: bool = False
    _accounted: bool = False

    def __post_init__(self) -> None:
        self.started = self.engine.clock.seconds()
        self.cdr = CallCDR(self._common())

    # ------------------------------------------------------------------ identity

    def _common(self) -> dict[str, Any]:
        return {"ACCESS_CODE": self.access_code, "CALLED_ID": self.called_id,
                "CALLER_ID": self.caller_id, "CALL_ID": self.call_id,
                "SERVER_ID": self.engine.settings.common.server_id,
                "SUBSCR_ID": self.user.id if self.user else 0}

    async def become(self, user: User, group: Group, access_code: str) -> None:
        """The call now belongs to ``user``: CDR fields, language, limits, hooks."""
        self.user, self.group, self.access_code = user, group, access_code
        self.tariff = await self.engine.directory.tariff(group.tariff_id)
        self.cdr.common = self._common()
        self.result = "OK"
        if self.engine.radius is not None:
            self._accounted = True
            self.engine.radius.started(self)
        if group.max_call_duration > 0:
            self.deadline = self.started + group.max_call_duration

    async def start_billing(self) -> bool:
        """Internal billing: hold the money the call needs to start; False when the balance
        cannot pay (a free tariff, or billing off, always can)."""
        assert self.user is not None
        billing = self.engine.settings.common.use_billing
        if billing == -1 and self.engine.authorizer is not None:
            allowed, seconds = await self.engine.authorizer.authorize(self)
            if allowed and seconds is not None:
                self.deadline = min(self.deadline, self.started + seconds)
            return allowed
        if billing != 1:
            return True
        price = prices(self.tariff, self.call_type)
        if price.free:
            return True
        held = HeldCall(server_id=self.engine.settings.common.server_id,
                        started_at=int(self.started), per_minute=price.per_minute,
                        per_call=price.per_call, call_type=self.call_type,
                        currency_id=self.tariff.currency_id if self.tariff else 0,
                        access_code=self.access_code, caller_id=self.caller_id,
                        called_id=self.called_id)
        self.charge = CallCharge(self.engine.store.billing, self.engine.clock, self.user.id,
                                 self.call_id, self.started, price, held)
        if await self.charge.start():
            return True
        self.charge = None
        return False

    def log_fields(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "access_code": self.access_code}

    # ------------------------------------------------------------------ time

    def now(self) -> int:
        return int(self.engine.clock.seconds())

    def time_left(self) -> float:
        end = self.deadline
        if self.charge is not None:
            end = min(end, self.charge.paid_until)
        return end - self.engine.clock.seconds()

    async def out_of_time(self) -> bool:
        """Is the call's time up (its longest duration, or what its hold pays for)?  A hold
        being extended right now is waited for first."""
        if self.charge is not None:
            await self.charge.settled_extension()
        return self.time_left() <= 0

    # ------------------------------------------------------------------ helpers

    async def use_language(self, pack: str) -> None:
        """Prompts and numbers in the language pack ``pack`` from now on."""
        await self.channel.set_variable("CHANNEL(language)", asterisk_language(pack))
        self.language = pack

    async def play(self, name: str, escape_digits: str = "") -> Playback:
        result = await self.channel.stream_file(name, escape_digits)
        if result.failed:
            log.warn("Asterisk could not play {name!r} on call {call_id} (language "
                     "{language!r}): no such sound file; upload it, or choose another "
                     "greeting for the extension", name=name, language=self.language,
                     **self.log_fields())
        return result

    async def say_goodbye(self, prompt: str) -> None:
        """A last polite word, then the line is put down; a caller already gone is fine."""
        try:
            await self.channel.stream_file(prompt)
            await self.channel.hangup()
        except Hangup:
            pass

    def record_step(self, type_name: str, ext_number: str, start: int, stop: int,
                    data: dict[str, Any] | None = None) -> None:
        """One CDR record of what the call did (an extension visited, a greeting played)."""
        record = self.cdr.step(type_name, ext_number, start, stop, data)
        if self._accounted and self.engine.radius is not None:
            self.engine.radius.activity(self, record)

    async def ask(self, prompt: str, timeout_ms: int, max_digits: int, *,
                  secret: bool = False) -> str:
        """Play ``prompt`` and read the digits typed (GET DATA), kept for the summary's
        ``DTMF=`` with the time waited (a ``secret``, a PIN, as ``x`` a digit)."""
        asked = self.engine.clock.seconds()
        typed = await self.channel.get_data(prompt, timeout_ms, max_digits)
        self.note_dtmf("x" * len(typed) if secret else typed, self.engine.clock.seconds() - asked)
        return typed

    def note_dtmf(self, entered: str, waited: float) -> None:
        """Keep what the caller typed for the summary's ``DTMF=``: the keys, then ``w`` and the
        whole seconds waited before them (a timeout is ``w`` alone)."""
        seconds = int(waited)
        self.dtmf.append(entered + (f"w{seconds}" if seconds > 0 else ""))
        if LEVEL_GATE.enabled(DTMF, self.access_code):
            log.debug("call {call_id}: caller pressed {keys!r} after {seconds} s",
                      keys=entered, seconds=seconds, xvb_kind="dtmf", **self.log_fields())

    async def take_slot(self, key: str, limit: int) -> bool:
        """A slot of a shared counter for as long as the call lasts; False when full."""
        lease = await self.engine.counters.acquire(key, limit)
        if lease is None:
            return False
        self._leases.append((key, lease))
        return True

    def add_hooks(self, hooks: list[Any]) -> None:
        self._hooks.extend(hooks)

    # ------------------------------------------------------------------ the end

    async def finish(self) -> None:
        """Stop hooks, counters, CDR summary: once, whatever happened before."""
        if self._finished:
            return
        self._finished = True
        if not self.result:  # nothing decided, and the caller is still there (a caller
            self.result = "NOUSER"  # who hung up first is ABANDONED: Engine.serve)
        for hook in self._hooks:
            await self.engine.hooks.run(hook, "stop", self)
        for key, lease in self._leases:
            try:
                await self.engine.counters.release(key, lease)
            except Exception:
                log.failure("releasing the call counter {key} failed", key=key)
        stopped = self.stopped = self.engine.clock.seconds()
        cost = 0
        if self.charge is not None:
            try:
                cost = await self.charge.settle(stopped)
            except Exception:
                log.failure("settling the cost of call {call_id} failed; its hold stays "
                            "taken", **self.log_fields())
        if self._accounted and self.engine.radius is not None:
            self.engine.radius.stopped(self, stopped)
        stop = int(stopped)
        currency = self.tariff.currency_id if self.tariff else 0
        self.cdr.common = self._common()  # with the access code tried, if not the user's
        self.cdr.summary(call_type=self.call_type, start=int(self.started), stop=stop, now=stop,
                         cost=cost, sys_cost=cost, currency_id=currency,
                         dtmf=" ".join(self.dtmf),
                         result="" if self.result == "OK" else self.result)
        await self.engine.cdr.emit(self.cdr.records)
        for then in self.after:
            try:
                done = then()
                if inspect.isawaitable(done):
                    await done
            except Exception:
                log.failure("after call {call_id}", **self.log_fields())
        if self.channel.hung_up:
            return  # nobody is left on the line for the dialplan to serve
        try:
            await self.channel.set_variable("XVB_RESULT", self.result)
        except Exception:  # the connection is gone: nothing to tell Asterisk
            pass
