"""Placing outbound calls (CallBlast, Callback) through this node's Asterisk, and seeing
each to an outcome.

A call is an AMI ``Originate`` of ``Local/<phone>@<group's dialout context>/n`` that, once
answered, continues in the shipped ``xvb-callblast`` / ``xvb-callback`` context, which
hands it to xvbd over FastAGI with the attempt's id and token.  The outcome of an attempt
is written exactly once, by whoever learns it first:

* the call's FastAGI session, as soon as it starts (answered, or an answering machine);
* the ``OriginateResponse`` for busy, no answer, failure;
* a watchdog when Asterisk said "answered" but the call never reached xvbd (a dialplan
  mistake: logged), or when the AMI session was lost with the call in the air: after the
  ring time has surely passed, the attempt is given back without counting it (Asterisk
  restarted: the phone is tried again; it was never reached, or the FastAGI session would
  have settled it first).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from xvbd.ami.client import AMIClient
from xvbd.counters import Counters
from xvbd.engine.dialing import valid_phone
from xvbd.logs import logger
from xvbd.nodestats import node_key
from xvbd.store.accounts import Node
from xvbd.store.db import DatabaseUnavailable

log = logger("xvbd.outbound")

#: Seconds between Asterisk's "answered" and the call's FastAGI session, at most.
ANSWER_GRACE = 30.0
#: Seconds past the ring time after which a call lost with the AMI session is over.
LOST_GRACE = 30.0
#: Seconds a claim outlives the ring time (a process that dies leaves it this long).
CLAIM_MARGIN = 120
CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


def new_token(server_id: str) -> str:
    """An attempt's token: who placed it, and 16 random hex digits nobody can guess."""
    return f"{server_id[:40]}:{secrets.token_hex(8)}"


def local_channel(phone: str, context: str) -> str:
    """The channel that dials ``phone`` through ``context`` (``/n``: Asterisk keeps the
    Local channel, so the answered side runs our context while the callee is bridged)."""
    if not valid_phone(phone):
        raise ValueError(f"{phone!r} is not a phone number (up to 32 of 0-9 * # +)")
    if not CONTEXT.fullmatch(context):
        raise ValueError(f"{context!r} is not an Asterisk context name")
    return f"Local/{phone}@{context}/n"


def caller_id(number: str, name: str = "") -> str:
    """A CallerID header value; characters that would break it are dropped."""
    clean_number = re.sub(r"[^0-9A-Za-z*#+]", "", number)[:40]
    clean_name = re.sub(r'["<>\r\n\\]', "", name)[:60]
    return f'"{clean_name}" <{clean_number}>' if clean_name else clean_number


def report(failure: Failure, what: str) -> None:
    """A background job's failure in the log: the database being away is a warning that
    says so (it comes back, and so do the calls); anything else with its traceback."""
    if failure.check(DatabaseUnavailable):
        log.warn("{what}: {why}", what=what, why=failure.getErrorMessage())
    else:
        log.failure(what, failure)


class NodeRoom:
    """Whether this node may take another outbound call: calls in progress (the shared
    node counter, plus calls still ringing) and load averages, each below ``threshold``
    of the node's limit (``[CALLBLAST] LOAD_THRESHOLD``; a limit of 0 is no limit).
    ``node`` reads a node's row: the engine's ``Directory.node`` (cached a few seconds, as
    for inbound calls), so a placed call costs no query."""

    def __init__(self, server_id: str, node: Callable[[str], Awaitable[Node | None]],
                 counters: Counters,
                 threshold: float, loadavg: Callable[[], tuple[float, float, float]]
                 = os.getloadavg) -> None:
        self.server_id = server_id
        self.node = node
        self.counters = counters
        self.threshold = threshold
        self.loadavg = loadavg

    async def why_full(self, ringing: int) -> str:
        """'' when there is room for one more call; else what is full."""
        node = await self.node(self.server_id)
        if node is None:
            return ""
        if node.limit_calls > 0:
            busy = await self.counters.current(node_key(self.server_id)) + ringing
            allowed = self.threshold * node.limit_calls
            if busy + 1 > allowed + 1e-9:
                return (f"{busy} calls in progress; the node allows {node.limit_calls} × "
                        f"{self.threshold:g} = {allowed:g}")
        limits = (node.limit_la_1, node.limit_la_5, node.limit_la_10)
        if any(limit > 0 for limit in limits):
            for minutes, limit, now in zip((1, 5, 10), limits, self.loadavg(), strict=True):
                if limit > 0 and now >= self.threshold * limit:
                    return (f"load average ({minutes} min) {now:.2f}; the node allows "
                            f"{limit:g} × {self.threshold:g}")
        return ""


