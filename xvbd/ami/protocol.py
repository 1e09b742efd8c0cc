"""The Asterisk Manager Interface on the wire: bytes to messages and back, nothing else.

A message is ``Key: Value`` lines ending in an empty line (``\\r\\n``; a lone ``\\n`` is
accepted).  The first line Asterisk sends is its banner (``Asterisk Call Manager/11.0.0``),
alone, with no empty line after it.  Keys may repeat (``Variable``, ``Output``), so a message
keeps its fields in order.  Before Asterisk 14 the ``Command`` action answered with
``Response: Follows`` and raw output lines up to ``--END COMMAND--``; both shapes are read,
and ``Message.output`` holds the lines either way.

Values never contain a line break: :func:`encode_action` refuses one rather than let a
tenant's phone number or caller name add a header to an action.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

END_COMMAND = "--END COMMAND--"
_FOLLOWS_HEADERS = ("privilege", "actionid", "message")
#: A line longer than this without its end means the peer is not Asterisk.
MAX_LINE = 65536


class AMIProtocolError(Exception):
    """The bytes are not the Asterisk Manager Interface."""


@dataclass
class Message:
    """One AMI message: a response, an event (or, from a test peer's view, an action)."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    #: The events of a list answer (``EventList: start`` … ``…Complete``), in order.
    events: list[Message] = field(default_factory=list)

    _index: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def _lookup(self) -> dict[str, str]:
        """Lower-cased key -> first value, made once (a message is read a few times)."""
        index = self._index
        if index is None:
            index = {}
            for name, value in self.fields:
                index.setdefault(name.lower(), value)
            self._index = index
        return index

    def get(self, key: str, default: str = "") -> str:
        """The first value of ``key`` (case-insensitive), or ``default``."""
        return self._lookup().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    @property
    def event(self) -> str:
        return self._lookup().get("event", "")

    @property
    def response(self) -> str:
        return self._lookup().get("response", "")

    @property
    def action_id(self) -> str:
        return self._lookup().get("actionid", "")

    def as_dict(self) -> dict[str, str]:
        """First value of every key (for logs and simple lookups)."""
        out: dict[str, str] = {}
        for name, value in self.fields:
            out.setdefault(name, value)
        return out


def encode_action(name: str, fields: Iterable[tuple[str, str]] = ()) -> bytes:
    """``Action: name`` and the fields, as Asterisk reads them.

    A value (or key) with a line break or a key with a colon would change the message;
    it is refused with ValueError naming the key.
    """
    lines = [f"Action: {name}"]
    for key, value in fields:
        value = str(value)
        if not key or ":" in key or any(c in key + value for c in "\r\n"):
            raise ValueError(f"AMI field {key!r} has a line break or a bad name: {value!r}")
        lines.append(f"{key}: {value}")
    if any(c in name for c in "\r\n"):
        raise ValueError(f"AMI action name {name!r} has a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _block(block: bytes) -> Message | None:
    """One message's lines (no ``Response: Follows`` output in it), CRLF between them."""
    fields: list[tuple[str, str]] = []
    output: list[str] = []
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            if line:
                output.append(line)
            continue
        if value[:1] == " ":
            value = value[1:]
        key = key.strip()
        fields.append((key, value))
        if key.lower() == "output":
            output.append(value)
    if not fields and not output:
        return None  # blank lines between messages
    return Message(fields, output)


class MessageParser:
    """Feed it the bytes as they come (split or merged anyhow); it yields whole messages.

    ``banner`` is set from the first line.  Lines that are not ``Key: Value`` inside a
    ``Response: Follows`` message are command output; elsewhere they are kept as output too
    (Asterisk does not send them, but a stray line must not lose the message around it).
    """

    def __init__(self, expect_banner: bool = True) -> None:
        self.banner: str | None = None if expect_banner else ""
        self._buffer = b""
        self._fields: list[tuple[str, str]] = []
        self._output: list[str] = []
        self._follows = False

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buffer += data
        buffer = self._buffer
        start = 0
        try:
            while True:
                if self._ready_for_blocks():
                    # Whole messages at once: the common case, and most of the work.
                    end = buffer.find(b"\r\n\r\n", start)
                    if end >= 0:
                        block = buffer[start:end]
                        if b"Follows" not in block and b"\n" not in block.replace(b"\r\n", b""):
                            start = end + 4
                            message = _block(block)
                            if message is not None:
                                yield message
                            continue
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                raw = buffer[start:end]
                start = end + 1
                message = self._line(raw[:-1] if raw.endswith(b"\r") else raw)
                if message is not None:
                    yield message
        finally:
            self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE:
            raise AMIProtocolError(f"a line of more than {MAX_LINE} bytes with no end")

    def _ready_for_blocks(self) -> bool:
        """Between messages, in the ordinary shape (not in command output)."""
        return (self.banner is not None and not self._follows and not self._fields
                and not self._output)

    def _line(self, raw: bytes) -> Message | None:
        line = raw.decode("utf-8", "replace")
        if self.banner is None:
            self.banner = line
            return None
        if self._follows:
            if line.endswith(END_COMMAND):
                head = line[: -len(END_COMMAND)]
                if head:
                    self._output.append(head)
                self._follows = False
                return None
            if self._output or line.partition(":")[0].strip().lower() not in _FOLLOWS_HEADERS:
                self._output.append(line)
                return None
        if not line:
            if not self._fields and not self._output:
                return None  # blank lines between messages
            message = Message(self._fields, self._output)
            self._fields, self._output = [], []
            self._follows = False
            return message
        key, sep, value = line.partition(":")
        if not sep:
            self._output.append(line)
            return None
        key = key.strip()
        value = value[1:] if value.startswith(" ") else value
        self._fields.append((key, value))
        if key.lower() == "output":
            self._output.append(value)
        elif key.lower() == "response" and value.lower() == "follows":
            self._follows = True
        return None
