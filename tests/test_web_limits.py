"""A request body over the web's limit is refused at once with 413, by its Content-Length
before any of the body is read, or as soon as a chunked body passes the limit; nothing is
kept and no route runs.  A body within the limit is served as usual."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tests.support.db import on_both_backends
from tests.support.web import WebCase
from xvbd.web import root


class Raw(Protocol):
    """Sends bytes and collects the answer until the server closes the connection."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(self.received)


class BodyLimitTests(WebCase):
    async def raw(self, head: bytes, body: bytes = b"") -> bytes:
        port = self.listener.getHost().port  # type: ignore[attr-defined]
        client = Raw()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        assert client.transport is not None
        client.transport.write(head + body)
        answer = await client.closed.addTimeout(10, reactor)
        return answer

    async def test_a_body_over_the_limit_is_refused_before_it_is_read(self) -> None:
        self.patch(root.BoundedRequest, "max_body", 1000)
        gid = (await self.store.accounts.create_group("g", 1)).id
        await self.store.accounts.create_user("613", "10001", gid, pin="4321")
        answer = await self.raw(b"POST /ui/login HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/x-www-form-urlencoded\r\n"
                                b"Content-Length: 999999999\r\n\r\n", b"voice_number=613")
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 Payload Too Large\r\n"), answer)
        self.assertIn(b"The request is larger than 0 MB", answer)
        login = b"voice_number=613&access_code=10001&secret=4321&pad=" + b"a" * 1200
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(login[i:i + 500]), login[i:i + 500])
                           for i in range(0, len(login), 500)) + b"0\r\n\r\n"
        answer = await self.raw(b"POST /ui/login HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/x-www-form-urlencoded\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n", chunked)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer)
        self.assertEqual(await self.sessions(), 0, "no route ran: nobody logged in")
        # within the limit, the same route answers as usual (with the login form's token
        # and the pre-login cookie it is bound to, as a browser sends them)
        browser = self.browser()
        page = await browser.get("/ui/login")
        cookie = next(c for c in browser.jar if c.name == "xvbd_ui_login")
        body = b"voice_number=613&access_code=10001&secret=4321&_csrf=" + page.csrf.encode()
        answer = await self.raw(b"POST /ui/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"Content-Type: application/x-www-form-urlencoded\r\n"
                                b"Cookie: xvbd_ui_login=%s\r\n"
                                b"Content-Length: %d\r\n\r\n" % (str(cookie.value).encode(),
                                                                   len(body)), body)
        self.assertTrue(answer.startswith(b"HTTP/1.1 303"), answer[:200])
        self.assertEqual(await self.sessions(), 1)

    async def sessions(self) -> int:
        return int(await self.db.run_interaction(
            lambda txn: txn.scalar("SELECT COUNT(*) FROM web_sessions")))


BodyLimitOnSQLite, BodyLimitOnMariaDB = on_both_backends(BodyLimitTests)
