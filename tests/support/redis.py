"""Redis for tests: 127.0.0.1:6379 (``XVBD_TEST_REDIS``), each test under its own key prefix,
removed afterwards."""

from __future__ import annotations

import os
import uuid
from typing import Any

REDIS = os.environ.get("XVBD_TEST_REDIS", "127.0.0.1:6379")


def new_prefix() -> str:
    return f"xvbd-test-{uuid.uuid4().hex[:10]}:"


def connect() -> Any:
    import txredisapi

    host, _, port = REDIS.partition(":")
    return txredisapi.lazyConnectionPool(host, int(port or 6379), poolsize=2, connectTimeout=5)


async def drop_prefix(redis: Any, prefix: str) -> None:
    keys = await redis.keys(prefix + "*")
    if keys:
        await redis.delete(keys)


class RedisServer:
    """A Redis server process of a test's own, on a port of its own, that the test stops
    (as a crash would: SIGKILL, nothing kept) and starts again on the same port."""

    def __init__(self, directory: str) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.proc: Any = None

    def start(self) -> RedisServer:
        import shutil
        import socket
        import subprocess
        import time

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def keys(self, pattern: str) -> dict[str, int]:
        """``{key: ZCARD}`` of the sorted sets matching ``pattern`` (through redis-cli)."""
        import subprocess

        def cli(*args: str) -> str:
            return subprocess.run(["redis-cli", "-p", str(self.port), *args],
                                  capture_output=True, text=True, check=True).stdout
        return {key: int(cli("ZCARD", key)) for key in cli("--raw", "KEYS", pattern).split()}
