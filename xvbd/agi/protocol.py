"""FastAGI bytes <-> messages.

Asterisk opens a TCP connection per call and sends an environment block (``agi_key: value``
lines ending with an empty line); then xvbd sends one command line at a time and Asterisk
answers each with a status line (``200 result=N [(data)] [endpos=N]``, ``510``, ``511``, or a
multi-line ``520-`` usage block).  Asterisk may also send an unsolicited ``HANGUP`` line at
any time once the caller has gone.

This module knows only that framing.  What a call does is the engine's business: the
protocol hands the parsed environment to ``factory.start_session(self)`` and offers
:meth:`FastAGIProtocol.send_command`, which returns a Deferred of the :class:`Reply`.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred, fail
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from xvbd.logs import logger

log = logger("xvbd.agi")

MAX_LINE = 8192
MAX_ENV_LINES = 256


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


class BadInput(Exception):
    """What Asterisk (or whatever is on the socket) sent cannot be a FastAGI session."""


_REPLY = re.compile(r"200 result=(?P<result>-?[0-9*#]*)(?: \((?P<data>[^)]*)\))?(?P<rest>.*)")


@dataclass(frozen=True)
class Reply:
    """A ``200`` answer: ``result``, the optional ``(data)`` and ``key=value`` extras
    (``endpos``)."""

    result: str
    data: str | None = None
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> int:
        """``result`` as a number; an empty result (GET DATA timeout) is 0."""
        try:
            return int(self.result)
        except ValueError:  # '' (a GET DATA timeout) or digits with * and #
            return 0

    @property
    def endpos(self) -> int | None:
        raw = self.extras.get("endpos")
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None


def parse_reply(line: str) -> Reply:
    """Parse a ``200 result=…`` line; raise :class:`BadInput` for anything else."""
    match = _REPLY.fullmatch(line)
    if match is None:
        raise BadInput(f"not an AGI reply: {line[:80]!r}")
    extras = {}
    for part in match["rest"].split():
        key, sep, value = part.partition("=")
        if sep:
            extras[key] = value
    return Reply(match["result"], match["data"], extras)


@dataclass(frozen=True)
class AGIEnv:
    """The environment block of one call."""

    values: dict[str, str]
    args: tuple[str, ...]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def script(self) -> str:
        """The script name without its query string (``main`` of ``main?x=1``)."""
        return self.get("network_script").partition("?")[0].strip("/")

    @property
    def query(self) -> dict[str, str]:
        query = self.get("network_script").partition("?")[2]
        return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}

    @property
    def uniqueid(self) -> str:
        return self.get("uniqueid")

    @property
    def callerid(self) -> str:
        value = self.get("callerid")
        return "" if value == "unknown" else value

    @property
    def channel(self) -> str:
        return self.get("channel")


def parse_agi_env(lines: list[str]) -> AGIEnv:
    """``agi_key: value`` lines (without the empty line) to an :class:`AGIEnv`."""
    values: dict[str, str] = {}
    args: dict[int, str] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or not key[4:]:
            raise BadInput(f"not an AGI environment line: {line[:80]!r}")
        name = key[4:]
        if name.startswith("arg_") and name[4:].isdigit():
            args[int(name[4:])] = value
        else:
            values[name] = value
    ordered = tuple(args[i] for i in sorted(args))
    return AGIEnv(values, ordered)


@dataclass
class _Pending:
    command: str
    deferred: Deferred[Reply]
    abandoned: bool = False


class FastAGIProtocol(LineOnlyReceiver):
    """One FastAGI connection.  ``factory`` provides ``env_timeout``, ``clock``,
    ``session_started(p)``, ``session_ended(p)`` and ``start_session(p)``."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    factory: Any

    def __init__(self) -> None:
        self.env: AGIEnv | None = None
        self._env_lines: list[str] = []
        self._pending: deque[_Pending] = deque()
        self._usage: list[str] | None = None
        self.hung_up = False
        self.connected = False
        self._hangup_watchers: list[Any] = []
        self._env_timer: Any = None

    # ------------------------------------------------------------------ connection

    def connectionMade(self) -> None:
        self.connected = True
        self.factory.session_started(self)
        self._env_timer = self.factory.clock.callLater(self.factory.env_timeout,
                                                       self._env_timed_out)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        self._cancel_env_timer()
        self._mark_hung_up("the connection is closed")
        self.factory.session_ended(self)

    def close(self) -> None:
        """Close the socket (xvbd always closes it itself when a call is done)."""
        if self.connected and self.transport is not None:
            self.transport.loseConnection()

    def _refuse(self, why: str) -> None:
        peer = self.transport.getPeer() if self.transport is not None else "?"
        log.warn("FastAGI connection from {peer} closed: {why}", peer=peer, why=why)
        self._cancel_env_timer()
        self.close()

    def _cancel_env_timer(self) -> None:
        if self._env_timer is not None and self._env_timer.active():
            self._env_timer.cancel()
        self._env_timer = None

    def _env_timed_out(self) -> None:
        self._env_timer = None
        self._refuse(f"the AGI environment did not end within {self.factory.env_timeout:g} s")

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse(f"a line longer than {self.MAX_LENGTH} bytes")

    # ------------------------------------------------------------------ lines in

    def lineReceived(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self._refuse("bytes that are not UTF-8")
            return
        if self.env is None:
            self._env_line(line)
        else:
            self._command_line(line)

    def _env_line(self, line: str) -> None:
        if line:
            if not line.startswith("agi_") or ":" not in line:
                self._refuse(f"not an AGI environment line: {line[:80]!r}")
                return
            if len(self._env_lines) >= MAX_ENV_LINES:
                self._refuse(f"an environment of more than {MAX_ENV_LINES} lines")
                return
            self._env_lines.append(line)
            return
        try:
            env = parse_agi_env(self._env_lines)
        except BadInput as exc:
            self._refuse(str(exc))
            return
        self._cancel_env_timer()
        self.env = env
        self._env_lines = []
        self.factory.start_session(self)

    def _command_line(self, line: str) -> None:
        if self._usage is not None:  # inside a 520- block
            self._usage.append(line)
            if line.startswith("520 "):
                usage, self._usage = self._usage, None
                self._answer(lambda p: p.deferred.errback(
                    CommandError(p.command, 520, "\n".join(usage))))
            return
        if line == "HANGUP":
            self._mark_hung_up("Asterisk said HANGUP")
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
            self._answer(lambda p: p.deferred.callback(reply))
        elif code == "511":
            self._mark_hung_up("the channel is dead (511)")
            self._answer(lambda p: p.deferred.errback(Hangup(line)))
        elif code in ("510", "520"):
            self._answer(lambda p: p.deferred.errback(CommandError(p.command, int(code),
                                                                   line[4:])))
        elif line == "":
            return
        else:
            self._refuse(f"an answer xvbd does not understand: {line[:80]!r}")

    def _answer(self, deliver: Any) -> None:
        if not self._pending:
            log.warn("FastAGI: an answer with no command waiting for it; ignored")
            return
        pending = self._pending.popleft()
        if not pending.abandoned:
            deliver(pending)

    def _mark_hung_up(self, why: str) -> None:
        """The caller is gone: every command waiting fails now with one :class:`Hangup`
        (their late answers are still read and dropped), watchers are told once."""
        first = not self.hung_up
        self.hung_up = True
        # A failed command resumes the call at once, which may send a dead-mode command
        # (a variable, a hook's VERBOSE) onto this very queue: walk a copy.
        for pending in list(self._pending):
            if not pending.abandoned:
                pending.abandoned = True
                pending.deferred.errback(Hangup(why))
        if not self.connected:
            for pending in list(self._pending):
                if not pending.abandoned:
                    pending.abandoned = True
                    pending.deferred.errback(Hangup(why))
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

    def send_command(self, command: str, *, dead_ok: bool = False) -> Deferred[Reply]:
        """Send one command line; its Deferred fires with the :class:`Reply`.

        After a hang-up only commands Asterisk still answers on a dead channel
        (``dead_ok``: variables, VERBOSE, NOOP) go out; others fail at once with
        :class:`Hangup`.  A command with a line break is refused: it could smuggle a
        second command onto the wire.
        """
        if "\n" in command or "\r" in command or "\x00" in command:
            return fail(ValueError(f"refused an AGI command with a line break: {command!r}"))
        if not self.connected or (self.hung_up and not dead_ok):
            return fail(Hangup("the caller has hung up"))
        d: Deferred[Reply] = Deferred()
        self._pending.append(_Pending(command, d))
        self.sendLine(command.encode("utf-8"))
        return d
