"""The AMI client: one logged-in connection to one Asterisk, kept up.

:class:`AMIProtocol` is one TCP session: it reads the banner, logs in (MD5 challenge or
plain secret), matches every response to its action by ``ActionID`` (``EventList``
answers are gathered up to their ``…Complete`` event), hands events to its listener, and
sends a ``Ping`` when the line has been quiet, closing a session whose Asterisk stopped
answering.  :class:`AMIClient` is the service around it: Twisted's ``ClientService``
reconnects with capped exponential back-off when Asterisk restarts, ``Originate`` is tracked
to its ``OriginateResponse`` event, and the logs say when Asterisk refuses the login and what
to check.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from xvbd.ami.protocol import AMIProtocolError, Message, MessageParser, encode_action
from xvbd.logs import logger

log = logger("xvbd.ami")

#: Event classes xvbd asks for at login: ``call`` brings OriginateResponse and Hangup,
#: ``system`` tells when Asterisk shuts down or reloads.  Everything else stays in Asterisk.
EVENT_MASK = "call,system"

#: The events xvbd reads.  After the login it asks Asterisk (AMI ``Filter``, by the event's
#: name: Asterisk 21 and later) to send only these: the ``call`` class alone brings a
#: dozen events for every call on the system, which xvbd would read and drop.
WANTED_EVENTS = ("OriginateResponse", "Shutdown")


class AMIError(Exception):
    """Asterisk answered an action with ``Response: Error``."""

    def __init__(self, action: str, message: Message) -> None:
        self.reply = message
        super().__init__(f"{action}: {message.get('Message') or 'error'}")


class AMINotConnected(Exception):
    """There is no logged-in AMI session right now."""


class AMIConnectionLost(Exception):
    """The session ended before Asterisk answered."""


class AMILoginRefused(Exception):
    """Asterisk refused the user name or secret."""


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str
    auth: str = "md5"  # md5 | plain


@dataclass
class _Waiting:
    action: str
    d: Deferred[Message]
    reply: Message | None = None  # a list answer's response, while its events come


class AMIProtocol(Protocol):
    """One AMI session.  ``ready`` fires with the protocol once logged in, or fails."""

    transport: Any

    def __init__(self, credentials: Credentials, clock: Any, *, action_ids: Any = None,
                 on_event: Callable[[Message], None] | None = None,
                 on_lost: Callable[[AMIProtocol, Failure | None], None] | None = None,
                 keepalive: float = 20.0, reply_timeout: float = 10.0,
                 name: str = "asterisk") -> None:
        self.credentials = credentials
        self.clock = clock
        self.on_event = on_event or (lambda message: None)
        self.on_lost = on_lost
        self.keepalive = keepalive
        self.reply_timeout = reply_timeout
        self.name = name
        self.ready: Deferred[AMIProtocol] = Deferred()
        self.banner = ""
        self.logged_in = False
        self.lost = False
        self._ids = action_ids or itertools.count(1)
        self._parser = MessageParser()
        self._waiting: dict[str, _Waiting] = {}
        self._quiet_check: Any = None
        self._heard = 0.0

    # ------------------------------------------------------------------ wire

    def connectionMade(self) -> None:
        self._heard = self.clock.seconds()

    def dataReceived(self, data: bytes) -> None:
        self._heard = self.clock.seconds()
        had_banner = self._parser.banner is not None
        try:
            messages = list(self._parser.feed(data))
        except AMIProtocolError as exc:
            log.error("{name}: the AMI peer sent something that is not AMI ({error}); "
                      "closing", name=self.name, error=str(exc))
            self.transport.abortConnection()
            return
        if not had_banner and self._parser.banner is not None:
            self.banner = self._parser.banner
            if not self.banner.startswith("Asterisk Call Manager/"):
                log.warn("{name}: unexpected AMI banner {banner!r}; is AMI_HOST:AMI_PORT "
                         "Asterisk's manager port?", name=self.name, banner=self.banner)
            Deferred.fromCoroutine(self._login())
        for message in messages:
            self._dispatch(message)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        if self._quiet_check is not None and self._quiet_check.active():
            self._quiet_check.cancel()
        waiting, self._waiting = self._waiting, {}
        for entry in waiting.values():
            entry.d.errback(AMIConnectionLost(f"{entry.action}: the AMI connection closed "
                                              "before Asterisk answered"))
        if not self.ready.called:
            self.ready.errback(AMIConnectionLost("the AMI connection closed during login"))
        if self.on_lost is not None:
            self.on_lost(self, reason)

    def _dispatch(self, message: Message) -> None:
        action_id = message.action_id
        entry = self._waiting.get(action_id) if action_id else None
        if "Response" in message and "Event" not in message:  # OriginateResponse has both
            if entry is None:
                log.debug("{name}: a response to no action of ours: {fields}", name=self.name,
                          fields=message.as_dict())
                return
            if message.response.lower() == "error":
                del self._waiting[action_id]
                entry.d.errback(AMIError(entry.action, message))
            elif message.get("EventList").lower() == "start":
                entry.reply = message
            else:
                del self._waiting[action_id]
                entry.d.callback(message)
            return
        if entry is not None and entry.reply is not None:
            entry.reply.events.append(message)
            if message.get("EventList").lower() == "complete":
                del self._waiting[action_id]
                entry.d.callback(entry.reply)
            return
        if message.event:
            try:
                self.on_event(message)
            except Exception:
                log.failure("{name}: handling the AMI event {event} failed", name=self.name,
                            event=message.event)

    # ------------------------------------------------------------------ actions

    def send(self, action: str, fields: list[tuple[str, str]] | None = None,
             timeout: float | None = None, action_id: str = "") -> Deferred[Message]:
        """Send an action; the Deferred fires with its response (``Response: Error`` fails
        it with :class:`AMIError`; no answer in ``timeout`` s fails it with TimeoutError).
        A list answer comes whole: its events are the message's ``events``."""
        if self.lost or self.transport is None:
            raise AMINotConnected(f"{action}: not connected")
        action_id = action_id or self.new_action_id()
        data = encode_action(action, [*(fields or []), ("ActionID", action_id)])
        d: Deferred[Message] = Deferred()
        self._waiting[action_id] = _Waiting(action, d)
        self.transport.write(data)
        wait = self.reply_timeout if timeout is None else timeout
        if wait > 0:
            d.addTimeout(wait, self.clock, onTimeoutCancel=lambda result, t: self._late(
                action_id, action, t))
        return d

    def new_action_id(self) -> str:
        return f"xvb-{next(self._ids)}"

    def _late(self, action_id: str, action: str, timeout: float) -> Any:
        self._waiting.pop(action_id, None)
        return Failure(DeferredTimeout(f"{action}: no answer from Asterisk in {timeout:g} s"))

    # ------------------------------------------------------------------ login

    async def _login(self) -> None:
        creds = self.credentials
        try:
            if creds.auth == "md5":
                challenge = await self.send("Challenge", [("AuthType", "MD5")])
                key = hashlib.md5((challenge.get("Challenge") + creds.secret).encode()
                                  ).hexdigest()
                fields = [("AuthType", "MD5"), ("Username", creds.username), ("Key", key)]
            else:
                fields = [("Username", creds.username), ("Secret", creds.secret)]
            # Asterisk waits a second before refusing a login: give it more than that.
            await self.send("Login", [*fields, ("Events", EVENT_MASK)],
                            timeout=max(self.reply_timeout, 5.0))
        except AMIError as exc:
            self.ready.errback(AMILoginRefused(exc.reply.get("Message") or str(exc)))
            self.transport.loseConnection()
            return
        except Exception as exc:
            if not self.ready.called:
                self.ready.errback(exc)
            if not self.lost:
                self.transport.abortConnection()
            return
        self.logged_in = True
        self._quiet_check = self.clock.callLater(self.keepalive, self._check_quiet)
        await self._filter_events()
        if not self.lost:
            self.ready.callback(self)

    async def _filter_events(self) -> None:
        """Ask for :data:`WANTED_EVENTS` only.  An Asterisk that refuses (older than 21,
        or a manager user without ``write = system``) keeps sending the whole classes:
        said once at INFO, and nothing else changes."""
        for name in WANTED_EVENTS:
            try:
                await self.send("Filter", [("Operation", "Add"), ("Filter", ""),
                                           ("MatchCriteria", f"name({name}),method(none)")])
            except AMIError as exc:
                log.info("{name}: Asterisk refused the event filter ({why}); every event "
                         "of the classes {mask} keeps coming (harmless, more work: give the "
                         "manager user write = system, on Asterisk 21 or later)",
                         name=self.name, why=exc.reply.get("Message") or "no reason",
                         mask=EVENT_MASK)
                return
            except (AMIConnectionLost, DeferredTimeout):
                return  # the session is going; keep-alive or the reconnection deals with it

    # ------------------------------------------------------------------ keep-alive

    def _check_quiet(self) -> None:
        """Ping when nothing was heard for ``keepalive`` s; no answer closes the session
        (ClientService then reconnects)."""
        self._quiet_check = None
        if self.lost:
            return
        quiet = self.clock.seconds() - self._heard
        if quiet < self.keepalive:
            self._quiet_check = self.clock.callLater(self.keepalive - quiet, self._check_quiet)
            return
        Deferred.fromCoroutine(self._ping())

    async def _ping(self) -> None:
        try:
            await self.send("Ping", timeout=self.reply_timeout)
        except AMIConnectionLost:
            return
        except Exception as exc:
            log.warn("{name}: Asterisk did not answer a keep-alive Ping ({error}); "
                     "reconnecting", name=self.name, error=str(exc))
            if not self.lost:
                self.transport.abortConnection()
            return
        if not self.lost:
            self._quiet_check = self.clock.callLater(self.keepalive, self._check_quiet)


