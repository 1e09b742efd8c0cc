"""The tests' own AMI client for the real Asterisk: a plain socket, a reader thread that
keeps every event, and waits on them with a deadline.

It shares nothing with ``xvbd.ami`` (the code under test): messages are cut by the test
peer's small parser, ``tests.peers.ami.parse_messages``.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.peers.ami import parse_messages

Event = dict[str, str]


def as_dict(fields: list[tuple[str, str]]) -> Event:
    """An AMI message as a dict (a repeated key, such as ChanVariable, keeps its values
    joined by newlines)."""
    out: Event = {}
    for key, value in fields:
        out[key] = f"{out[key]}\n{value}" if key in out else value
    return out


class Manager:
    """One logged-in AMI session with every event seen kept in order."""

    def __init__(self, port: int, username: str, secret: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(None)
        self.events: list[Event] = []
        self._responses: dict[str, Event] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        banner = b""
        while not banner.endswith(b"\r\n"):
            banner += self.sock.recv(1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        reply = self.action("Login", Username=username, Secret=secret, Events="on")
        if reply.get("Response") != "Success":
            raise AssertionError(f"AMI login refused: {reply}")

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            messages, buffer = parse_messages(buffer + data)
            with self._cond:
                for fields in messages:
                    message = as_dict(fields)
                    if "Event" in message:
                        message["_seen"] = f"{time.monotonic():.6f}"
                        self.events.append(message)
                    elif "ActionID" in message:
                        self._responses[message["ActionID"]] = message
                self._cond.notify_all()

    def action(self, name: str, timeout: float = 10.0, **fields: Any) -> Event:
        """Send one action and wait for its response."""
        action_id = f"t{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        for key, value in fields.items():
            values = value if isinstance(value, list | tuple) else [value]
            lines.extend(f"{key}: {v}" for v in values)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + timeout
        with self._cond:
            while action_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AssertionError(f"AMI {name}: no response in {timeout} s")
                self._cond.wait(left)
            return self._responses.pop(action_id)

    def wait_for(self, match: Callable[[Event], bool], timeout: float = 10.0, *,
                 after: int = 0, what: str = "") -> tuple[int, Event]:
        """The first event from index ``after`` on that ``match`` accepts, and its index."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = after
            while True:
                while index < len(self.events):
                    if match(self.events[index]):
                        return index, self.events[index]
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    recent = "\n".join(
                        f"  {e.get('Event')} {e.get('Channel', '')} "
                        f"{e.get('Command', e.get('Application', ''))}"
                        for e in self.events[-25:])
                    raise AssertionError(f"no AMI event {what or match} within {timeout} s; "
                                         f"the last ones:\n{recent}")
                self._cond.wait(min(left, 0.5))

    def seen(self) -> int:
        with self._cond:
            return len(self.events)

    def close(self) -> None:
        try:
            self.action("Logoff", timeout=2)
        except (AssertionError, OSError):
            pass
        self.sock.close()