@dataclass
class Placement:
    """One call to place: whom, through which context, and where it lands."""

    phone: str
    dialout_context: str
    context: str  # xvb-callblast | xvb-callback
    variables: dict[str, str]
    caller_id: str
    ring_timeout: int
    what: str  # for logs: "callblast item 7 phone 12"


#: finish(result, counted, detail) -> whether this report settled the attempt.
Finish = Callable[[str, bool, str], Awaitable[bool]]


class Dialer:
    """Originates through the node's AMI client; knows how many calls are ringing."""

    def __init__(self, ami: AMIClient, clock: Any) -> None:
        self.ami = ami
        self.clock = clock
        self.ringing = 0
        self.attempts: set[Deferred[str]] = set()  # calls being followed now

    @property
    def ready(self) -> bool:
        return self.ami.connected

    def launch(self, placement: Placement, finish: Finish) -> Deferred[str]:
        """Place the call and follow it in the background (see :meth:`follow`)."""
        attempt = Deferred.fromCoroutine(self.follow(placement, finish))
        self.attempts.add(attempt)

        def forget(result: Any) -> Any:
            self.attempts.discard(attempt)
            return result
        attempt.addBoth(forget)
        attempt.addErrback(report, f"{placement.what}: following the call to "
                           f"{placement.phone} failed; its claim lapses and it is tried again")
        return attempt

    async def follow(self, placement: Placement, finish: Finish) -> str:
        """Place the call and see its attempt settled; returns what was learnt."""
        placed_at = self.clock.seconds()
        try:
            channel = local_channel(placement.phone, placement.dialout_context)
        except ValueError as exc:
            await finish("failed", True, str(exc))
            return "failed"
        self.ringing += 1
        try:
            result = await self.ami.originate(
                channel=channel, context=placement.context, exten="s",
                variables=placement.variables, caller_id=placement.caller_id,
                timeout=placement.ring_timeout)
        finally:
            self.ringing -= 1
        if result.status == "answered":
            await deferLater(self.clock, ANSWER_GRACE)
            if await finish("answered", True, "answered, but the call never reached xvbd"):
                log.warn("{what}: Asterisk answered the call to {phone} but it never came to "
                         "xvbd over FastAGI; check the {context} context of the dialplan "
                         "(etc/asterisk/extensions.conf)", what=placement.what,
                         phone=placement.phone, context=placement.context)
            return "answered"
        if result.status == "unplaced":  # the AMI session went between claim and call
            await finish("failed", False, result.message)
            return "unplaced"
        if result.status == "lost":
            wait = placed_at + placement.ring_timeout + LOST_GRACE - \
                self.clock.seconds()
            if wait > 0:
                await deferLater(self.clock, wait)
            if await finish("failed", False, f"not known ({result.message}); tried again"):
                log.info("{what}: the call to {phone} was in the air when the AMI session "
                         "ended ({why}); it will be tried again", what=placement.what,
                         phone=placement.phone, why=result.message)
            return "lost"
        detail = f"Asterisk reason {result.reason}" if result.reason >= 0 else result.message
        await finish(result.status, True, detail)
        return result.status