class _AMIFactory(Factory):
    noisy = False  # "Starting factory" on every reconnection says nothing; the client logs

    def __init__(self, client: AMIClient) -> None:
        self.client = client

    def buildProtocol(self, addr: Any) -> AMIProtocol:
        proto = self.client.new_protocol()
        proto.factory = self
        return proto


@dataclass(frozen=True)
class OriginateResult:
    """What became of an origination.

    ``status``: ``answered``, ``busy``, ``noanswer``, ``failed`` (Asterisk said so),
    ``lost`` (the AMI session ended or no OriginateResponse came in time: the call may or
    may not have happened), or ``unplaced`` (there was no AMI session: nothing was sent).
    ``reason`` is Asterisk's code (4 answered, 5 busy, 3 rang with no answer, 1 hung up
    before answering, 8 congestion, 0 no such channel).
    """

    status: str
    reason: int = -1
    uniqueid: str = ""
    channel: str = ""
    message: str = ""


#: Asterisk's originate reason (the control frame that ended the dialing) as a status.
REASONS = {4: "answered", 5: "busy", 3: "noanswer", 1: "noanswer", 8: "failed", 0: "failed"}


class AMIClient(Service):
    """The logged-in AMI session to one Asterisk, reconnected when it goes."""

    def __init__(self, node_id: str, host: str, port: int, credentials: Credentials, *,
                 reactor: Any, clock: Any = None, keepalive: float = 20.0,
                 reply_timeout: float = 10.0, max_backoff: float = 60.0,
                 jitter: Callable[[], float] = random.random) -> None:
        self.node_id = node_id
        self.host, self.port = host, port
        self.credentials = credentials
        self.clock = clock or reactor
        self.keepalive = keepalive
        self.reply_timeout = reply_timeout
        self.protocol: AMIProtocol | None = None
        self.listeners: list[Callable[[Message], None]] = []
        #: Called each time a session is logged in (at start, after Asterisk restarts).
        self.on_connected: list[Callable[[], None]] = []
        self.sessions = 0  # logged-in sessions so far (reconnections + 1)
        #: Sessions that went wrong while running, by kind: ``login_refused``,
        #: ``ended_before_login``, ``lost`` (``/metrics``).
        self.errors: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._originating: dict[str, Deferred[OriginateResult]] = {}
        self._refusals = 0  # logins refused in a row
        self._waiters: list[Deferred[AMIProtocol]] = []
        backoff = backoffPolicy(initialDelay=1.0, maxDelay=max_backoff, factor=2.0,
                                jitter=jitter)  # up to 1 s more, so nodes do not come at once
        # ClientService counts failed TCP connections; a refused login is a connection that
        # worked, so the refusals in a row are counted here and make the wait grow too.
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=10)
        self._service = ClientService(
            endpoint, _AMIFactory(self),
            retryPolicy=lambda attempt: backoff(max(attempt, self._refusals)),
            clock=self.clock)
        self.setName(f"ami:{node_id}")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        p = self.protocol
        return p is not None and p.logged_in and not p.lost

    def startService(self) -> None:
        super().startService()
        self._service.startService()

    def stopService(self) -> Any:
        super().stopService()
        proto = self.protocol
        if proto is not None and self.connected:
            proto.send("Logoff", timeout=1.0).addErrback(lambda failure: None)
        return self._service.stopService()

    def when_connected(self) -> Deferred[AMIProtocol]:
        """Fires once there is a logged-in session (at once when there is one)."""
        d: Deferred[AMIProtocol] = Deferred()
        if self.protocol is not None and self.connected:
            d.callback(self.protocol)
        else:
            self._waiters.append(d)
        return d

    # ------------------------------------------------------------------ sessions

    def new_protocol(self) -> AMIProtocol:
        proto = AMIProtocol(self.credentials, self.clock, action_ids=self._ids,
                            on_event=self._event, on_lost=self._lost,
                            keepalive=self.keepalive, reply_timeout=self.reply_timeout,
                            name=f"AMI {self.where}")
        self._follow_login(proto)
        return proto

    def _follow_login(self, proto: AMIProtocol) -> None:
        def ready(p: AMIProtocol) -> AMIProtocol:
            self.protocol = p
            self.sessions += 1
            log.info("AMI connected to {where} as {user} ({banner}) for node {node}",
                     where=self.where, user=self.credentials.username, banner=p.banner,
                     node=self.node_id)
            if self._refusals:
                log.info("AMI login to {where} accepted after {n} refusal(s)",
                         where=self.where, n=self._refusals)
                self._refusals = 0
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(p)
            for hook in list(self.on_connected):
                try:
                    hook()
                except Exception:
                    log.failure("after the AMI login to {where}", where=self.where)
            return p

        def refused(failure: Failure) -> None:
            if failure.check(AMILoginRefused):
                self._refusals += 1
                self.errors["login_refused"] += 1
                log.error("Asterisk at {where} refused the AMI login of {user!r}: {why}. "
                          "Check [ASTERISK] AMI_USERNAME, AMI_SECRET and AMI_AUTH against "
                          "that user in Asterisk's manager.conf (it needs read=call,system "
                          "and write=originate,system); retrying with back-off",
                          where=self.where, user=self.credentials.username,
                          why=failure.getErrorMessage())
            elif self.running:
                self.errors["ended_before_login"] += 1
                log.warn("AMI session to {where} ended before login: {why}; reconnecting "
                         "with back-off", where=self.where, why=failure.getErrorMessage())
            else:  # this process is stopping: its login in flight is cut, as it should be
                log.debug("AMI login to {where} cut by the stop", where=self.where)

        proto.ready.addCallbacks(ready, refused)

    def _lost(self, proto: AMIProtocol, reason: Failure | None) -> None:
        if self.protocol is not proto:
            return  # never logged in: the login said why
        self.protocol = None
        if self.running:
            self.errors["lost"] += 1
            why = reason.getErrorMessage() if reason is not None else "closed"
            log.warn("AMI connection to {where} lost ({why}); reconnecting with back-off",
                     where=self.where, why=why)
        waiting, self._originating = self._originating, {}
        for d in waiting.values():
            d.callback(OriginateResult("lost", message="the AMI connection was lost before "
                                       "Asterisk reported the call"))

    # ------------------------------------------------------------------ events

    def _event(self, message: Message) -> None:
        if message.event == "OriginateResponse":
            d = self._originating.pop(message.action_id, None)
            if d is not None:
                d.callback(_originate_result(message))
        elif message.event == "Shutdown":
            log.warn("Asterisk at {where} is shutting down ({how})", where=self.where,
                     how=message.get("Shutdown") or "?")
        for listener in list(self.listeners):
            try:
                listener(message)
            except Exception:
                log.failure("an AMI event listener failed on {event}", event=message.event)

    def subscribe(self, listener: Callable[[Message], None]) -> Callable[[], None]:
        """Call ``listener`` with every event; returns the function that stops it."""
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    # ------------------------------------------------------------------ actions

    async def action(self, name: str, fields: list[tuple[str, str]] | None = None,
                     timeout: float | None = None) -> Message:
        """One action on the current session; :class:`AMINotConnected` when there is
        none (the caller decides whether to wait for the next one)."""
        proto = self.protocol
        if proto is None or not self.connected:
            raise AMINotConnected(f"no AMI session to {self.where}")
        return await proto.send(name, fields, timeout)

    async def command(self, cli: str) -> list[str]:
        """A CLI command's output lines (the old and the Asterisk 14+ shape alike)."""
        reply = await self.action("Command", [("Command", cli)])
        return reply.output

    async def originate(self, *, channel: str, context: str, exten: str, priority: int = 1,
                        variables: dict[str, str] | None = None, caller_id: str = "",
                        timeout: float = 30.0) -> OriginateResult:
        """Dial ``channel`` and, once answered, send it to ``context,exten,priority``.

        Asynchronous on Asterisk's side (``Async: true``); this waits for the
        ``OriginateResponse`` (``timeout`` s of ringing, plus a margin).  It never raises for
        the call's fate: that is the result's status.
        """
        fields = [("Channel", channel), ("Context", context), ("Exten", exten),
                  ("Priority", str(priority)), ("Timeout", str(int(timeout * 1000)))]
        if caller_id:
            fields.append(("CallerID", caller_id))
        fields += [("Variable", f"{name}={value}") for name, value in
                   (variables or {}).items()]
        fields.append(("Async", "true"))
        proto = self.protocol
        if proto is None or not self.connected:
            return OriginateResult("unplaced", message=f"no AMI session to {self.where}")
        action_id = proto.new_action_id()
        waiter: Deferred[OriginateResult] = Deferred()
        self._originating[action_id] = waiter  # before sending: the event may come first
        try:
            await proto.send("Originate", fields, action_id=action_id)
        except (AMIError, ValueError) as exc:
            self._originating.pop(action_id, None)
            return OriginateResult("failed", message=str(exc))
        except Exception as exc:  # lost, or no answer to the action itself
            self._originating.pop(action_id, None)
            return OriginateResult("lost", message=str(exc))
        if not waiter.called:
            waiter.addTimeout(timeout + 30.0, self.clock, onTimeoutCancel=lambda result, t:
                              OriginateResult("lost", message=f"no OriginateResponse in "
                                              f"{t:g} s"))
        try:
            return await waiter
        finally:
            self._originating.pop(action_id, None)


def _originate_result(message: Message) -> OriginateResult:
    try:
        reason = int(message.get("Reason", "-1"))
    except ValueError:
        reason = -1
    if message.response.lower() == "success":
        status = "answered"
    else:
        status = REASONS.get(reason, "failed")
        if status == "answered":  # reason 4 with a Failure: Asterisk could not go on
            status = "failed"
    return OriginateResult(status, reason, message.get("Uniqueid"), message.get("Channel"),
                           message.response)
