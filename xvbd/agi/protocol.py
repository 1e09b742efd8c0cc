"""FastAGI bytes <-> messages.

Asterisk opens a TCP connection per call and sends an environment block (``agi_key: value``
lines ending with an empty line); then xvbd sends one command line at a time and Asterisk
answers each with a status line (``200 result=N [(data)] [endpos=N]``, ``510``, ``511``, or a
multi-line ``520-`` usage block).  Asterisk may also send an unsolicited ``HANGUP`` line at
any time once the caller has gone.

This module knows only that framing (the environment block is read by
:mod:`xvbd.agi.environment`).  What a call does is the engine's business: the protocol
hands the parsed environment to ``factory.start_session(self)`` and offers
:meth:`FastAGIProtocol.send_command`, which returns a Deferred of the :class:`Reply`.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from twisted.internet import tcp
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from xvbd.agi.calltask import PendingReply
from xvbd.agi.environment import AGIEnv as AGIEnv
from xvbd.agi.environment import BadInput as BadInput
from xvbd.agi.environment import EnvReader
from xvbd.agi.environment import parse_agi_env as parse_agi_env
from xvbd.logs import logger
from xvbd.timings import Durations

log = logger("xvbd.agi")

MAX_LINE = 8192  # of a reply (the environment has its own bounds: xvbd.agi.environment)
_LINE_BREAK = re.compile(r"[\r\n\x00]")


class AGIError(Exception):
    """A command did not do what was asked."""


class Hangup(AGIError):
    """The caller has gone: the channel is dead or the connection is lost."""


class CommandError(AGIError):
    """Asterisk refused the command itself (510 unknown, 520 bad syntax): a bug of ours."""

    def __init__(self, command: str, code: int, text: str) -> None:
        super().__init__(f"{command!r} -> {code} {text}")
        self.command = command
        self.code = code
        self.text = text


_REPLY = re.compile(r"200 result=(?P<result>-?[0-9*#]*)(?: \((?P<data>[^)]*)\))?(?P<rest>.*)")


@dataclass(frozen=True, slots=True)
class Reply:
    """A ``200`` answer: ``result``, the optional ``(data)`` and ``key=value`` extras
    (``endpos``)."""

    result: str
    data: str | None = None
    extras: dict[str, str] | None = None

    @property
    def value(self) -> int:
        """``result`` as a number; an empty result (GET DATA timeout) is 0."""
        try:
            return int(self.result)
        except ValueError:  # '' (a GET DATA timeout) or digits with * and #
            return 0

    @property
    def endpos(self) -> int | None:
        raw = self.extras.get("endpos") if self.extras else None
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


def parse_reply(line: str) -> Reply:
    """Parse a ``200 result=…`` line; raise :class:`BadInput` for anything else.  (The
    usual ``200 result=N [endpos=M]`` is read by :func:`_quick_reply` before this.)"""
    match = _REPLY.fullmatch(line)
    if match is None:
        raise BadInput(f"not an AGI reply: {line[:80]!r}")
    extras = {}
    for part in match["rest"].split():
        key, sep, value = part.partition("=")
        if sep:
            extras[key] = value
    return Reply(match["result"], match["data"], extras or None)


_COMMON_REPLIES: dict[bytes, Reply] = {}


def _quick_reply(raw: bytes) -> Reply | None:
    """``200 result=N`` or ``200 result=N endpos=M`` without the regex; None for others.
    Replies are immutable, so the frequent ones are kept and shared."""
    reply = _COMMON_REPLIES.get(raw)
    if reply is None:
        reply = _parse_quick(raw)
        if reply is not None and len(_COMMON_REPLIES) < 4096:
            _COMMON_REPLIES[raw] = reply
    return reply


def _parse_quick(raw: bytes) -> Reply | None:
    rest = raw[11:].rstrip(b"\r")
    result, _, tail = rest.partition(b" ")
    if not result.lstrip(b"-").isdigit() and result:
        return None
    if not tail:
        return Reply(result.decode("ascii"))
    if tail.startswith(b"endpos=") and tail[7:].isdigit():
        return Reply(result.decode("ascii"), None, {"endpos": tail[7:].decode("ascii")})
    return None


class _Pending:
    __slots__ = ("abandoned", "command", "reply")

    def __init__(self, command: str, reply: PendingReply[Reply]) -> None:
        self.command = command
        self.reply = reply
        self.abandoned = False


class EnvDeadlines:
    """Connections still sending their environment, and when each must have finished.

    One sweep a second over the few connections in that state replaces a timer per
    connection (a busy node accepts thousands a second)."""

    def __init__(self, clock: Any, timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self._due: dict[FastAGIProtocol, float] = {}
        self._sweep: Any = None

    def add(self, proto: FastAGIProtocol) -> None:
        self._due[proto] = self.clock.seconds() + self.timeout
        if self._sweep is None:
            self._sweep = self.clock.callLater(min(1.0, self.timeout), self._run)

    def discard(self, proto: FastAGIProtocol) -> None:
        self._due.pop(proto, None)
        if not self._due and self._sweep is not None:
            if self._sweep.active():
                self._sweep.cancel()
            self._sweep = None

    def _run(self) -> None:
        self._sweep = None
        now = self.clock.seconds()
        for proto in [p for p, due in self._due.items() if due <= now]:
            self.discard(proto)
            proto.env_timed_out(self.timeout)
        if self._due and self._sweep is None:
            self._sweep = self.clock.callLater(min(1.0, self.timeout), self._run)


class FastAGIProtocol(LineOnlyReceiver):
    """One FastAGI connection.  ``factory`` provides ``env_deadlines`` (an
    :class:`EnvDeadlines`), ``session_started(p)``, ``session_ended(p)`` and
    ``start_session(p)``."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    factory: Any

    def __init__(self) -> None:
        self._socket: Any = None
        self.env: AGIEnv | None = None
        self._env_reader: EnvReader | None = EnvReader()
        self._pending: deque[_Pending] = deque()
        self._usage: list[str] | None = None
        self.hung_up = False
        self.hangup_coming = False  # a HANGUP line is in what was read, not yet reached
        self.connected = False
        self._hangup_watchers: list[Any] = []
        #: When the environment or the last answer came, until the next command goes out
        #: (0: no command due); the time between the two goes to ``factory.turnaround``.
        self._answered_at = 0.0
        self._turnaround: Durations | None = None

    # ------------------------------------------------------------------ connection

    def connectionMade(self) -> None:
        self._choose_writer()
        self.connected = True
        self._turnaround = getattr(self.factory, "turnaround", None)
        self.factory.session_started(self)
        self.factory.env_deadlines.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        self.factory.env_deadlines.discard(self)
        self._mark_hung_up("the connection is closed")
        self.factory.session_ended(self)

    def close(self) -> None:
        """Close the socket (xvbd always closes it itself when a call is done)."""
        if self.connected and self.transport is not None:
            self.transport.loseConnection()

    def _refuse(self, why: str) -> None:
        peer = self.transport.getPeer() if self.transport is not None else "?"
        log.warn("FastAGI connection from {peer} closed: {why}", peer=peer, why=why)
        self.factory.env_deadlines.discard(self)
        self.close()

    def env_timed_out(self, timeout: float) -> None:
        got = f": it sent {self._env_reader.progress()}" if self._env_reader else ""
        self._refuse(f"the AGI environment did not end within {timeout:g} s{got}")

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse(f"a line longer than {self.MAX_LENGTH} bytes")

    # ------------------------------------------------------------------ bytes in

    def dataReceived(self, data: bytes) -> None:
        if self.env is not None:
            if b"HANGUP" in data:
                self._hangup_ahead(data)
            super().dataReceived(data)
            return
        reader = self._env_reader
        if reader is None:  # refused: what else comes is dropped
            return
        try:
            done = reader.feed(data)
        except BadInput as exc:
            self._env_reader = None
            self._refuse(str(exc))
            return
        if done is None:
            return
        env, rest = done
        self._answered_at = time.perf_counter()
        self._env_reader = None
        self.factory.env_deadlines.discard(self)
        self.env = env
        if env.notes:
            log.warn("FastAGI call {uniqueid} on {channel}: the environment had values xvbd "
                     "changed to serve it: {notes}", uniqueid=env.uniqueid,
                     channel=env.channel, notes="; ".join(env.notes))
        self.factory.start_session(self)
        if rest and self.connected:
            self.dataReceived(rest)

    def _hangup_ahead(self, data: bytes) -> None:
        """Asterisk writes ``HANGUP`` right after the answer to the command the caller left
        in, often in the same read.  That answer resumes the call at once, which would send
        its next command before the ``HANGUP`` line is read: take the line into account
        first, so that only what a dead channel still takes goes out (the answer itself is
        still delivered, and the waiting commands fail when the line is reached)."""
        for line in data.split(b"\n"):
            if line.rstrip(b"\r") == b"HANGUP":
                self.hangup_coming = True
                return

    def lineReceived(self, raw: bytes) -> None:
        pending = self._pending
        if raw.startswith(b"200 result=") and pending and self._usage is None:
            reply = _quick_reply(raw)  # the usual answer, on the fast path
            if reply is not None:
                entry = pending.popleft()
                if not entry.abandoned:
                    self._answered_at = time.perf_counter()
                    entry.reply.resolve(reply)
                return
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self._refuse("bytes that are not UTF-8")
            return
        self._command_line(line)

    def _command_line(self, line: str) -> None:
        if self._usage is not None:  # inside a 520- block
            self._usage.append(line)
            if line.startswith("520 "):
                usage, self._usage = self._usage, None
                self._answer(lambda p: p.reply.fail(
                    CommandError(p.command, 520, "\n".join(usage))))
            return
        if line == "HANGUP":
            # Commands already sent are still answered (a dead channel's 511, or what a
            # variable or VERBOSE returns): they wait for their answers.
            self._mark_hung_up("Asterisk said HANGUP", fail_waiting=False)
            return
        if line.startswith("520-"):
            self._usage = [line]
            return
        code = line[:3]
        if code == "200":
            try:
                reply = parse_reply(line)
            except BadInput as exc:
                self._refuse(str(exc))
                return
            self._answer(lambda p: p.reply.resolve(reply))
        elif code == "511":
            self._mark_hung_up("the channel is dead (511)")
            self._answer(lambda p: p.reply.fail(Hangup(line)))
        elif code in ("510", "520"):
            self._answer(lambda p: p.reply.fail(CommandError(p.command, int(code),
                                                                   line[4:])))
        elif line == "":
            return
        elif line.startswith("agi_"):
            # Asterisk sends nothing after the environment until asked: these lines are its
            # end, and what was taken for its end was in a value (a caller's name?).
            self._refuse(f"environment lines after the environment's end ({line[:80]!r}): "
                         "a value held an empty line and what followed it was taken for "
                         "the end; the call cannot be trusted")
        else:
            self._refuse(f"an answer xvbd does not understand: {line[:80]!r}")

    def _answer(self, deliver: Any) -> None:
        if not self._pending:
            log.warn("FastAGI: an answer with no command waiting for it; ignored")
            return
        pending = self._pending.popleft()
        if not pending.abandoned:
            self._answered_at = time.perf_counter()
            deliver(pending)

    def _mark_hung_up(self, why: str, *, fail_waiting: bool = True) -> None:
        """The caller is gone: from now on only dead-mode commands go out; the commands
        waiting fail now with one :class:`Hangup` when their answers cannot come (the
        connection is lost; their late answers are still read and dropped), watchers are
        told once."""
        first = not self.hung_up
        self.hung_up = True
        self.hangup_coming = False
        # A failed command resumes the call at once, which may send a dead-mode command
        # (a variable, a hook's VERBOSE) onto this very queue: walk a copy.
        for pending in list(self._pending) if fail_waiting else ():
            if not pending.abandoned:
                pending.abandoned = True
                pending.reply.fail(Hangup(why))
        if not self.connected:  # nothing more can be sent (send_command fails at once)
            self._pending.clear()
        if first:
            watchers, self._hangup_watchers = self._hangup_watchers, []
            for watcher in watchers:
                watcher()

    def on_hangup(self, watcher: Any) -> None:
        """Call ``watcher()`` once when the caller hangs up (now, if already)."""
        if self.hung_up:
            watcher()
        else:
            self._hangup_watchers.append(watcher)

    # ------------------------------------------------------------------ commands out

    def send_command(self, command: str, *, dead_ok: bool = False) -> PendingReply[Reply]:
        """Send one command line; await the result for its :class:`Reply`.

        After a hang-up only commands Asterisk still answers on a dead channel
        (``dead_ok``: variables, VERBOSE, NOOP) go out; others fail at once with
        :class:`Hangup`.  A command with a line break is refused: it could smuggle a
        second command onto the wire.
        """
        if _LINE_BREAK.search(command):
            return PendingReply.failed(
                ValueError(f"refused an AGI command with a line break: {command!r}"))
        if not self.connected or ((self.hung_up or self.hangup_coming) and not dead_ok):
            return PendingReply.failed(Hangup("the caller has hung up"))
        if self._answered_at and self._turnaround is not None:
            self._turnaround.observe(time.perf_counter() - self._answered_at)
        self._answered_at = 0.0
        reply: PendingReply[Reply] = PendingReply()
        self._pending.append(_Pending(command, reply))
        self._write(command.encode("utf-8") + b"\n")
        return reply

    def _choose_writer(self) -> None:
        """Choose how lines go out.  On a plain TCP connection a command line (tens of
        bytes) goes straight to the socket: Twisted's own write would register the socket
        for writability and write on the next turn, two epoll calls and a loop turn per
        command.  Anything the socket does not take at once, and every later line, goes
        through the transport as usual, so order is kept."""
        transport = self.transport
        if not isinstance(transport, tcp.Connection):
            return
        self._socket = transport.getHandle()
        if self._socket is not None:
            # One small line per turn: waiting for an ACK before sending the next (Nagle)
            # would only add delay.
            transport.setTcpNoDelay(True)

    def _write(self, data: bytes) -> None:
        sock = self._socket
        if sock is not None and not self.transport.disconnecting:  # type: ignore[union-attr]
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:  # the connection is going: Twisted will tell us
                self._socket = None
                return
            if sent == len(data):
                return
            data = data[sent:]
            self._socket = None  # from now on, Twisted's buffer keeps the order
        self.transport.write(data)  # type: ignore[union-attr]
