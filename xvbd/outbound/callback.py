"""Callback: call back the callers who asked for it (the Callback extension type).

A request is dialed a few seconds after the call that made it ends (the engine kicks the
dialer), or by the sweep that runs every minute (requests made on another xvbd process of
this node, retries, requests waiting for Asterisk to come back).  The call goes out through
the group's dialout context and, answered, lands in the extension the tenant chose; it is
billed as a CallBack call.  Ring time, retries and the caller id shown come from the
Callback extension's settings.

Each attempt's outcome is logged (INFO) with the request, the tenant, the number and what
comes next: answered (logged by the answered call, :func:`xvbd.engine.outbound.callback`),
busy, no answer, failed (with Asterisk's reason).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater

from xvbd.config import Settings
from xvbd.engine.types import SettingsError, settings_of
from xvbd.engine.types.callback import CallbackSettings
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
from xvbd.store.features import CallbackRequest
from xvbd.store.outbound import DueCallback

log = logger("xvbd.callback")

SWEEP_EVERY = 60.0
#: Seconds after the asking call ends before its callback is placed (the caller's line
#: must be free again).
KICK_DELAY = 3.0


#: An attempt's result as the log says it.
OUTCOMES = {"answered": "answered", "busy": "busy", "noanswer": "no answer",
            "failed": "failed"}


def log_outcome(request: CallbackRequest, result: str, detail: str, counted: bool,
                max_attempts: int) -> None:
    """One line for an attempt's outcome: the request as it is after it."""
    if request.status == "done":
        then = "done"
    elif request.status == "failed":
        then = f"given up after {request.attempts} attempt(s)"
    elif counted:
        then = (f"tried again in {max(0, request.next_attempt_at - request.updated_at)} s "
                f"({request.attempts} of {max_attempts} attempts made)")
    else:
        then = "tried again; this attempt does not count"
    log.info("callback {id} of user {user} to {phone}: {outcome}{detail}; {then}",
             id=request.id, user=request.user_id, phone=request.phone,
             outcome=OUTCOMES.get(result, result), detail=f" ({detail})" if detail else "",
             then=then)


def callback_settings(due: DueCallback) -> CallbackSettings:
    try:
        return settings_of(CallbackSettings, due.extension_settings or "{}")
    except SettingsError:
        return CallbackSettings()


class CallbackDialer(Service):
    name = "callback"

    def __init__(self, settings: Settings, store: Store, dialer: Dialer, room: NodeRoom,
                 clock: Any) -> None:
        self.settings = settings
        self.store = store
        self.dialer = dialer
        self.room = room
        self.clock = clock
        self.server_id = settings.common.server_id
        self._sweeping: Deferred[int] | None = None
        self._again = False
        self._kick: Any = None
        self._loop = LoopingCall(self.sweep_soon)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()
        self._loop.start(SWEEP_EVERY, now=False)
        self.dialer.ami.on_connected.append(self.kick)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        if self.kick in self.dialer.ami.on_connected:
            self.dialer.ami.on_connected.remove(self.kick)
        if self._kick is not None and self._kick.active():
            self._kick.cancel()
        return self._sweeping

    def kick(self) -> None:
        """A caller asked for a callback: place it shortly (after their call ends)."""
        if not self.running or (self._kick is not None and self._kick.active()):
            return
        self._kick = self.clock.callLater(KICK_DELAY, self.sweep_soon)

    def sweep_soon(self) -> Deferred[int] | None:
        if self._sweeping is not None:
            self._again = True  # once this sweep ends
            return None
        sweep = Deferred.fromCoroutine(self.sweep())
        self._sweeping = sweep

        def done(result: Any) -> Any:
            self._sweeping = None
            if self._again and self.running:
                self._again = False
                self.sweep_soon()
            return result
        sweep.addBoth(done)
        sweep.addErrback(report, "callback sweep failed; the next one tries again")
        return sweep

    async def sweep(self) -> int:
        """Place the due callbacks of this node; how many were placed."""
        if not self.dialer.ready:
            return 0
        limit = self.settings.callblast.max_calls
        placed = 0
        for due in await self.store.outbound.due_callbacks(
                self.server_id, int(self.clock.seconds()), limit):
            if not self.running or not self.dialer.ready:
                break
            full = await self.room.why_full(self.dialer.ringing)
            if full:
                log.info("callbacks wait: node load: {why}", why=full)
                break
            settings = callback_settings(due)
            now = int(self.clock.seconds())
            token = new_token(self.server_id)
            request = due.request
            if not due.dialout_context:
                log.warn("callback {id} of user {user} cannot be placed: the group has no "
                         "dialout context", id=request.id, user=request.user_id)
                continue
            if not await self.store.outbound.claim_callback(
                    request.id, token, now, now + settings.ring_timeout + CLAIM_MARGIN):
                continue  # taken by another process
            placement = Placement(
                phone=request.phone, dialout_context=due.dialout_context,
                context="xvb-callback",
                variables={"__XVB_AC": due.access_code, "XVB_CALL_TYPE": "callback",
                           "XVB_CB_REQUEST": str(request.id), "XVB_CB_TOKEN": token},
                caller_id=caller_id(settings.caller_id or due.voice_number),
                ring_timeout=settings.ring_timeout,
                what=f"callback {request.id} of user {request.user_id}")
            self._follow(placement, request.id, token, settings)
            placed += 1
            await deferLater(self.clock, self.settings.callblast.sleep)
        return placed

    def _follow(self, placement: Placement, request_id: int, token: str,
                settings: CallbackSettings) -> None:
        async def finish(result: str, counted: bool, detail: str) -> bool:
            kept = await self.store.outbound.finish_callback(
                request_id, token, result, int(self.clock.seconds()),
                max_attempts=1 + settings.retries,
                retry_in=settings.retry_interval if counted else 0, counted=counted)
            if kept is not None:  # this report settled the attempt (else the call did)
                log_outcome(kept, result, detail, counted, 1 + settings.retries)
            return kept is not None

        self.dialer.launch(placement, finish)
