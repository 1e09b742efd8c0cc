"""The Asterisk side of FastAGI, for tests: connects to xvbd like Asterisk 22 does, sends
the environment block, answers each command as Asterisk answers it, and plays a caller who
presses keys and hangs up when told.

Faithful to the recorded sessions in ``../shared/asterisk-transcripts/``: replies are the
same bytes (``200 result=0 endpos=…``, ``200 result= (timeout)``, ``510 …``, ``511 …``, the
``520-`` usage block); after a hang-up the channel is "dead" (channel commands get 511,
variables and VERBOSE still work) and Asterisk sends ``HANGUP`` after the reply of the
command it hung up in — or, with ``AGIEXITONHANGUP``, ``HANGUP`` twice and closes; with
``AGISIGHUP=no`` it sends no ``HANGUP`` at all.  Arguments are split the way res_agi splits
them (double quotes, backslash escapes), so a quoting mistake of xvbd shows up here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"
UNKNOWN = b"510 Invalid or unknown command\n"
#: Commands res_agi still runs on a dead channel.
DEAD_OK = ("GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "VERBOSE", "NOOP", "EXEC",
           "DATABASE", "ASYNCAGI BREAK", "GOSUB", "SET MUSIC")
SAMPLE_RATE = {"wav": 8000, "ul": 8000, "al": 8000, "gsm": 8000, "g722": 16000, "wav16": 16000}


def split_args(line: str) -> list[str]:
    """Split a command line as res_agi's parse_args does."""
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = started = False
    for c in line:
        if escaped:
            current.append(c)
            escaped = False
            started = True
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
            started = True
        elif c in " \t" and not quoted:
            if started:
                out.append("".join(current))
                current, started = [], False
        else:
            current.append(c)
            started = True
    if started:
        out.append("".join(current))
    return out


def environment(script: str = "ivr", *, args: tuple[str, ...] = (), callerid: str = "6135550123",
                calleridname: str = "XVB Test", extension: str = "2500",
                uniqueid: str = "1795696425.1", channel: str = "PJSIP/gw-00000001",
                host: str = "127.0.0.1:4573") -> list[tuple[str, str]]:
    """An environment block as Asterisk 22 sends it (the transcripts' order of keys)."""
    env = [("network", "yes"), ("network_script", script), ("request", f"agi://{host}/{script}"),
           ("channel", channel), ("language", "en"), ("type", channel.split("/")[0]),
           ("uniqueid", uniqueid), ("version", "22.10.1"), ("callerid", callerid or "unknown"),
           ("calleridname", calleridname or "unknown"), ("callingpres", "0"),
           ("callingani2", "0"), ("callington", "0"), ("callingtns", "0"),
           ("dnid", "unknown"), ("rdnis", "unknown"), ("context", "xvb-main"),
           ("extension", extension), ("priority", "3"), ("enhanced", "0.0"),
           ("accountcode", ""), ("threadid", "140485300623040")]
    env += [(f"arg_{i}", value) for i, value in enumerate(args, 1)]
    return env


def env_bytes(env: list[tuple[str, str]] | list[tuple[str, str | bytes]]) -> bytes:
    """The block as res_agi writes it: ``agi_key: value`` lines with every value raw (a
    value given as bytes is sent as it is), then an empty line."""
    return b"".join(b"agi_%s: %s\n" % (key.encode(), value if isinstance(value, bytes)
                                       else value.encode()) for key, value in env) + b"\n"


@dataclass
class Caller:
    """The person on the phone.

    ``keys``: what they press, one item per time Asterisk listens (STREAM FILE with escape
    digits, WAIT FOR DIGIT, GET DATA, RECORD FILE): a string of keys, or None to stay silent
    (a timeout).  ``hangup_on``: a regex; the caller hangs up during the first command that
    matches it (after ``hangup_skip`` earlier matches).  ``dial``: the DIALSTATUS of each
    Dial, in order.  ``record_seconds``: how long they talk into a recording.
    ``record_file_bytes``: what Asterisk manages to write of it on disk before the disk is
    full (None: no file is made, as for an Asterisk whose disk xvbd does not see); as in
    Asterisk, the end position it answers is then its file's position, counting
    ``record_lost_bytes`` it still held in its write buffer when the writes began to fail;
    ``answers``: bytes sent instead of the real answer to the command of that index (0:
    the first), as a broken or hostile Asterisk would (with ``leave_after_answer``, the
    line is closed after them, as Asterisk does when the caller goes);
    ``record_cannot_open``: Asterisk cannot create the file (its ``200 result=-1
    (writefile)`` answer, after the beep).
    """

    keys: list[str | None] = field(default_factory=list)
    hangup_on: str | None = None
    hangup_skip: int = 0
    hangup_mode: str = "sighup"  # "sighup" (default), "exit" (AGIEXITONHANGUP), "nosighup"
    dial: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)  # per Queue(): ANSWERED, TIMEOUT, EXIT:5
    record_seconds: int = 5
    record_file_bytes: int | None = None
    record_lost_bytes: int = 0
    record_cannot_open: bool = False
    answers: dict[int, bytes] = field(default_factory=dict)
    leave_after_answer: bool = False
    prompt_seconds: float = 2.0
    talk_seconds: int = 30
    missing_files: tuple[str, ...] = ()
    hold_on: str | None = None  # a regex: the answer to that command waits for release()
    drop_on: str | None = None  # a regex: the TCP connection is cut when that command comes
    variables: dict[str, str] = field(default_factory=dict)  # set by the dialplan before AGI


