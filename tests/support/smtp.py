"""An SMTP server process of a test's own (aiosmtpd, ``tests/support/smtp_server.py``) on
a loopback port of its own, that the test stops and starts again on the same port, and
the mails it received, parsed."""

from __future__ import annotations

import email
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Received:
    message: EmailMessage
    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    tls: bool
    login: str | None


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class SMTPServer:
    def __init__(self, directory: Path, *, auth: str = "",
                 tls: tuple[Path, Path] | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.tls = tls
        self.proc: Any = None

    def start(self) -> SMTPServer:
        command = [sys.executable, "-m", "tests.support.smtp_server", "--port", str(self.port),
                   "--dir", str(self.directory)]
        if self.auth:
            command += ["--auth", self.auth]
        if self.tls:
            command += ["--tls", str(self.tls[0]), str(self.tls[1])]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the SMTP server did not start: {self.proc.stderr.read()}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the listener is up once it greets
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    if c.recv(64).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the SMTP server does not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.proc = None

    def answer_data(self, answer: str | None) -> None:
        """Answer every DATA with ``answer`` (``451 …``, ``554 …``) from now on; None:
        accept again."""
        file = self.directory / "answer-data"
        if answer is None:
            file.unlink(missing_ok=True)
        else:
            file.write_text(answer)

    def received(self) -> list[Received]:
        out = []
        for file in sorted(self.directory.glob("*.eml"), key=lambda f: f.stat().st_mtime_ns):
            raw = file.read_bytes()
            meta = json.loads(file.with_suffix(".json").read_text())
            message = email.message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            out.append(Received(message, raw, meta["mail_from"], meta["rcpt_tos"], meta["tls"],
                                meta["login"]))
        return out
