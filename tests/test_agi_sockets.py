"""Bad input on real sockets closes that session alone; other calls go on.  A connection cut
in the middle of a call still leaves the call's records."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import globalLogPublisher

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from xvbd.demo import seed_demo


class Raw(Protocol):
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = b""
        self.closed: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(self.received)


async def send_raw(port: int, payload: bytes) -> bytes:
    proto = Raw(payload)
    factory = ClientFactory.forProtocol(lambda: proto)
    reactor.connectTCP("127.0.0.1", port, factory)
    return await proto.closed


class SocketTests(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        self.events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logged(self, text: str) -> bool:
        return any(text in str(e.get("why", "")) for e in self.events)

    async def test_bad_input_closes_only_that_session(self) -> None:
        await seed_demo(self.store)
        good = await self.start(Caller(keys=[None], hold_on="^WAIT FOR DIGIT"), args=("100",))
        await good.holding
        bad_inputs = {
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n": "not an AGI environment line",
            b"agi_network: yes\nagi_network_script: " + b"x" * 70000: "longer than 65536",
            b"agi_network: yes\n\n": "ends before agi_threadid",
        }
        for payload, why in bad_inputs.items():
            self.assertEqual(await send_raw(self.port, payload), b"", "closed, nothing said")
            self.assertTrue(self.logged(why), why)
        self.factory.env_deadlines.timeout = 0.2
        self.assertEqual(await send_raw(self.port, b"agi_network: yes\n"), b"")
        self.assertTrue(self.logged("did not end within 0.2 s"))
        good.release()
        await good.done
        self.assertEqual(self.result, "OK", "the good call went on")

    async def test_a_cut_connection_still_leaves_the_records(self) -> None:
        await seed_demo(self.store)
        for command in ("^WAIT FOR DIGIT", "^SAY DATETIME", "^RECORD FILE", "^SET VARIABLE"):
            with self.subTest(command=command):
                before = len(self.cdr_lines())
                await self.call(Caller(keys=["2", "1"], drop_on=command), args=("100",))
                new = self.cdr_lines()[before:]
                self.assertEqual(sum(", TYPE=XVB," in line for line in new), 1, new)
                self.assertEqual(self.factory.sessions, set())


SocketsOnSQLite, SocketsOnMariaDB = on_both_backends(SocketTests)
