"""The Asterisk side of the Asterisk Manager Interface, for tests: a TCP server on loopback
that speaks AMI as Asterisk 22 does, byte for byte as in the recorded sessions
``../shared/asterisk-transcripts/ami-0*.txt``.

Like Asterisk it sends the one-line banner; takes Login (plain, or MD5 after Challenge) and
answers a bad one only after a pause, then closes; says ``Permission denied`` to anything
but Login/Challenge/Logoff before login; keeps an event mask per session (``Events:`` at
Login, or the Events action) and sends an event only to logged-in sessions whose mask lets
one of its ``Privilege`` classes through — OriginateResponse included, to every such
session.  Originate is asynchronous (``queued`` at once, the events later) or synchronous:
then the reply waits for the outcome and the session handles nothing else meanwhile, its
events held back, as Asterisk's session thread is busy.  How each origination ends is the
test's to say through ``on_originate``; delays run on ``clock``.  ``chunking`` decides how
the output is cut into writes, to exercise the client's buffering.

Nothing here comes from ``xvbd.ami``: the peer has its own small parser.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

Fields = list[tuple[str, str]]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
VERSION = "22.10.1"
ALL: frozenset[str] = frozenset({"all"})
CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config",
                     "dtmf", "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc",
                     "test", "security", "message"})
TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})
FALSE = frozenset({"no", "false", "n", "f", "0", "off"})
STATE_DESC = {0: "Down", 4: "Ring", 6: "Up"}
#: The Hangup cause of the channels of a failed origination, by OriginateResponse reason.
FAILURE_CAUSE = {0: 0, 1: 16, 3: 19, 5: 17, 8: 34}
CAUSE_TEXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy",
              19: "User alerting, no answer", 34: "Circuit/channel congestion"}
SPLIT_GAP = 0.002  # real seconds between the pieces of a split message


# ---------------------------------------------------------------------- wire format

def parse_messages(buffer: bytes) -> tuple[list[Fields], bytes]:
    """Cut the complete messages off the front of ``buffer``: header lines ended by an empty
    line.  Lines may end in CRLF or a bare LF, as Asterisk accepts.  Returns the messages and
    what is left over."""
    messages: list[Fields] = []
    current: Fields = []
    start = consumed = 0
    while (end := buffer.find(b"\n", start)) >= 0:
        line = buffer[start:end].rstrip(b"\r").decode("utf-8", "replace")
        start = end + 1
        if line:
            key, _, value = line.partition(":")
            current.append((key.strip(), value.lstrip(" \t")))
        else:
            messages.append(current)
            current, consumed = [], start
    return messages, buffer[consumed:]


def header(fields: Fields, name: str) -> str:
    """The value of the first header called ``name`` (any case), or ''."""
    wanted = name.lower()
    return next((value for key, value in fields if key.lower() == wanted), "")


def serialize(fields: Iterable[tuple[str, str]]) -> bytes:
    """One message: ``Key: Value`` lines and the empty line."""
    return "".join(f"{key}: {value}\r\n" for key, value in fields).encode() + b"\r\n"


def event_mask(text: str) -> frozenset[str] | None:
    """The classes an ``Events``/``EventMask`` value selects, as Asterisk reads it: on/yes →
    all, off/no → none, else a comma list of class names, exact and case-sensitive ("all"
    among them → all); None for an empty value (Asterisk then leaves the mask as it is).
    A number is read as all (non-zero) or none: the peer has no bit values."""
    if not text.strip():
        return None
    if text.isdigit():
        return ALL if int(text) else frozenset()
    if text.lower() in FALSE:
        return frozenset()
    if text.lower() in TRUE:
        return ALL
    names = set(text.split(","))
    return ALL if "all" in names else frozenset(names & CLASSES)


def lets_through(mask: frozenset[str], privilege: str) -> bool:
    """Whether a session with this mask gets an event with this ``Privilege`` value."""
    return mask == ALL or bool(mask & (set(privilege.split(",")) - {"all"}))


_CRITERION = re.compile(r"(action|name|header|method)\(([^()]*)\)")
_METHODS = ("regex", "exact", "starts_with", "ends_with", "contains", "none")


@dataclass
class _Filter:
    exclude: bool
    name: str
    header: str
    method: str
    pattern: str

    def matches(self, fields: Fields, data: bytes) -> bool:
        if self.name and header(fields, "Event").lower() != self.name.lower():
            return False
        if self.method == "none":
            return True
        if self.header:
            texts = [value for key, value in fields if key.lower() == self.header.lower()]
        else:
            texts = data.decode(errors="replace").split("\r\n")
        test = {"regex": lambda t: re.search(self.pattern, t) is not None,
                "exact": lambda t: t == self.pattern,
                "starts_with": lambda t: t.startswith(self.pattern),
                "ends_with": lambda t: t.endswith(self.pattern),
                "contains": lambda t: self.pattern in t}[self.method]
        return any(test(text) for text in texts)


class EventFilters:
    """A session's event filters, as manager.c keeps and applies them: none lets every
    event through; include filters only: an event must match one; exclude filters only:
    it must match none; both: one include and no exclude."""

    def __init__(self) -> None:
        self.include: list[_Filter] = []
        self.exclude: list[_Filter] = []

    def add(self, criteria: str, pattern: str) -> str:
        """Add one (Filter's MatchCriteria and Filter); the error Asterisk answers, or ''."""
        found = dict(_CRITERION.findall(criteria))
        if criteria and (_CRITERION.sub("", criteria).replace(",", "").strip() or not found):
            return "Filter was formatted incorrectly.  Check the syntax of the filter given."
        exclude = found.get("action", "include") == "exclude"
        if pattern.startswith("!"):
            exclude, pattern = True, pattern[1:]
        method = found.get("method", "regex")
        if (found.get("action", "include") not in ("include", "exclude")
                or method not in _METHODS or (not pattern and method != "none")):
            return "Filter was formatted incorrectly.  Check the syntax of the filter given."
        if method == "regex":
            try:
                re.compile(pattern)
            except re.error:
                return "Filter did not compile.  Check the syntax of the filter given."
        entry = _Filter(exclude, found.get("name", ""), found.get("header", "").rstrip(":"),
                        method, pattern)
        (self.exclude if exclude else self.include).append(entry)
        return ""

    def lets_through(self, fields: Fields, data: bytes) -> bool:
        included = (not self.include
                    or any(f.matches(fields, data) for f in self.include))
        return included and not any(f.matches(fields, data) for f in self.exclude)


def parse_callerid(text: str) -> tuple[str, str]:
    """(number, name) of a CallerID value such as ``"XVB Test" <6135550123>``; '' if absent."""
    match = re.fullmatch(r'\s*(?:"([^"]*)"|([^<"]*?))\s*<([^>]*)>\s*', text)
    if match:
        name = match[1] if match[1] is not None else match[2]
        return re.sub(r"[\s().-]", "", match[3]), name.strip()
    text = text.strip().strip('"')
    if re.fullmatch(r"[0-9*#+()\s.-]+", text):
        return re.sub(r"[\s().-]", "", text), ""
    return "", text


def _variables(fields: Fields) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in fields:
        if key.lower() == "variable":
            for item in value.split(","):
                name, sep, val = item.partition("=")
                if sep:
                    out[name.strip()] = val
    return out


def _stop_listening(listener: IListeningPort) -> Deferred[None]:
    d = listener.stopListening()
    return d if d is not None else succeed(None)


def _tv(seconds: float) -> str:
    """A security event's time stamp, ``2026-11-26T12:33:45.478+0000``."""
    when = datetime.fromtimestamp(seconds, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


# ---------------------------------------------------------------------- calls

@dataclass
class OriginateRequest:
    """One Originate action, as received."""

    action_id: str
    channel: str
    context: str
    exten: str
    priority: str
    application: str
    data: str
    caller_id: str
    timeout_ms: int
    async_: bool
    variables: dict[str, str]  # every ``Variable: A=1`` (or ``A=1,B=2``) header
    fields: Fields  # every header as received, in order
    session: AMISession


@dataclass
class Outcome:
    """What Asterisk reports for an origination."""

    reason: int  # 4 answered, 5 busy, 3 no answer (ring timeout), 8 congestion,
    #              1 hung up before answer, 0 failed (no such extension / channel)
    delay: float = 0.0  # seconds (on the peer's clock) before the OriginateResponse
    uniqueid: str = ""  # generated like '1795696425.12' when empty; failures say '<unknown>'


@dataclass
class Call:
    """The channels of one origination: the two halves of a Local channel, or one."""

    request: OriginateRequest
    channels: list[str]
    uniqueids: list[str]
    target: tuple[str, str]  # (context, exten) the channels start in
    answered: bool = False
    cid: tuple[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.cid = parse_callerid(self.request.caller_id)

    @property
    def uniqueid(self) -> str:
        """The first channel's uniqueid (the one OriginateResponse reports)."""
        return self.uniqueids[0]

    def place(self, i: int) -> tuple[str, str, str]:
        """(context, exten, priority) of channel ``i``: an answered ;1 has gone on to the
        request's extension (unless it runs an application)."""
        req = self.request
        if self.answered and i == 0 and not req.application and req.exten:
            return req.context or "default", req.exten, req.priority or "1"
        return (*self.target, "1")

    def event(self, name: str, i: int, state: int, *, cid: bool,
              extra: Fields | None = None) -> Fields:
        """A channel event of channel ``i`` in the shape of Asterisk 22's snapshots."""
        num, cname = ((self.cid[0] or "<unknown>", self.cid[1] or "<unknown>") if cid
                      else ("<unknown>", "<unknown>"))
        context, exten, priority = self.place(i)
        return [("Event", name), ("Privilege", "call,all"), ("Channel", self.channels[i]),
                ("ChannelState", str(state)), ("ChannelStateDesc", STATE_DESC[state]),
                ("CallerIDNum", num), ("CallerIDName", cname), ("ConnectedLineNum", num),
                ("ConnectedLineName", cname), ("Language", "en"),
                ("AccountCode", header(self.request.fields, "Account")),
                ("Context", context), ("Exten", exten), ("Priority", priority),
                ("Uniqueid", self.uniqueids[i]), ("Linkedid", self.uniqueids[0]),
                *(extra or [])]

    def hangup(self, i: int, state: int, cause: int) -> Fields:
        return self.event("Hangup", i, state, cid=True, extra=[
            ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))])


# ---------------------------------------------------------------------- one connection

class AMISession(Protocol):
    """One manager connection, from Asterisk's side."""

    def __init__(self, fake: FakeAsterisk, index: int) -> None:
        self.fake = fake
        self.index = index
        self.authenticated = False
        self.username = ""
        self.event_mask: frozenset[str] = ALL
        self.filters = EventFilters()  # the session's Filter actions
        self.challenge = ""
        self.actions: list[Fields] = []  # this session's actions, in order
        self.writes: list[bytes] = []  # every write to the socket, as cut
        self.connected = False
        self.closed_by_asterisk = False  # Logoff, failed login, stop(), crash()
        self._tcp: ITCPTransport | None = None
        self._lost = False
        self._lost_waiters: list[Deferred[None]] = []
        self._buffer = b""
        self._pending: deque[Fields] = deque()
        self._busy = False  # a login failure or a synchronous Originate is in progress
        self._held: list[bytes] = []  # events that wait while busy
        self._closing = False
        self._merged: list[bytes] = []
        self._flush_call: IDelayedCall | None = None
        self._queue: deque[bytes] = deque()
        self._pump_call: IDelayedCall | None = None
        self._rng = random.Random(index)

    # ------------------------------------------------------------------ output

    def _raw(self, data: bytes) -> None:
        assert self._tcp is not None
        self.writes.append(data)
        self._tcp.write(data)

    def _write(self, parts: list[bytes]) -> None:
        """Send one message; ``parts`` are the pieces Asterisk itself writes separately."""
        if not self.connected or self._closing:
            return
        if self.fake.chunking == "natural":
            for part in parts:
                self._raw(part)
        elif self.fake.chunking == "merged":
            self._merged.extend(parts)
            if self._flush_call is None:
                self._flush_call = self.fake.reactor.callLater(0, self._flush)
        else:
            self._queue.extend(self._cut(parts))
            if self._pump_call is None:
                self._pump()

    def _cut(self, parts: list[bytes]) -> list[bytes]:
        if len(parts) > 1:
            return [part for part in parts if part]
        data = parts[0]
        if len(data) < 3:
            return [data]
        points = sorted(self._rng.sample(range(1, len(data)), self._rng.choice((1, 2))))
        return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]

    def _pump(self) -> None:
        self._pump_call = None
        if self._queue:
            self._raw(self._queue.popleft())
        if self._queue:
            self._pump_call = self.fake.reactor.callLater(SPLIT_GAP, self._pump)
        elif self._closing and self._tcp is not None:
            self._tcp.loseConnection()

    def _flush(self) -> None:
        self._flush_call = None
        if self._merged:
            data = b"".join(self._merged)
            self._merged.clear()
            self._raw(data)

    def _stop_output(self) -> None:
        for call in (self._flush_call, self._pump_call):
            if call is not None and call.active():
                call.cancel()
        self._flush_call = self._pump_call = None

    def reply(self, m: Fields, response: str, message: str | None = None,
              extra: Fields | None = None) -> None:
        """A response to action ``m``, its ActionID echoed when it had one."""
        fields = [("Response", response)]
        if action_id := header(m, "ActionID"):
            fields.append(("ActionID", action_id))
        if message is not None:
            fields.append(("Message", message))
        self._write([serialize(fields + (extra or []))])

    def send_event(self, data: bytes) -> None:
        """Deliver an event (held back while the session is busy in an action)."""
        if self._busy:
            self._held.append(data)
        else:
            self._write([data])

    def close(self) -> None:
        """Asterisk ends the session: what was said is delivered, then the socket closes."""
        if not self.connected or self._closing or self._tcp is None:
            return
        self._closing = self.closed_by_asterisk = True
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush()
        if self._pump_call is None:
            self._tcp.loseConnection()

    def drop(self, abort: bool) -> None:
        """Cut the connection now, unsent output lost (``abort``: no FIN, like a crash)."""
        self._stop_output()
        self._queue.clear()
        self._merged.clear()
        if not self.connected or self._tcp is None:
            return
        self._closing = self.closed_by_asterisk = True
        if abort:
            self._tcp.abortConnection()
        else:
            self._tcp.loseConnection()

    def when_closed(self) -> Deferred[None]:
        """Fires once the connection is gone."""
        d: Deferred[None] = Deferred()
        if self._lost:
            d.callback(None)
        else:
            self._lost_waiters.append(d)
        return d

    # ------------------------------------------------------------------ input

    def connectionMade(self) -> None:
        self._tcp = cast(ITCPTransport, self.transport)
        self.connected = True
        self._write([BANNER])
        self.fake._changed()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        messages, self._buffer = parse_messages(self._buffer + data)
        for m in messages:
            self.actions.append(m)
            self.fake.actions.append((self, m))
            self._pending.append(m)
        self._run()
        if messages:
            self.fake._changed()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        self._lost = True
        self._stop_output()
        self._pending.clear()
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)
        self.fake._changed()

    def _run(self) -> None:
        while self._pending and not self._busy and not self._closing:
            self._handle(self._pending.popleft())

    def _finish(self, m: Fields, response: str, message: str) -> None:
        """End a blocking action: its reply, then the events held meanwhile, then the
        actions that waited."""
        self._busy = False
        self.reply(m, response, message)
        held, self._held = self._held, []
        for data in held:
            self._write([data])
        self._run()

    def _handle(self, m: Fields) -> None:
        action = header(m, "Action")
        if not action:
            self.reply(m, "Error", "Missing action in request")
            return
        name = action.lower()
        if not self.authenticated and name not in ("login", "challenge", "logoff"):
            self.reply(m, "Error", "Permission denied")
            return
        handler = getattr(self, f"do_{name}", None) if name.isalpha() else None
        if handler is None:
            self.reply(m, "Error", f"Invalid/unknown command: {action}. "
                       "Use Action: ListCommands to show available commands.")
            return
        handler(m)

    # ------------------------------------------------------------------ actions

    def do_login(self, m: Fields) -> None:
        if self.authenticated:
            self.reply(m, "Success", "Already authenticated")
            return
        if not self._credentials_ok(m):
            self._busy = True
            self.fake._later(self.fake.failed_login_delay, self._login_failed, m)
            return
        fake, now = self.fake, self.fake.clock.seconds()
        self.authenticated = True
        self.username = header(m, "Username")
        mask = event_mask(header(m, "Events"))
        if mask is not None:
            self.event_mask = mask
        self.reply(m, "Success", "Authentication accepted")
        if lets_through(self.event_mask, "system"):
            uptime = str(int(now - fake.booted_at))
            self._write([serialize([
                ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", uptime),
                ("LastReload", uptime), ("Status", "Fully Booted")])])
        assert self._tcp is not None
        local = cast(IPv4Address, self._tcp.getHost())
        remote = cast(IPv4Address, self._tcp.getPeer())
        fake.event([
            ("Event", "SuccessfulAuth"), ("Privilege", "security,all"), ("EventTV", _tv(now)),
            ("Severity", "Informational"), ("Service", "AMI"), ("EventVersion", "1"),
            ("AccountID", self.username),
            ("SessionID", f"0x{0x7FC544001AB0 + self.index * 0x1010:x}"),
            ("LocalAddress", f"IPV4/TCP/{local.host}/{local.port}"),
            ("RemoteAddress", f"IPV4/TCP/{remote.host}/{remote.port}"),
            ("UsingPassword", "0"), ("SessionTV", _tv(now))])

    def _credentials_ok(self, m: Fields) -> bool:
        if header(m, "Username").lower() != self.fake.username.lower():
            return False
        if header(m, "AuthType").lower() == "md5":
            key = header(m, "Key")
            expected = hashlib.md5((self.challenge + self.fake.secret).encode()).hexdigest()
            return bool(key and self.challenge) and key == expected
        return header(m, "Secret") == self.fake.secret

    def _login_failed(self, m: Fields) -> None:
        self.reply(m, "Error", "Authentication failed")
        self.close()

    def do_challenge(self, m: Fields) -> None:
        if header(m, "AuthType").lower() != "md5":
            self.reply(m, "Error", "Must specify AuthType")
            return
        if not self.challenge:
            self.challenge = str(self.fake.random.randrange(100_000_000, 1_000_000_000))
        self.reply(m, "Success", None, [("Challenge", self.challenge)])

    def do_logoff(self, m: Fields) -> None:
        self.reply(m, "Goodbye", "Thanks for all the fish.")
        self.close()

    def do_ping(self, m: Fields) -> None:
        if not self.fake.answer_pings:
            return
        seconds, micro = divmod(round(self.fake.clock.seconds() * 1_000_000), 1_000_000)
        rest = [("Ping", "Pong"), ("Timestamp", f"{seconds}.{micro:06d}")]
        if action_id := header(m, "ActionID"):
            rest.insert(0, ("ActionID", action_id))
        self._write([b"Response: Success\r\n", serialize(rest)])  # two writes, as Asterisk

    def do_events(self, m: Fields) -> None:
        mask = event_mask(header(m, "EventMask"))
        if mask is None:
            self.reply(m, "Error", "Invalid event mask")
            return
        self.event_mask = mask
        self.reply(m, "Success", None, [("Events", "On" if mask else "Off")])

    def do_filter(self, m: Fields) -> None:
        """Asterisk 22's Filter action (``privilege`` system): an include or exclude filter
        by event name, header and method, or a regular expression on the whole event."""
        if self.fake.refuse_filter:
            self.reply(m, "Error", "Permission denied")
            return
        if header(m, "Operation").lower() != "add":
            self.reply(m, "Error", "Unknown operation")
            return
        error = self.filters.add(header(m, "MatchCriteria"), header(m, "Filter"))
        if error:
            self.reply(m, "Error", error)
        else:
            self.reply(m, "Success", "Success")

    def do_originate(self, m: Fields) -> None:
        channel, timeout = header(m, "Channel"), header(m, "Timeout").strip()
        if not channel:
            self.reply(m, "Error", "Channel not specified")
            return
        number = re.match(r"-?\d+", timeout)
        if timeout and number is None:
            self.reply(m, "Error", "Invalid timeout")
            return
        if "/" not in channel:
            self.reply(m, "Error", "Invalid channel")
            return
        request = OriginateRequest(
            action_id=header(m, "ActionID"), channel=channel, context=header(m, "Context"),
            exten=header(m, "Exten"), priority=header(m, "Priority"),
            application=header(m, "Application"), data=header(m, "Data"),
            caller_id=header(m, "CallerID"),
            timeout_ms=int(number[0]) if number else 30000,
            async_=header(m, "Async").strip().lower() in TRUE,
            variables=_variables(m), fields=list(m), session=self)
        self.fake.originates.append(request)
        if request.async_:
            self.reply(m, "Success", "Originate successfully queued")
        else:
            self._busy = True
        self.fake._originate(request)

    def do_hangup(self, m: Fields) -> None:
        name = header(m, "Channel")
        if not name:
            self.reply(m, "Error", "No channel specified")
            return
        found = self.fake._call_on_channel(name)
        if found is None:
            self.reply(m, "Error", "No such channel")
            return
        call, i = found
        cause = header(m, "Cause").strip()
        self.reply(m, "Success", "Channel Hungup")
        self.fake._hang_up(call, first=i, cause=int(cause) if cause.isdigit() else 0)

    def do_command(self, m: Fields) -> None:
        command = " ".join(header(m, "Command").split())
        ok, lines = self.fake.cli(command)
        if not self.fake.old_command_format:
            self.reply(m, "Success" if ok else "Error", "Command output follows",
                       [("Output", line) for line in lines])
            return
        head = [("Response", "Follows"), ("Privilege", "Command")]
        if action_id := header(m, "ActionID"):
            head.append(("ActionID", action_id))
        body = "".join(f"{key}: {value}\r\n" for key, value in head)
        body += "".join(line + "\n" for line in lines) + "--END COMMAND--\r\n\r\n"
        self._write([body.encode()])


