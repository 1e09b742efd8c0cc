"""The FastAGI listener's factory: one protocol per Asterisk connection, one engine call per
session, and the list of live sessions so a stop can let calls finish (up to
``[AGI] SHUTDOWN_GRACE`` seconds) and then end the rest with their records written."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ServerFactory
from twisted.python.failure import Failure

from xvbd.agi.calltask import run_call
from xvbd.agi.channel import AGIChannel
from xvbd.agi.protocol import EnvDeadlines, FastAGIProtocol
from xvbd.logs import logger
from xvbd.timings import Durations

log = logger("xvbd.agi")


class FastAGIFactory(ServerFactory):
    protocol = FastAGIProtocol

    def __init__(self, engine: Any, clock: Any, env_timeout: float = 10.0) -> None:
        self.engine = engine
        self.clock = clock
        self.env_deadlines = EnvDeadlines(clock, env_timeout)
        self.sessions: set[Any] = set()
        self._calls: dict[Any, Deferred[None]] = {}
        self._idle: list[Deferred[None]] = []
        #: Seconds from Asterisk's answer (or the environment) to xvbd's next command on
        #: that call: the engine's own time per command (FastAGIProtocol measures it).
        self.turnaround = Durations()

    # ------------------------------------------------------------------ sessions

    def session_started(self, session: Any) -> None:
        self.sessions.add(session)

    def start_session(self, session: FastAGIProtocol) -> None:
        """The environment is in: run the call, then close the socket ourselves."""
        assert session.env is not None
        call = run_call(self.engine.serve(session.env, AGIChannel(session)))

        def done(result: Any) -> None:
            self._calls.pop(session, None)
            session.close()
            if isinstance(result, Failure):
                log.failure("FastAGI session failed", result)
            self._check_idle()

        if not call.called:
            self._calls[session] = call
        call.addBoth(done)

    def session_ended(self, session: Any) -> None:
        self.sessions.discard(session)
        self._check_idle()

    @property
    def busy(self) -> bool:
        """A socket is open or a call's stop work is still running."""
        return bool(self.sessions or self._calls)

    def _check_idle(self) -> None:
        if not self.busy:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    async def finish(self, session: Any, reason: str) -> None:
        """End one call now: its socket closes, its pending commands fail with Hangup, its
        stop work (records) runs, then it is gone."""
        log.warn("ending call on {channel}: {reason}",
                 channel=session.env.channel if getattr(session, "env", None) else "?",
                 reason=reason)
        call = self._calls.get(session)
        session.close()
        if call is not None:
            await call

    # ------------------------------------------------------------------ stop

    def when_idle(self) -> Deferred[None]:
        """Fires when no call is in progress (at once if none is)."""
        d: Deferred[None] = Deferred(lambda cancelled: self._idle.remove(cancelled))
        if not self.busy:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the live calls to end, then finish the rest."""
        if not self.busy:
            return
        log.info("waiting up to {grace} s for {n} call(s) in progress", grace=grace,
                 n=len(self.sessions))
        if grace > 0:
            idle = self.when_idle()
            idle.addTimeout(grace, self.clock, onTimeoutCancel=lambda *_: None)
            await idle
        if self.sessions:
            log.warn("ending {n} call(s) still in progress after {grace} s: xvbd is stopping",
                     n=len(self.sessions), grace=grace)
            for session in list(self.sessions):
                await self.finish(session, "xvbd is stopping")
        await self.when_idle()
