"""Run the real process: ``twistd -n xvbd -c FILE`` as a subprocess of the test."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTED = re.compile(r"xvbd \S+ started: server_id=(\S+) agi=tcp:([\d.]+):(\d+) "
                     r"web=tcp:([\d.]+):(\d+) db=(\w+)")


def environment() -> dict[str, str]:
    """The source tree first on the path, so the process runs the code under test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def write_config(directory: Path, db_url: str, extra: str = "", common: str = "") -> Path:
    conf = directory / "xvb.conf"
    conf.write_text(f"""
[COMMON]
SERVER_ID = TEST-NODE
{common}
[DB]
URL = {db_url}
[AGI]
LISTEN = tcp:0:interface=127.0.0.1
SHUTDOWN_GRACE = 1
[WEB]
LISTEN = tcp:0:interface=127.0.0.1
[DEBUG]
SEND_TO = FILE
FILE = {directory / 'xvbd.log'}
[CDR]
FILE = {directory / 'xvbd.cdr'}
{extra}
""")
    return conf


class Server:
    """A started xvbd: its ports, its output so far, and how to stop it."""

    def __init__(self, conf: Path, cwd: Path) -> None:
        self.log_path = cwd / "twistd.out"
        self._out = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "xvbd", "-c", str(conf)], cwd=cwd,
            env=environment(), stdout=self._out, stderr=subprocess.STDOUT)
        self.agi_port = self.web_port = 0
        self.server_id = self.backend = ""

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 20.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = STARTED.search(self.output())
            if match:
                self.server_id, self.agi_port, self.web_port, self.backend = (
                    match[1], int(match[3]), int(match[5]), match[6])
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"xvbd exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"xvbd did not start within {timeout} s:\n{self.output()}")

    def terminate(self, timeout: float = 5.0) -> tuple[int, float]:
        """SIGTERM; return (exit status, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill()
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def run_to_exit(conf: Path, cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Start xvbd with ``conf`` expecting it to refuse: its exit status and output."""
    return subprocess.run([str(BIN / "twistd"), "-n", "--pidfile=", "xvbd", "-c", str(conf)],
                          cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def admin(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``xvbd-admin`` from the source tree."""
    return subprocess.run([sys.executable, "-m", "xvbd.cli", *args], cwd=cwd, env=environment(),
                          input=stdin, capture_output=True, text=True, timeout=60)


class _SocketTransport:
    """Lets the Twisted-side peer (tests.peers.agi) talk over a plain blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def loseConnection(self) -> None:
        self.closed = True

    abortConnection = loseConnection


def call_process(port: int, env: list[tuple[str, str]], caller: Any,
                 timeout: float = 20.0) -> Any:
    """One call against a running xvbd process, Asterisk's side played by the test peer;
    returns the peer once xvbd has closed the socket."""
    from tests.peers.agi import AsteriskAGI

    peer = AsteriskAGI(env, caller, advance=lambda seconds: None)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        transport = _SocketTransport(sock)
        peer.transport = transport
        peer.connectionMade()
        while not transport.closed:
            data = sock.recv(65536)
            if not data:
                break
            peer.dataReceived(data)
    return peer
