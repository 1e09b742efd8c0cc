"""The environment block Asterisk sends first on a FastAGI connection, read so that no value
can lose the call or change another.

res_agi (``setup_env()``) writes ``agi_<key>: <value>`` lines in a fixed order — the keys of
:data:`ORDER`, then ``agi_arg_1`` … — and an empty line; it writes every value raw.  A
caller's name (``agi_calleridname``), and the other numbers a caller sends, may hold line
breaks, empty lines, bytes that are not UTF-8, or thousands of bytes.  So:

* a line that is not the next key of that order belongs to the value before it;
* the block ends at an empty line only once ``agi_threadid`` has come, and only when
  nothing but Asterisk's ``HANGUP`` follows it (Asterisk sends nothing else before xvbd's
  first command), so an empty line in a value does not end it;
* which lines are the keys is decided on the whole block: the keys up to
  ``agi_calleridname`` are the first of their name (nothing of the caller's comes before
  them), ``agi_threadid`` is the last one, the keys between are read backwards from it
  (each the last of its name before the next) and the arguments follow it.  What a caller
  writes into a value comes before the real lines that follow it, so a copy of keys in a
  name stays in the name: it cannot add an ``agi_arg_N``, change another key or end the
  block.  When several of the caller's values hold such copies the same bytes can be
  written by different sets of values, and what one held may be read into another of
  them; the arguments, the keys before ``agi_callerid`` and the beginning of the caller
  id are always Asterisk's;
* every value is decoded as UTF-8 (bad bytes replaced) and cut to :data:`NAME_LIMIT` or
  :data:`VALUE_LIMIT` characters, each change said in :attr:`AGIEnv.notes`; the block as a
  whole is at most :data:`MAX_ENV_BYTES`.

The usual block (one line a key, short values, UTF-8) is read by one regular expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs

#: The keys res_agi sends, in its order (Asterisk 18 to 22); the arguments follow.
ORDER = ("network", "network_script", "request", "channel", "language", "type", "uniqueid",
         "version", "callerid", "calleridname", "callingpres", "callingani2", "callington",
         "callingtns", "dnid", "rdnis", "context", "extension", "priority", "enhanced",
         "accountcode", "threadid")
#: The most an environment may take: far more than a SIP message can carry into it.
MAX_ENV_BYTES = 64 * 1024
#: Characters kept of a number or a name (what callers send), and of any other value.
NAME_LIMIT = 255
VALUE_LIMIT = 1024
NAME_KEYS = frozenset({"callerid", "calleridname", "dnid", "rdnis", "extension",
                       "accountcode"})

_PREFIXES = tuple(f"agi_{key}:".encode() for key in ORDER)
_NAME = ORDER.index("calleridname")
_THREADID = len(ORDER) - 1
_HANGUPS = b"HANGUP\nHANGUP\n"  # what may follow the block (AGIEXITONHANGUP says it twice)
_USUAL = re.compile("".join(f"agi_{key}: ([^\n]*)\n" for key in ORDER) +
                    "((?:agi_arg_[0-9]+: [^\n]*\n)*)\n")


class BadInput(Exception):
    """What Asterisk (or whatever is on the socket) sent cannot be a FastAGI session."""


@dataclass(frozen=True)
class AGIEnv:
    """The environment block of one call; ``notes`` says what was cut or replaced."""

    values: dict[str, str]
    args: tuple[str, ...]
    notes: tuple[str, ...] = ()

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


def parse_agi_env(block: bytes) -> AGIEnv:
    """The ``agi_key: value`` lines of a block (each ending in a line feed, without the
    empty line) to an :class:`AGIEnv`; :class:`BadInput` when they are not an environment."""
    return _usual(block + b"\n") or _careful(block)


def _usual(raw: bytes | bytearray) -> AGIEnv | None:
    """The whole block and its empty line, when it is the usual one; else None."""
    try:
        match = _USUAL.fullmatch(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    values = match.groups()
    if max(map(len, values[:-1])) > NAME_LIMIT:
        return None
    args: list[str] = []
    if values[-1]:
        for n, line in enumerate(values[-1][:-1].split("\n"), 1):
            prefix = f"agi_arg_{n}: "
            if not line.startswith(prefix) or len(line) - len(prefix) > NAME_LIMIT:
                return None
            args.append(line[len(prefix):])
    return AGIEnv(dict(zip(ORDER, values, strict=False)), tuple(args))


def _careful(block: bytes) -> AGIEnv:
    """Any block: keys found as the module says, values decoded and cut."""
    lines = block.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if not lines or not lines[0].startswith(_PREFIXES[0]):
        raise BadInput(f"not an AGI environment line: {lines[0][:80]!r}" if lines else
                       "an empty AGI environment")
    at = [0] * len(ORDER)
    i = 0
    for k in range(1, _NAME + 1):  # nothing of the caller's before these: the first ones
        i += 1
        while i < len(lines) and not lines[i].startswith(_PREFIXES[k]):
            i += 1
        if i == len(lines):
            raise BadInput(f"an AGI environment without agi_{ORDER[k]}")
        at[k] = i
    last = len(lines) - 1  # the real agi_threadid follows everything a caller wrote
    while last > at[_NAME] and not lines[last].startswith(_PREFIXES[_THREADID]):
        last -= 1
    if last == at[_NAME]:
        raise BadInput("an AGI environment without agi_threadid after agi_calleridname")
    at[_THREADID] = last
    j = last
    for k in range(_THREADID - 1, _NAME, -1):  # backwards: each the last before the next
        j -= 1
        while j > at[_NAME] and not lines[j].startswith(_PREFIXES[k]):
            j -= 1
        if j == at[_NAME]:
            raise BadInput(f"an AGI environment without agi_{ORDER[k]}")
        at[k] = j
    starts = [(ORDER[k], len(_PREFIXES[k]), at[k]) for k in range(len(ORDER))]
    n = 1
    for i in range(last + 1, len(lines)):
        prefix = b"agi_arg_%d:" % n
        if lines[i].startswith(prefix):
            starts.append((f"arg_{n}", len(prefix), i))
            n += 1
    notes: list[str] = []
    values: dict[str, str] = {}
    for (key, skip, first), (_, _, after) in zip(
            starts, [*starts[1:], ("", 0, len(lines))], strict=True):
        head = lines[first][skip:]
        raw = b"\n".join([head[1:] if head[:1] == b" " else head, *lines[first + 1:after]])
        values[key] = _decoded(key, raw, notes)
    args = tuple(values.pop(f"arg_{m}") for m in range(1, n))
    return AGIEnv(values, args, tuple(notes))


def _decoded(key: str, raw: bytes, notes: list[str]) -> str:
    """One value as text: UTF-8 with bad bytes replaced, cut to its limit; ``notes`` says
    what was done."""
    changes = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        changes.append("bytes that are not UTF-8 replaced by U+FFFD")
    limit = NAME_LIMIT if key in NAME_KEYS else VALUE_LIMIT
    if len(text) > limit:
        changes.append(f"cut from {len(text)} to {limit} characters")
        text = text[:limit]
    breaks = text.count("\n")
    if breaks:
        changes.append(f"{breaks} line break(s) kept in it")
    if changes:
        notes.append(f"agi_{key}: {', '.join(changes)}")
    return text


class EnvReader:
    """Collects the environment as its bytes come, and says when it has ended.

    Each line is looked at once however the bytes are split; the usual block, whole in
    what has come, is read at once."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._head_checked = False
        self._first_end = -1  # where the first line ends, once it has
        self._searched = 0  # where the search for an empty line goes on from
        self._scanning = False
        self._pos = 0  # where the first line not yet looked at starts
        self._seen = -1  # the last key of ORDER found in order (the first of each name)

    def feed(self, data: bytes) -> tuple[AGIEnv, bytes] | None:
        """Take more bytes: the environment and the bytes after it once it has ended, None
        until then; :class:`BadInput` when they cannot become an environment."""
        buf = self.buffer
        if not buf and data.endswith(b"\n\n"):  # the usual: all of it in one read
            env = _usual(data)
            if env is not None:
                return env, b""
        buf += data
        if len(buf) > MAX_ENV_BYTES:
            raise BadInput(f"an AGI environment longer than {MAX_ENV_BYTES} bytes")
        if not self._head_checked:
            self._check_head()
        if not self._scanning:
            if buf.endswith(b"\n\n") and len(buf) > len(data):
                env = _usual(buf)  # the usual, in two reads or more
                if env is not None:
                    return env, b""
            if buf.find(b"\n\n", max(0, self._searched - 1)) < 0:
                self._searched = len(buf)
                return None
            self._scanning = True  # not the usual block: from now on, line by line
        return self._scan()

    def _check_head(self) -> None:
        """Refuse at once what is not an environment: the first line is ``agi_network``,
        whose value is always ``yes``, so the second is a key too."""
        buf = self.buffer
        first = _PREFIXES[0]
        if not (buf.startswith(first) or first.startswith(buf)):
            raise BadInput(f"not an AGI environment line: {bytes(buf[:80])!r}")
        if self._first_end < 0:
            self._first_end = buf.find(b"\n", max(0, self._searched - 1))
            if self._first_end < 0:
                return  # the first line goes on
        second = bytes(buf[self._first_end + 1:self._first_end + 5])
        if second[:1] == b"\n":
            raise BadInput("an AGI environment that ends before agi_threadid")
        if len(second) < 4 and b"\n" not in second:
            return  # the second line has not come yet
        if not second.startswith(b"agi_"):
            line = bytes(buf[self._first_end + 1:self._first_end + 81]).split(b"\n", 1)[0]
            raise BadInput(f"not an AGI environment line: {line!r}")
        self._head_checked = True

    def _scan(self) -> tuple[AGIEnv, bytes] | None:
        buf = self.buffer
        pos, seen = self._pos, self._seen
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                self._pos, self._seen = pos, seen
                return None
            if end == pos:  # an empty line: the end, or a line of a value
                if (seen == _THREADID and len(buf) - end - 1 <= len(_HANGUPS) and
                        _HANGUPS.startswith(buf[end + 1:])):
                    return parse_agi_env(bytes(buf[:pos])), bytes(buf[end + 1:])
            elif seen < _THREADID and buf.startswith(_PREFIXES[seen + 1], pos):
                seen += 1
            pos = end + 1

    def progress(self) -> str:
        """What has come so far, for a person reading why an environment was refused."""
        pos, seen = 0, -1
        buf = self.buffer
        while seen < _THREADID:
            end = buf.find(b"\n", pos)
            if end < 0:
                break
            if buf.startswith(_PREFIXES[seen + 1], pos):
                seen += 1
            pos = end + 1
        if seen < 0:
            return f"{len(buf)} bytes and no agi_network line"
        if seen < _THREADID:
            return (f"{len(buf)} bytes, the keys in order up to agi_{ORDER[seen]} and no "
                    f"agi_{ORDER[seen + 1]} after it; Asterisk sends every key up to "
                    "agi_threadid, the arguments, then an empty line")
        return f"{len(buf)} bytes, every key up to agi_threadid, and no empty line after them"