class AsteriskAGI(Protocol):
    """One FastAGI connection, from Asterisk's side."""

    def __init__(self, env: list[tuple[str, str]], caller: Caller,
                 advance: Callable[[float], None], env_chunks: int = 2) -> None:
        self.env = env
        self.caller = caller
        self.advance = advance
        self.env_chunks = env_chunks
        self.commands: list[str] = []
        self.sent: list[bytes] = []
        self.received = bytearray()  # every byte xvbd wrote
        self.variables: dict[str, str] = {"CHANNEL": dict(env)["channel"], **caller.variables}
        self.dead = False
        self.closed_by_server = False
        self.done: Deferred[AsteriskAGI] = Deferred()
        self._buffer = b""
        self._keys = list(caller.keys)
        self._dial = list(caller.dial)
        self._queue = list(caller.queue)
        self._skip = caller.hangup_skip
        self._held: str | None = None
        self.holding: Deferred[None] = Deferred()

    # ------------------------------------------------------------------ wire

    def connectionMade(self) -> None:
        block = env_bytes(self.env)
        step = max(1, len(block) // self.env_chunks + 1)
        for i in range(0, len(block), step):
            self.transport.write(block[i:i + step])

    def _send(self, data: bytes) -> None:
        self.sent.append(data)
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._buffer += data
        while b"\n" in self._buffer and self.transport is not None:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if self.closed_by_peer:
                return
            self.handle(line.decode("utf-8"))

    closed_by_peer = False

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed_by_server = not self.closed_by_peer
        self.done.callback(self)

    # ------------------------------------------------------------------ the caller goes

    def _hangs_up_now(self, command: str) -> bool:
        if self.dead or self.caller.hangup_on is None:
            return False
        if re.search(self.caller.hangup_on, command):
            if self._skip:
                self._skip -= 1
                return False
            return True
        return False

    def _after_hangup(self) -> None:
        """What Asterisk does once the reply to the command the caller left in is out."""
        self.dead = True
        if self.caller.hangup_mode == "sighup":
            self._send(b"HANGUP\n")
        elif self.caller.hangup_mode == "exit":
            self._send(b"HANGUP\nHANGUP\n")
            self.closed_by_peer = True
            self.transport.loseConnection()

    def hang_up_between_commands(self) -> None:
        """The caller leaves while xvbd is not waiting for anything."""
        self._after_hangup()

    # ------------------------------------------------------------------ commands

    def release(self) -> None:
        """Answer the command held by ``hold_on`` (the caller carries on)."""
        line, self._held = self._held, None
        self.caller.hold_on = None
        if line is not None:
            self.commands.pop()
            self.handle(line)

    def handle(self, line: str) -> None:
        self.commands.append(line)
        if len(self.commands) - 1 in self.caller.answers:
            self._send(self.caller.answers[len(self.commands) - 1])
            if self.caller.leave_after_answer:
                self.closed_by_peer = True
                self.transport.loseConnection()
            return
        if self.caller.drop_on and re.search(self.caller.drop_on, line):
            self.closed_by_peer = True
            self.transport.abortConnection()
            return
        if self.caller.hold_on and re.search(self.caller.hold_on, line) and not self.dead:
            self._held = line
            self.holding.callback(None)
            return
        words = split_args(line)
        name = " ".join(words[:3]).upper()
        for verb in ("GET FULL VARIABLE", "GET VARIABLE", "SET VARIABLE", "STREAM FILE",
                     "GET DATA", "WAIT FOR DIGIT", "RECORD FILE", "SAY DIGITS",
                     "SAY NUMBER", "SAY DATETIME", "CHANNEL STATUS", "ANSWER", "HANGUP",
                     "VERBOSE", "NOOP", "EXEC"):
            if name.startswith(verb):
                args = words[len(verb.split()):]
                break
        else:
            self._send(UNKNOWN)
            return
        if self.dead and not verb.startswith(DEAD_OK):
            self._send(DEAD)
            return
        leaving = self._hangs_up_now(line) or verb == "HANGUP"
        handler = getattr(self, "do_" + verb.replace(" ", "_").lower())
        reply = handler(args, leaving)
        if reply is None:
            self._usage(verb)
            return
        self._send(reply.encode())
        if leaving:
            self._after_hangup()

    def _usage(self, verb: str) -> None:
        self._send(b"520-Invalid command syntax.  Proper usage follows:\n")
        self._send(f"Usage: {verb} ...\n520 End of proper usage.\n".encode())

    def _key(self) -> str | None:
        return self._keys.pop(0) if self._keys else None

    def _peek_first(self, allowed: str) -> str:
        """The next key if the caller presses one Asterisk is listening for now."""
        if self._keys and self._keys[0] and self._keys[0][0] in allowed:
            first, rest = self._keys[0][0], self._keys[0][1:]
            if rest:
                self._keys[0] = rest
            else:
                self._keys.pop(0)
            return first
        return ""

    def do_answer(self, args: list[str], leaving: bool) -> str:
        return "200 result=0\n" if not leaving else "200 result=-1\n"

    def do_hangup(self, args: list[str], leaving: bool) -> str:
        return "200 result=1\n"

    def do_noop(self, args: list[str], leaving: bool) -> str:
        return "200 result=0\n"

    def do_verbose(self, args: list[str], leaving: bool) -> str | None:
        return "200 result=1\n" if args else None

    def do_channel_status(self, args: list[str], leaving: bool) -> str:
        return "200 result=6\n"

    def do_set_variable(self, args: list[str], leaving: bool) -> str | None:
        if len(args) != 2:
            return None
        name = args[0][2:] if args[0].startswith("__") else args[0].lstrip("_")
        self.variables[name] = args[1]
        return "200 result=1\n"

    def do_get_variable(self, args: list[str], leaving: bool) -> str | None:
        if len(args) != 1:
            return None
        if args[0] in self.variables:
            return f"200 result=1 ({self.variables[args[0]]})\n"
        return "200 result=0\n"

    def do_get_full_variable(self, args: list[str], leaving: bool) -> str | None:
        if not args:
            return None
        match = re.fullmatch(r"\$\{(.+)\}", args[0])
        value = self.variables.get(match[1], "") if match else args[0]
        return f"200 result=1 ({value})\n"

    def do_stream_file(self, args: list[str], leaving: bool) -> str | None:
        if len(args) < 2:
            return None
        if args[0] in self.caller.missing_files:
            return "200 result=-1 endpos=0\n"
        if leaving:
            self.advance(self.caller.prompt_seconds / 2)
            return "200 result=-1 endpos=13600\n"
        digit = self._peek_first(args[1])
        self.advance(self.caller.prompt_seconds / (2 if digit else 1))
        endpos = int(8000 * self.caller.prompt_seconds / (2 if digit else 1))
        return f"200 result={ord(digit) if digit else 0} endpos={endpos}\n"

    def do_say_digits(self, args: list[str], leaving: bool) -> str | None:
        if len(args) < 2:
            return None
        self.advance(1)
        return "200 result=-1\n" if leaving else "200 result=0\n"

    do_say_number = do_say_digits

    def do_say_datetime(self, args: list[str], leaving: bool) -> str | None:
        if len(args) < 2:
            return None
        if len(args) > 2 and not args[2]:  # an empty format: Asterisk says nothing at all
            return "200 result=0\n"
        self.advance(3)
        return "200 result=-1\n" if leaving else "200 result=0\n"

    def do_wait_for_digit(self, args: list[str], leaving: bool) -> str | None:
        if len(args) != 1:
            return None
        if leaving:
            return "200 result=-1\n"
        key = self._key()
        if key:
            if len(key) > 1:
                self._keys.insert(0, key[1:])
            self.advance(1)
            return f"200 result={ord(key[0])}\n"
        self.advance(int(args[0]) / 1000)
        return "200 result=0\n"

    def do_get_data(self, args: list[str], leaving: bool) -> str | None:
        if len(args) < 1:
            return None
        if leaving:
            self.advance(1)
            return "200 result=-1\n"
        key = self._key()
        max_digits = int(args[2]) if len(args) > 2 else 1024
        if not key:
            self.advance(self.caller.prompt_seconds + int(args[1]) / 1000 if len(args) > 1 else 5)
            return "200 result= (timeout)\n"
        typed = key.split("#", 1)[0][:max_digits]
        self.advance(self.caller.prompt_seconds + 1)
        return f"200 result={typed}\n"

    def do_record_file(self, args: list[str], leaving: bool) -> str | None:
        if len(args) < 4:
            return None
        rate = SAMPLE_RATE.get(args[1], 8000)
        if self.caller.record_cannot_open:
            return "200 result=-1 (writefile)\n"
        if self.caller.record_file_bytes is not None:
            with open(f"{args[0]}.{args[1]}", "wb") as file:
                file.write(b"\0" * self.caller.record_file_bytes)
        seconds = min(self.caller.record_seconds, int(args[3]) / 1000)
        self.advance(seconds)
        endpos = int(seconds * rate)
        if self.caller.record_file_bytes is not None:  # ftell() of a 16-bit file, header out
            written = self.caller.record_file_bytes + self.caller.record_lost_bytes
            endpos = min(endpos, max(written - 44, 0) // 2)
        if leaving:
            return f"200 result=-1 (hangup) endpos={endpos}\n"
        key = self._peek_first(args[2])
        if key:
            return f"200 result={ord(key)} (dtmf) endpos={endpos}\n"
        return f"200 result=0 (timeout) endpos={endpos}\n"

    def do_exec(self, args: list[str], leaving: bool) -> str | None:
        if not args:
            return None
        app = args[0]
        if app == "Dial":
            status = self._dial.pop(0) if self._dial else "NOANSWER"
            self.variables["DIALSTATUS"] = status
            parts = (args[1] if len(args) > 1 else "").split(",")
            ring = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 30
            self.advance(self.caller.talk_seconds if status == "ANSWER" else ring)
            if leaving:  # an answered call the caller ends stays ANSWER (as Asterisk 22)
                if status != "ANSWER":
                    self.variables["DIALSTATUS"] = "CANCEL"
                return "200 result=-1\n"
            return "200 result=0\n"
        if app == "Queue":
            outcome = self._queue.pop(0) if self._queue else "TIMEOUT"
            self.advance(self.caller.talk_seconds)
            self.variables.pop("QUEUESTATUS", None)
            if outcome.startswith("EXIT:"):
                digit = outcome[5:]  # the shipped dialplan has a context per exit digit
                name = {"*": "star", "#": "hash"}.get(digit, digit)
                self.variables.update(CONTEXT=f"xvb-queue-exit-{name}", EXTEN=digit)
            elif outcome != "ANSWERED":
                self.variables["QUEUESTATUS"] = outcome
            return "200 result=-1\n" if leaving else "200 result=0\n"
        if app == "Wait":
            seconds = (args[1] if len(args) > 1 else "1").split(",")[0]
            self.advance(float(seconds) if seconds.replace(".", "").isdigit() else 1)
            return "200 result=-1\n" if leaving else "200 result=0\n"
        if app in ("Playback", "ConfBridge", "Set", "Goto"):
            return "200 result=0\n"
        return "200 result=-2\n"


@dataclass
class PeerFactory(ClientFactory):
    env: list[tuple[str, str]]
    caller: Caller
    advance: Callable[[float], None]
    env_chunks: int = 2
    protocol_instance: AsteriskAGI | None = None

    def buildProtocol(self, addr: Any) -> AsteriskAGI:
        self.protocol_instance = AsteriskAGI(self.env, self.caller, self.advance,
                                             self.env_chunks)
        return self.protocol_instance

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        raise AssertionError(f"could not reach xvbd's FastAGI port: {reason.getErrorMessage()}")


async def start_call(reactor: Any, port: int, env: list[tuple[str, str]], caller: Caller,
                     advance: Callable[[float], None] = lambda s: None) -> AsteriskAGI:
    """Connect to xvbd as Asterisk; return the session as soon as it is connected."""
    factory = PeerFactory(env, caller, advance)
    reactor.connectTCP("127.0.0.1", port, factory)
    while factory.protocol_instance is None:
        d: Deferred[None] = Deferred()
        reactor.callLater(0.001, d.callback, None)
        await d
    return factory.protocol_instance


async def place_call(reactor: Any, port: int, env: list[tuple[str, str]], caller: Caller,
                     advance: Callable[[float], None] = lambda s: None) -> AsteriskAGI:
    """Connect to xvbd as Asterisk; return the session once xvbd has closed it."""
    peer = await start_call(reactor, port, env, caller, advance)
    return await peer.done