class _SessionFactory(Factory):
    noisy = False

    def __init__(self, fake: FakeAsterisk) -> None:
        self.fake = fake

    def buildProtocol(self, addr: IAddress | None) -> AMISession:
        session = AMISession(self.fake, len(self.fake.sessions))
        session.factory = self
        self.fake.sessions.append(session)
        return session


# ---------------------------------------------------------------------- the server

class FakeAsterisk:
    """Asterisk 22's manager interface on a loopback port, for tests.

    ``reactor`` carries the sockets (and the pieces of ``split``/``merged`` output);
    ``clock`` (default: the reactor) every delay Asterisk would take: a failed login's pause,
    an origination's ``Outcome.delay``, the epoch of uniqueids and Ping time stamps.
    ``chunking``: ``natural`` writes each message as produced (Ping's reply in two writes,
    as Asterisk), ``split`` cuts every message into 2–3 writes a moment apart, ``merged``
    joins all output of one reactor turn into one write.
    """

    def __init__(self, reactor: Any, *, clock: IReactorTime | None = None,
                 username: str = "xvb", secret: str = "xvbsecret",
                 failed_login_delay: float = 1.0, chunking: str = "natural",
                 on_originate: Callable[[OriginateRequest], Outcome | Deferred[Outcome]]
                 | None = None,
                 old_command_format: bool = False) -> None:
        if chunking not in ("natural", "split", "merged"):
            raise ValueError(f"chunking must be natural, split or merged, not {chunking!r}")
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.username = username
        self.secret = secret
        self.failed_login_delay = failed_login_delay
        self.chunking = chunking
        self.on_originate = on_originate
        self.old_command_format = old_command_format
        self.answer_pings = True  # False: Ping gets no reply at all (a hung Asterisk)
        self.refuse_filter = False  # True: Filter is "Permission denied" (no write = system)
        self.sessions: list[AMISession] = []  # every accepted connection, in order
        self.actions: list[tuple[AMISession, Fields]] = []  # every action received, in order
        self.originates: list[OriginateRequest] = []
        self.calls: dict[str, Call] = {}  # answered and not hung up, by uniqueid
        self.port = 0
        self.random = random.Random(5038)
        self._listener: IListeningPort | None = None
        self._listener_gone: Deferred[None] | None = None
        self._timers: set[IDelayedCall] = set()
        self._waiters: list[tuple[Callable[[FakeAsterisk], bool], Deferred[None]]] = []
        self._generation = 0
        self._boot()

    def _boot(self) -> None:
        self.booted_at = self.clock.seconds()
        self._next_uniqueid = 0
        self._next_channel = 0
        self._processed = 0
        self.calls = {}

    # ------------------------------------------------------------------ life

    async def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port`` 0: any free port); return the port."""
        self._listener = self.reactor.listenTCP(port, _SessionFactory(self),
                                                interface="127.0.0.1")
        self.port = cast(IPv4Address, self._listener.getHost()).port
        return self.port

    async def stop(self) -> None:
        """Stop listening and close every session."""
        self._generation += 1
        self._cancel_timers()
        closing = [s.when_closed() for s in self.sessions if s.connected]
        for session in self.sessions:
            session.drop(abort=False)
        if self._listener is not None:
            await _stop_listening(self._listener)
            self._listener = None
        if self._listener_gone is not None:
            await self._listener_gone
            self._listener_gone = None
        for d in closing:
            await d

    def crash(self) -> None:
        """Die like a killed Asterisk: every connection cut at once (abortConnection), the
        port closed (connections refused), every call and timer gone."""
        self._generation += 1
        self._cancel_timers()
        for session in self.sessions:
            session.drop(abort=True)
        if self._listener is not None:
            self._listener_gone = _stop_listening(self._listener)
            self._listener = None
        self.calls = {}

    async def restart(self) -> None:
        """Listen again on the same port after :meth:`crash`; new sessions get a fresh
        banner, uptime and the uniqueid counter start over."""
        if self._listener_gone is not None:
            await self._listener_gone
            self._listener_gone = None
        self._boot()
        self._listener = self.reactor.listenTCP(self.port, _SessionFactory(self),
                                                interface="127.0.0.1")

    def _cancel_timers(self) -> None:
        for call in self._timers:
            if call.active():
                call.cancel()
        self._timers.clear()

    def _later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        """Call ``fn`` after ``delay`` seconds on the clock (now if 0)."""
        if delay <= 0:
            fn(*args)
            return

        def fire() -> None:
            self._timers.discard(timer)
            fn(*args)

        timer = self.clock.callLater(delay, fire)
        self._timers.add(timer)

    # ------------------------------------------------------------------ looking on

    def logged_in(self) -> list[AMISession]:
        """The sessions that are connected and logged in."""
        return [s for s in self.sessions if s.connected and s.authenticated and not s._closing]

    def wait_for(self, predicate: Callable[[FakeAsterisk], bool]) -> Deferred[None]:
        """Fires once ``predicate(self)`` is true, checked now and after every connection,
        action, disconnection and origination outcome."""
        d: Deferred[None] = Deferred()
        if predicate(self):
            d.callback(None)
        else:
            self._waiters.append((predicate, d))
        return d

    def _changed(self) -> None:
        for item in list(self._waiters):
            if item in self._waiters and item[0](self):
                self._waiters.remove(item)
                item[1].callback(None)

    def event(self, fields: Fields) -> None:
        """Send an event to every logged-in session whose event mask lets one of its
        ``Privilege`` classes through (an event without Privilege reaches only sessions
        with all events on)."""
        data = serialize(fields)
        privilege = header(fields, "Privilege")
        for session in self.logged_in():
            if (lets_through(session.event_mask, privilege)
                    and session.filters.lets_through(fields, data)):
                session.send_event(data)

    # ------------------------------------------------------------------ calls

    def _originate(self, request: OriginateRequest) -> None:
        generation = self._generation
        result = (self.on_originate(request) if self.on_originate is not None
                  else Outcome(reason=4))
        d = result if isinstance(result, Deferred) else succeed(result)
        d.addCallback(self._outcome_known, request, generation)

    def _new_call(self, request: OriginateRequest, uniqueid: str) -> Call:
        tech, _, rest = request.channel.partition("/")
        epoch, seq = int(self.clock.seconds()), self._next_channel
        self._next_channel += 1
        if tech.lower() == "local":
            base = f"{tech}/{rest.split('/')[0]}"
            exten, _, context = rest.split("/")[0].partition("@")
            channels = [f"{base}-{seq:08x};1", f"{base}-{seq:08x};2"]
            target = (context or "default", exten)
        else:
            channels = [f"{tech}/{rest.split('/')[0].split('@')[0]}-{seq:08x}"]
            target = ("default", "s")
        uniqueids = [f"{epoch}.{self._next_uniqueid + k}" for k in range(len(channels))]
        self._next_uniqueid += len(channels)
        if uniqueid:
            uniqueids[0] = uniqueid
        return Call(request, channels, uniqueids, target)

    def _outcome_known(self, outcome: Outcome, request: OriginateRequest,
                       generation: int) -> None:
        if generation != self._generation:
            return
        call = self._new_call(request, outcome.uniqueid)
        for i in range(len(call.channels)):
            self.event(call.event("Newchannel", i, 0 if i == 0 else 4, cid=False))
        self._later(outcome.delay, self._originate_done, call, outcome)

    def _originate_done(self, call: Call, outcome: Outcome) -> None:
        request, answered = call.request, outcome.reason == 4
        if answered:
            call.answered = True
            self.calls[call.uniqueid] = call
            self._processed += 1
        else:
            cause = FAILURE_CAUSE.get(outcome.reason, 0)
            for i in reversed(range(len(call.channels))):
                self.event(call.hangup(i, 0 if i == 0 else 4, cause))
        if request.async_:
            cid_num, cid_name = call.cid
            fields = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
            if request.action_id:
                fields.append(("ActionID", request.action_id))
            fields += [("Response", "Success" if answered else "Failure"),
                       ("Channel", call.channels[0] if answered else request.channel)]
            if request.application:
                fields += [("Application", request.application), ("Data", request.data)]
            else:
                fields += [("Context", request.context), ("Exten", request.exten)]
            fields += [("Reason", str(outcome.reason)),
                       ("Uniqueid", call.uniqueid if answered
                        else outcome.uniqueid or "<unknown>"),
                       ("CallerIDNum", cid_num or "<unknown>"),
                       ("CallerIDName", cid_name or "<unknown>")]
            self.event(fields)
        elif answered:
            request.session._finish(request.fields, "Success", "Originate successfully queued")
        else:
            request.session._finish(request.fields, "Error", "Originate failed")
        self._changed()

    def _call_on_channel(self, name: str) -> tuple[Call, int] | None:
        for call in self.calls.values():
            for i, channel in enumerate(call.channels):
                if channel.lower() == name.lower():
                    return call, i
        return None

    def _hang_up(self, call: Call, first: int, cause: int) -> None:
        self.calls.pop(call.uniqueid, None)
        for i in sorted(range(len(call.channels)), key=lambda i: i != first):
            self.event(call.hangup(i, 6, cause))
        self._changed()

    def hangup_call(self, uniqueid: str, cause: int = 0) -> None:
        """The far end hangs up the answered call with this uniqueid (of any of its
        channels): Hangup events, ``;2`` first as in the recordings."""
        for call in self.calls.values():
            if uniqueid in call.uniqueids:
                self._hang_up(call, first=len(call.channels) - 1, cause=cause)
                return
        raise KeyError(f"no answered call has uniqueid {uniqueid}")

    # ------------------------------------------------------------------ CLI

    def cli(self, command: str) -> tuple[bool, list[str]]:
        """What the Asterisk CLI prints for ``command``: (it worked, the lines)."""
        if command == "core show version":
            return True, [f"Asterisk {VERSION} built by root @ xvb-build on a x86_64 running "
                          "Linux on 2026-11-20 09:12:44 UTC"]
        if command == "core show channels":
            row = "{:<20.20} {:<20.20} {:<7.7} {:<30.30}".format
            lines = [row("Channel", "Location", "State", "Application(Data)")]
            channels = 0
            for call in self.calls.values():
                req = call.request
                app = f"{req.application}({req.data})" if req.application else "(None)"
                for i, name in enumerate(call.channels):
                    context, exten, priority = call.place(i)
                    lines.append(row(name, f"{exten}@{context}:{priority}", "Up", app))
                    channels += 1
            calls = len(self.calls)
            lines += [f"{channels} active channel{'' if channels == 1 else 's'}",
                      f"{calls} active call{'' if calls == 1 else 's'}",
                      f"{self._processed} call{'' if self._processed == 1 else 's'} processed"]
            return True, lines
        return False, [f"No such command '{command}' (type 'core show help {command}' for "
                       "other possible commands)"]
