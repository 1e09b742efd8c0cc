"""A real SMTP server process for the tests (aiosmtpd): ``python -m tests.support.smtp_server
--port N --dir D [--auth USER:PASSWORD] [--tls CERT KEY]``.

Every message it accepts is written to ``D/<n>.eml`` (the bytes as received, written to a
temporary name and renamed) with ``D/<n>.json`` (envelope, TLS and login).  What it answers
can be changed while it runs: the text of ``D/answer-data`` (e.g. ``451 4.3.0 later``) is
its answer to every DATA while the file exists.  Recipients whose local part starts with
``refuse`` get ``550``, with ``busy`` ``450``.  It prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import threading
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keeper:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        local = address.partition("@")[0]
        if local.startswith("refuse"):
            return "550 5.1.1 No such user here"
        if local.startswith("busy"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = self.directory / "answer-data"
        if answer.exists():
            return answer.read_text().strip()
        name = uuid.uuid4().hex
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "login": (session.auth_data.decode() if isinstance(session.auth_data, bytes)
                          else None)}
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content)
        (self.directory / f"{name}.json").write_text(json.dumps(meta))
        tmp.rename(self.directory / f"{name}.eml")
        return "250 2.0.0 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--auth", default="")
    parser.add_argument("--tls", nargs=2, default=None)
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
        options.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, _, password = args.auth.partition(":")

        def check(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
            ok = (isinstance(data, LoginPassword) and data.login == user.encode()
                  and data.password == password.encode())
            return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

        options.update(authenticator=check, auth_required=True,
                       auth_require_tls=bool(args.tls))
    controller = Controller(Keeper(args.dir), hostname="127.0.0.1", port=args.port,
                            server_hostname="localhost", **options)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
