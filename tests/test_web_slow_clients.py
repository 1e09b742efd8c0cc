"""Slow and too many web clients (``xvbd.web.limits``): the real ``HTTPChannel`` of the web's
site, driven byte by byte over in-memory transports on a ``task.Clock``.

A head dribbled past HEADER_TIMEOUT (counted from its first byte, whatever comes after) and
a body slower than BODY_TIMEOUT are answered 408 and closed; an idle kept-alive connection
is closed after IDLE_TIMEOUT; connections over MAX_CONNECTIONS_PER_ADDRESS or
MAX_CONNECTIONS are answered 503 at once, counted, and said in one WARN line; a trusted
proxy is not capped per address; the open-file limit is fitted to the caps at start."""

from __future__ import annotations

import resource
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from xvbd.config import ConfigError, parse_settings
from xvbd.web import limits
from xvbd.web.limits import LimitedSite, WebLimits, fit_descriptors
from xvbd.web.root import web_site

GET = b"GET /page HTTP/1.1\r\nHost: xvbd.example\r\n\r\n"


class Page(Resource):
    """Answers a GET with ``ok`` and a POST with the size of its body; counts renders."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.rendered = 0

    def render_GET(self, request: Any) -> bytes:
        self.rendered += 1
        return b"ok"

    def render_POST(self, request: Any) -> bytes:
        self.rendered += 1
        return b"%d" % len(request.content.read())


class RLimits:
    """``resource``'s open-file calls, on numbers of the test's own."""

    RLIMIT_NOFILE = resource.RLIMIT_NOFILE
    RLIM_INFINITY = resource.RLIM_INFINITY

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limit = (soft, hard)
        self.refuse = refuse

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limit

    def setrlimit(self, which: int, limit: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.limit = limit


class Client:
    """One connection to the site from ``host``: what was written to it, whether it is
    still open."""

    def __init__(self, site: LimitedSite, host: str, port: int) -> None:
        addr = IPv4Address("TCP", host, port)
        self.protocol = site.buildProtocol(addr)
        self.transport = StringTransportWithDisconnection(peerAddress=addr)
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    @property
    def answer(self) -> bytes:
        return self.transport.value()

    @property
    def is_open(self) -> bool:
        return bool(self.transport.connected)


class SlowClientTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.page = Page()
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.site = self.make_site()
        self.ports = iter(range(40000, 60000))

    def make_site(self, trusted: tuple[str, ...] = (), **kw: Any) -> LimitedSite:
        site = web_site(self.page, trusted, WebLimits(**kw), reactor=self.clock)
        assert isinstance(site, LimitedSite)
        site.rlimits = RLimits(1 << 20, 1 << 20)
        site.doStart()
        self.addCleanup(site.doStop)
        return site

    def connect(self, host: str = "192.0.2.7", site: LimitedSite | None = None) -> Client:
        return Client(site or self.site, host, next(self.ports))

    def warnings(self) -> list[str]:
        return [formatEvent(e) for e in self.events
                if e.get("log_namespace") == "xvbd.web" and e["log_level"].name == "warn"]

    def tearDown(self) -> None:
        # Every connection closed releases its place and leaves no timer behind.
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def close(self, *clients: Client) -> None:
        for client in clients:
            if client.is_open:
                client.transport.loseConnection()
        self.assertEqual(self.site.gate.open, 0)
        self.assertEqual(self.site.gate.by_address, {})

    # ---------------------------------------------------------------- head, body, idle

    def test_a_head_dribbled_a_byte_a_second_is_cut_off_ten_seconds_after_its_first_byte(
            self) -> None:
        client = self.connect()
        self.clock.advance(30)  # before the first byte only the idle timeout counts
        head = b"GET /page HTTP/1.1\r\nHost: xvbd.example\r\nX-Slow: " + b"a" * 100
        for byte in head[:10]:
            client.send(bytes([byte]))
            self.clock.advance(0.99)
        self.assertTrue(client.is_open)
        self.assertEqual(client.answer, b"")
        self.clock.advance(0.1)  # 10 s after the first byte, one byte later than the last
        self.assertFalse(client.is_open)
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"),
                        client.answer)
        self.assertIn(b"Connection: close\r\n", client.answer)
        self.assertEqual(self.site.gate.timed_out, {"header": 1, "body": 0, "idle": 0})
        self.assertEqual(self.page.rendered, 0)
        self.close(client)

    def test_a_head_that_comes_in_time_is_served_and_each_request_has_its_own_deadline(
            self) -> None:
        client = self.connect()
        for piece in (GET[:5], GET[5:20], GET[20:]):
            client.send(piece)
            self.clock.advance(4)  # 8 s for the head in all
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 200 OK\r\n"), client.answer)
        self.assertTrue(client.is_open)
        client.transport.clear()
        self.clock.advance(60)  # kept alive, under IDLE_TIMEOUT
        for piece in (GET[:30], GET[30:]):
            client.send(piece)
            self.clock.advance(9)  # 9 s for this head: its own deadline
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 200 OK\r\n"), client.answer)
        self.assertEqual(self.page.rendered, 2)
        self.assertEqual(self.site.gate.timed_out, {"header": 0, "body": 0, "idle": 0})
        self.close(client)

    def test_a_kept_alive_connection_left_idle_is_closed_without_an_answer(self) -> None:
        client = self.connect()
        client.send(GET)
        client.transport.clear()
        self.clock.advance(74.9)
        self.assertTrue(client.is_open)
        self.clock.advance(0.1)
        self.assertFalse(client.is_open)
        self.assertEqual(client.answer, b"")
        silent = self.connect("192.0.2.8")  # never sends a byte
        self.clock.advance(75)
        self.assertFalse(silent.is_open)
        self.assertEqual(self.site.gate.timed_out, {"header": 0, "body": 0, "idle": 2})
        self.close(client, silent)

    def test_a_body_that_comes_too_slowly_is_answered_408_and_never_served(self) -> None:
        client = self.connect()
        client.send(b"POST /page HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        for _ in range(11):  # 10 bytes every 10 s: never idle, but too slow in all
            client.send(b"x" * 5)
            self.clock.advance(10)
        self.assertTrue(client.is_open)
        self.clock.advance(10)  # 120 s after the head
        self.assertFalse(client.is_open)
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertEqual(self.page.rendered, 0)
        self.assertEqual(self.site.gate.timed_out, {"header": 0, "body": 1, "idle": 0})
        self.close(client)

    def test_a_body_that_pauses_longer_than_the_idle_timeout_is_answered_408(self) -> None:
        client = self.connect()
        client.send(b"POST /page HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        self.clock.advance(75)
        self.assertFalse(client.is_open)
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertEqual(self.site.gate.timed_out, {"header": 0, "body": 1, "idle": 0})
        self.close(client)

    def test_a_body_in_time_is_served(self) -> None:
        client = self.connect()
        client.send(b"POST /page HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        self.clock.advance(50)
        client.send(b"def")
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 200 OK\r\n"), client.answer)
        self.assertTrue(client.answer.endswith(b"\r\n\r\n6"), client.answer)
        self.close(client)

    def test_a_client_that_does_not_go_after_the_408_is_aborted(self) -> None:
        client = self.connect()
        close = client.transport.loseConnection
        aborted: list[float] = []
        client.transport.loseConnection = lambda: None  # type: ignore[method-assign]
        client.transport.abortConnection = (  # type: ignore[method-assign]
            lambda: (aborted.append(self.clock.seconds()), close()))
        client.send(b"GET /")
        self.clock.advance(10)
        self.assertTrue(client.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertTrue(client.is_open)
        self.clock.advance(limits.LimitedChannel.abortTimeout)
        self.assertEqual(aborted, [10 + limits.LimitedChannel.abortTimeout])
        self.assertFalse(client.is_open)
        self.close(client)

    # ---------------------------------------------------------------- caps

    def test_connections_over_the_cap_per_address_are_refused_with_503_and_one_warning(
            self) -> None:
        self.site = self.make_site(max_connections_per_address=3)
        admitted = [self.connect() for _ in range(3)]
        refused = [self.connect() for _ in range(5)]
        other = self.connect("192.0.2.8")
        for client in refused:
            self.assertFalse(client.is_open)
            self.assertTrue(client.answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"))
        self.assertTrue(all(c.is_open for c in [*admitted, other]))
        self.assertEqual(self.site.gate.refused, {"MAX_CONNECTIONS": 0,
                                                  "MAX_CONNECTIONS_PER_ADDRESS": 5})
        [warning] = self.warnings()
        self.assertIn("from 192.0.2.7", warning)
        self.assertIn("[WEB] MAX_CONNECTIONS_PER_ADDRESS = 3", warning)
        self.assertIn("TRUSTED_PROXIES", warning)
        admitted[0].transport.loseConnection()  # a place is free again
        again = self.connect()
        self.assertTrue(again.is_open)
        again.send(GET)
        self.assertTrue(again.answer.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.close(*admitted, other, again)

    def test_connections_over_the_total_cap_are_refused_and_warned_once_a_minute(
            self) -> None:
        self.site = self.make_site(max_connections=4, max_connections_per_address=2)
        admitted = [self.connect(f"192.0.2.{n}") for n in range(4)]
        refused = [self.connect(f"198.51.100.{n}") for n in range(10)]
        self.assertTrue(all(c.is_open for c in admitted))
        self.assertFalse(any(c.is_open for c in refused))
        self.assertEqual(self.site.gate.refused["MAX_CONNECTIONS"], 10)
        [warning] = self.warnings()
        self.assertIn("[WEB] MAX_CONNECTIONS = 4", warning)
        self.assertIn("4 are open", warning)
        self.clock.advance(30)  # the idle timeout is not reached
        self.connect("198.51.100.77")
        self.assertEqual(len(self.warnings()), 1)
        self.clock.advance(30)
        self.connect("198.51.100.78")
        self.assertEqual(len(self.warnings()), 2)
        self.assertIn("(12 refused since the start)", self.warnings()[1])
        self.close(*admitted)

    def test_a_trusted_proxy_is_not_capped_per_address_only_in_all(self) -> None:
        self.site = self.make_site(("127.0.0.1",), max_connections=10,
                                   max_connections_per_address=2)
        through_proxy = [self.connect("127.0.0.1") for _ in range(10)]
        self.assertTrue(all(c.is_open for c in through_proxy))
        one_more = self.connect("127.0.0.1")
        self.assertFalse(one_more.is_open)
        self.assertEqual(self.site.gate.refused, {"MAX_CONNECTIONS": 1,
                                                  "MAX_CONNECTIONS_PER_ADDRESS": 0})
        through_proxy[0].transport.loseConnection()
        direct = [self.connect("192.0.2.9") for _ in range(3)]
        self.assertEqual([c.is_open for c in direct], [True, False, False])
        self.close(*through_proxy, *direct)


# -------------------------------------------------------------------- the descriptor budget


def test_the_soft_open_file_limit_is_raised_to_fit_the_web_caps() -> None:
    rl = RLimits(1024, 65536)
    assert fit_descriptors(WebLimits(max_connections=1024, fd_share=0.25), rl) == 1024
    assert rl.limit == (4096, 65536)


def test_a_limit_that_is_already_high_enough_is_left_alone() -> None:
    rl = RLimits(8192, 8192)
    assert fit_descriptors(WebLimits(), rl) == 1024
    assert rl.limit == (8192, 8192)
    rl = RLimits(resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    assert fit_descriptors(WebLimits(), rl) == 1024


@pytest.mark.parametrize("rl", [RLimits(1024, 1024), RLimits(1024, 65536, refuse=True)])
def test_caps_that_cannot_fit_are_lowered_to_the_share_with_a_warning(rl: RLimits) -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        assert fit_descriptors(WebLimits(max_connections=1024, fd_share=0.25), rl) == 256
    finally:
        globalLogPublisher.removeObserver(events.append)
    [warning] = [formatEvent(e) for e in events if e["log_level"].name == "warn"
                 and "FD_SHARE" in formatEvent(e)]
    assert "[WEB] MAX_CONNECTIONS = 1024" in warning
    assert "at most 256 connections" in warning
    assert "LimitNOFILE" in warning and "4096" in warning


def test_the_site_fits_its_cap_when_it_starts_listening() -> None:
    site = LimitedSite(Page(), WebLimits(max_connections=100, fd_share=0.5), reactor=Clock(),
                       rlimits=RLimits(64, 64))
    site.doStart()
    try:
        assert site.gate.max_connections == 32
    finally:
        site.doStop()


# -------------------------------------------------------------------- configuration


def test_the_limits_are_read_from_the_web_section() -> None:
    web = parse_settings("[WEB]\nHEADER_TIMEOUT = 5\nBODY_TIMEOUT = 30.5\nIDLE_TIMEOUT = 20\n"
                         "MAX_CONNECTIONS = 500\nMAX_CONNECTIONS_PER_ADDRESS = 500\n"
                         "FD_SHARE = 0.5\n").web
    assert WebLimits.of(web) == WebLimits(5, 30.5, 20, 500, 500, 0.5)
    assert WebLimits.of(parse_settings("").web) == WebLimits()


@pytest.mark.parametrize("line, words", [
    ("HEADER_TIMEOUT = 0", "[WEB] HEADER_TIMEOUT must be > 0"),
    ("BODY_TIMEOUT = soon", "[WEB] BODY_TIMEOUT must be a number"),
    ("IDLE_TIMEOUT = 7200", "[WEB] IDLE_TIMEOUT must be <= 3600"),
    ("MAX_CONNECTIONS = 0", "[WEB] MAX_CONNECTIONS must be >= 1"),
    ("FD_SHARE = 1", "[WEB] FD_SHARE must be <= 0.9"),
    ("MAX_CONNECTIONS_PER_ADDRESS = 2000",
     "[WEB] MAX_CONNECTIONS_PER_ADDRESS (2000) must not be more than MAX_CONNECTIONS (1024)"),
])
def test_bad_limits_are_config_errors_naming_the_key(line: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(f"[WEB]\n{line}\n", source="xvb.conf")
    assert words in str(caught.value), str(caught.value)
