"""The channel as the engine sees it: ``async`` AGI commands with parsed results.

Every argument goes through :func:`quote` or :func:`token` here, once: free text (caller
ids, SIP headers, DTMF, a tenant's words) can never break out of its argument or add a
second command to the wire.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from xvbd.agi.protocol import AGIError, Hangup, Reply

ALL_DIGITS = "0123456789*#"
#: What res_agi says when SAY DATETIME is given no format (its English default).
ASTERISK_DEFAULT_FORMAT = "ABdY 'digits/at' IMp"
_TOKEN = re.compile(r"[A-Za-z0-9_./:@+*#-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VARIABLE = re.compile(r"(__?)?[A-Za-z_][A-Za-z0-9_]*(\([A-Za-z0-9_,-]*\))?")


def key_of(value: int) -> str:
    """The key a command's result names (Asterisk answers its character code), '' for none;
    a code that is no key (an answer Asterisk never gives) is taken as none."""
    return chr(value) if 0 < value < 256 else ""


def quote(value: object) -> str:
    """One AGI argument in double quotes, as Asterisk's parser reads it back: backslash and
    quote escaped, control characters (line breaks above all) replaced by spaces."""
    text = _CONTROL.sub(" ", str(value))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@lru_cache(maxsize=4096)
def _checked_token(text: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise ValueError(f"not a safe AGI word: {text!r}")
    return text


def token(value: object) -> str:
    """An argument that must be one plain word (file names, numbers, variable names)."""
    return _checked_token(str(value))


def variable(name: str) -> str:
    """A channel variable or function name (``XVB_AC``, ``__XVB_AC``, ``CHANNEL(language)``)."""
    if not _VARIABLE.fullmatch(name):
        raise ValueError(f"not a channel variable name: {name!r}")
    return name


@lru_cache(maxsize=256)
def digits_arg(value: str) -> str:
    """Escape digits: quoted, limited to the DTMF alphabet."""
    if any(c not in ALL_DIGITS for c in value):
        raise ValueError(f"escape digits are 0-9, * and #, got {value!r}")
    return f'"{value}"'


class Sender(Protocol):
    """What the channel needs of the connection (the protocol, or a test script)."""

    hung_up: bool
    hangup_coming: bool  # Asterisk's HANGUP line is read, not yet reached

    def send_command(self, command: str, *, dead_ok: bool = False) -> Awaitable[Reply]: ...

    def on_hangup(self, watcher: Any) -> None: ...


@dataclass(frozen=True)
class Playback:
    digit: str  # the key that stopped it, or ''
    endpos: int | None
    failed: bool  # Asterisk could not play it on a live channel (a missing file)


@dataclass(frozen=True)
class Recording:
    ended_by: str  # 'dtmf', 'timeout', 'hangup', 'silence' …
    digit: str
    endpos: int


class AGIChannel:
    """Async AGI commands over a :class:`Sender`."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._send = sender.send_command
        self.hangup_sent = False
        self.caller_gone = False

    @property
    def hung_up(self) -> bool:
        """The caller is gone, or xvbd has put the line down."""
        return (self.sender.hung_up or self.hangup_sent or self.caller_gone
                or self.sender.hangup_coming)

    def _gone(self, why: str) -> Hangup:
        """A command that only fails when the channel is dead answered -1: the caller is
        gone, whether or not Asterisk's HANGUP line has been read yet."""
        self.caller_gone = True
        return Hangup(why)

    async def command(self, text: str, *, dead_ok: bool = False) -> Reply:
        """Any command, as written (the methods below build and check it for you)."""
        return await self._send(text, dead_ok=dead_ok)

    # ------------------------------------------------------------------ call control

    async def answer(self) -> None:
        reply = await self._send("ANSWER")
        if reply.value == -1:
            raise self._gone("ANSWER failed")

    async def hangup(self) -> None:
        self.hangup_sent = True
        await self._send("HANGUP")

    async def channel_status(self) -> int:
        return (await self._send("CHANNEL STATUS")).value

    # ------------------------------------------------------------------ sound and digits

    async def stream_file(self, name: str, escape_digits: str = "") -> Playback:
        """Play ``name``; :class:`Hangup` when the caller has gone, ``failed`` when Asterisk
        could not play it on a live channel (a missing file)."""
        reply = await self._send(f"STREAM FILE {token(name)} {digits_arg(escape_digits)}")
        value = reply.value
        if value < 0:
            await self.confirm_alive()
        return Playback(key_of(value), reply.endpos, value < 0)

    async def confirm_alive(self) -> None:
        """After a command answered -1: raise :class:`Hangup` if that was the caller
        leaving.  Asterisk answers ``-1`` both for a file it cannot find and for a caller
        who hung up while it played, and its ``HANGUP`` line comes after that answer; a
        ``CHANNEL STATUS`` tells them apart (``511`` on a dead channel)."""
        if self.sender.hung_up:
            raise Hangup("the caller has hung up")
        await self._send("CHANNEL STATUS")

    async def get_data(self, name: str, timeout_ms: int, max_digits: int) -> str:
        """Play ``name`` and collect up to ``max_digits`` keys; '' on timeout."""
        reply = await self._send(f"GET DATA {token(name)} {int(timeout_ms)} {int(max_digits)}")
        if reply.result == "-1":
            raise self._gone("GET DATA failed")
        return reply.result

    async def wait_for_digit(self, timeout_ms: int) -> str:
        value = (await self._send(f"WAIT FOR DIGIT {int(timeout_ms)}")).value
        if value < 0:
            raise self._gone("WAIT FOR DIGIT failed")
        return key_of(value)

    async def say_digits(self, number: str, escape_digits: str = "") -> str:
        reply = await self._send(f"SAY DIGITS {token(number)} {digits_arg(escape_digits)}")
        value = reply.value
        return key_of(value)

    async def say_number(self, number: int, escape_digits: str = "") -> str:
        value = (await self._send(f"SAY NUMBER {int(number)} {digits_arg(escape_digits)}")).value
        return key_of(value)

    async def say_datetime(self, when: int, escape_digits: str = "", fmt: str = "",
                           timezone: str = "") -> str:
        """Say ``when`` by ``fmt`` (Asterisk's say letters).  Asterisk says nothing at all
        for an empty format argument: without ``fmt`` it gets none (its own default) or,
        when a timezone must follow, :data:`ASTERISK_DEFAULT_FORMAT`."""
        command = f"SAY DATETIME {int(when)} {digits_arg(escape_digits)}"
        if fmt or timezone:
            command += f" {quote(fmt or ASTERISK_DEFAULT_FORMAT)}"
        if timezone:
            command += f" {token(timezone)}"
        value = (await self._send(command)).value
        return key_of(value)

    async def record_file(self, name: str, fmt: str, escape_digits: str, timeout_ms: int, *,
                          beep: bool = True, silence: int = 0) -> Recording:
        command = (f"RECORD FILE {token(name)} {token(fmt)} {digits_arg(escape_digits)} "
                   f"{int(timeout_ms)} 0")
        if beep:
            command += " BEEP"
        if silence:
            command += f" s={int(silence)}"
        reply = await self._send(command)
        value = reply.value
        ended_by = reply.data or ("dtmf" if value > 0 else "timeout")
        return Recording(ended_by, key_of(value), reply.endpos or 0)

    # ------------------------------------------------------------------ variables

    async def set_variable(self, name: str, value: object) -> None:
        await self._send(f"SET VARIABLE {variable(name)} {quote(value)}", dead_ok=True)

    async def get_variable(self, name: str) -> str | None:
        reply = await self._send(f"GET VARIABLE {variable(name)}", dead_ok=True)
        return reply.data if reply.value == 1 else None

    async def get_full_variable(self, expression: str) -> str | None:
        if "\n" in expression or " " in expression:
            raise ValueError(f"not a variable expression: {expression!r}")
        reply = await self._send(f"GET FULL VARIABLE {expression}", dead_ok=True)
        return reply.data if reply.value == 1 else None

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._send(f"VERBOSE {quote(message)} {int(level)}", dead_ok=True)

    async def noop(self) -> None:
        await self._send("NOOP", dead_ok=True)

    # ------------------------------------------------------------------ applications

    async def exec_(self, application: str, *args: object) -> int:
        """Run a dialplan application; its arguments are joined by ',' in one quoted
        argument, each stripped of characters the dialplan would take as separators."""
        joined = ",".join(str(a).replace(",", " ") for a in args)
        command = f"EXEC {token(application)}"
        if args:
            command += f" {quote(joined)}"
        value = (await self._send(command)).value
        if value == -2:
            raise AGIError(f"Asterisk has no application {application!r}")
        return value
