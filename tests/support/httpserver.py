"""An HTTP server process for the WEB-Request tests, on a loopback port of its own: normal,
slow, huge, redirecting and hostile answers.

Run as ``python -m tests.support.httpserver``; it prints its port on the first line of its
output.  :class:`WebServer` starts and stops it from a test.  Paths:

``/text``, ``/html``, ``/json``, ``/echo`` (the request back as JSON), ``/count`` (how many
times it was asked), ``/audio`` (a short WAV), ``/status/N``, ``/slow`` (never answers),
``/huge`` (a body of ``?n=`` bytes with its length), ``/endless`` (a chunked body without
end), ``/redirect?to=URL`` (302), ``/loop`` (a redirect to itself), ``/badjson``,
``/html-as-json`` (HTML where JSON is asked for), ``/gzip`` (a compressed answer),
``/ics/NAME`` (``tests/fixtures/ical/NAME.ics`` as ``text/calendar``) and ``/hits?path=P``
(how many times ``P`` was asked).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
import wave
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HITS = {"count": 0}
ASKED: Counter[str] = Counter()
ICAL = Path(__file__).resolve().parents[1] / "fixtures" / "ical"


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x10" * 8000)  # half a second
    return out.getvalue()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def answer(self, body: bytes, kind: str = "text/plain; charset=utf-8", status: int = 200,
               **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        ASKED[path] += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/text":
            self.answer(b"Your balance is 12 dollars")
        elif path == "/html":
            self.answer(b"<html><body><p>Open <b>9 to 5</b> &amp; weekends</p></body></html>",
                        "text/html")
        elif path == "/json":
            self.answer(json.dumps({"data": {"items": [{"name": "Bob", "age": 42}]},
                                    "rate": "12.5", "open": True}).encode(),
                        "application/json")
        elif path == "/echo":
            self.answer(json.dumps({"method": self.command, "path": self.path,
                                    "body": body.decode(), "type":
                                    self.headers.get("Content-Type", ""),
                                    "encoding": self.headers.get("Accept-Encoding", ""),
                                    "host": self.headers.get("Host", "")}).encode(),
                        "application/json")
        elif path == "/count":
            HITS["count"] += 1
            self.answer(str(HITS["count"]).encode())
        elif path.startswith("/ics/") and path[5:].isalnum() and \
                (ICAL / f"{path[5:]}.ics").is_file():
            self.answer((ICAL / f"{path[5:]}.ics").read_bytes(), "text/calendar")
        elif path == "/hits":
            self.answer(str(ASKED[query["path"][0]]).encode())
        elif path == "/audio":
            self.answer(_wav(), "audio/wav")
        elif path.startswith("/status/"):
            self.answer(b"no", status=int(path.rsplit("/", 1)[1]))
        elif path == "/slow":
            time.sleep(600)
        elif path == "/huge":
            n = int(query.get("n", ["1000000"])[0])
            self.answer(b"x" * n)
        elif path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"y" * 16384
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                return
        elif path == "/redirect":
            self.answer(b"", status=302, Location=query["to"][0])
        elif path == "/loop":
            self.answer(b"", status=302, Location="/loop")
        elif path == "/badjson":
            self.answer(b'{"rate": 12.5, ', "application/json")
        elif path == "/html-as-json":
            self.answer(b"<html>not json</html>", "text/html")
        elif path == "/gzip":
            self.answer(gzip.compress(b"z" * 100000), "text/plain", Content_Encoding="gzip")
        else:
            self.answer(b"no such path", status=404)


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # many requests at once are accepted, not dropped
    daemon_threads = True


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = Server(("127.0.0.1", port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class WebServer:
    """The server as a process of the test's own; ``url(path)`` is on its port."""

    def __init__(self) -> None:
        self.port = 0
        self.start()

    def start(self) -> None:
        """Start the process (again, on the same port after :meth:`stop`)."""
        import subprocess
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.httpserver",
                                      str(self.port)],
                                     cwd=root, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the test HTTP server did not start (said {line!r})")
        self.port = int(line)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    main()
