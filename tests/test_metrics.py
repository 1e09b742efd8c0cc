"""``/metrics``: real calls through FastAGI on a loopback port, scraped over real HTTP and
read back with prometheus_client's own parser; who may scrape; ``[WEB] METRICS_FROM``;
the Redis, AMI and reactor parts against their real (test) servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.peers.agi import Caller
from tests.peers.ami import FakeAsterisk
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from tests.support.redis import RedisServer, new_prefix
from xvbd.ami.client import AMIClient, Credentials
from xvbd.config import ConfigError, parse_settings
from xvbd.counters import RedisCounters
from xvbd.demo import seed_demo
from xvbd.health import ReactorLag
from xvbd.metrics import MetricsPage, ProcessMetrics, metrics_registry
from xvbd.timings import Durations, ThreadDurations
from xvbd.web.root import WebRoot, web_site

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels (prometheus_client's own parser)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


class Scraper:
    """A ``/metrics`` of its own on a loopback port, as the process serves it."""

    def __init__(self, case: TestCase, metrics: ProcessMetrics,
                 allowed: Sequence[str] = ("127.0.0.0/8", "::1"),
                 trusted_proxies: Sequence[str] = ()) -> None:
        page = MetricsPage(metrics_registry(metrics), allowed)
        root = WebRoot(None, metrics.server_id, clock=reactor, metrics=page)  # type: ignore[arg-type]
        listener = reactor.listenTCP(0, web_site(root.app.resource(), trusted_proxies),
                                     interface="127.0.0.1")
        case.addCleanup(listener.stopListening)
        self.url = f"http://127.0.0.1:{listener.getHost().port}/metrics"

    async def get(self, source: str = "127.0.0.1",
                  headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        agent = Agent(reactor, bindAddress=(source, 0))
        response = await agent.request(b"GET", self.url.encode(),
                                       Headers({k: [v] for k, v in (headers or {}).items()}))
        body = (await readBody(response)).decode()
        kind = (response.headers.getRawHeaders("Content-Type") or [""])[0]
        return response.code, str(kind), body

    async def scrape(self) -> Samples:
        code, kind, body = await self.get()
        assert code == 200, (code, body)
        assert kind.startswith("text/plain; version=0.0.4"), kind
        return parse(body)


async def until(check: Callable[[], bool], what: str, limit: float = 10.0,
                clock: Clock | None = None) -> None:
    """Let the reactor run (and ``clock``, 0.5 s a turn) until ``check()``."""
    waited = 0.0
    while not check():
        if clock is not None:
            clock.advance(0.5)
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02
        if waited > limit:
            raise AssertionError(f"not within {limit} s: {what}")


class CallMetricsTests(EngineCase):
    """Calls through the real FastAGI protocol; /metrics read between and after them."""

    def setUp(self) -> None:
        super().setUp()
        self.scraper = Scraper(self, ProcessMetrics(  # type: ignore[arg-type]
            "FCC-NN", engine=self.engine, agi=self.factory, db=self.db,
            emitter=self.emitter))

    async def test_calls_in_progress_then_finished_by_result(self) -> None:
        await seed_demo(self.store)
        before = await self.scraper.scrape()
        self.assertEqual(value(before, "xvbd_calls_in_progress"), 0)
        self.assertEqual(value(before, "xvbd_calls_finished_total", result="OK"), 0)
        self.assertEqual(value(before, "xvbd_calls_finished_total", result="BADPIN"), 0,
                         "every result word is there from the start")
        self.assertEqual(value(before, "xvbd_agi_turnaround_seconds_count"), 0)
        waits_before = value(before, "xvbd_db_pool_wait_seconds_count")

        # A call held in the middle of its menu: in progress.
        peer = await self.start(Caller(keys=["2"], hold_on=r"^SAY DATETIME"),
                                args=("100", "10.0.0.1"))
        await peer.holding
        during = await self.scraper.scrape()
        self.assertEqual(value(during, "xvbd_calls_in_progress"), 1)
        self.assertEqual(value(during, "xvbd_agi_sessions"), 1)
        self.assertEqual(value(during, "xvbd_calls_finished_total", result="OK"), 0)
        sent = len(peer.commands)  # each command after an answer (or the environment)
        self.assertEqual(value(during, "xvbd_agi_turnaround_seconds_count"), sent)
        self.assertGreater(value(during, "xvbd_db_pool_wait_seconds_count"), waits_before,
                           "the call read its user through the pool")
        peer.release()
        await peer.done
        await self.factory.when_idle()
        after = await self.scraper.scrape()
        self.assertEqual(self.result, "OK")
        self.assertEqual(value(after, "xvbd_calls_in_progress"), 0)
        self.assertEqual(value(after, "xvbd_agi_sessions"), 0)
        self.assertEqual(value(after, "xvbd_calls_finished_total", result="OK"), 1)
        count = value(after, "xvbd_agi_turnaround_seconds_count")
        self.assertEqual(count, len(peer.commands))
        self.assertEqual(value(after, "xvbd_agi_turnaround_seconds_bucket", le="+Inf"), count)
        self.assertGreater(value(after, "xvbd_agi_turnaround_seconds_sum"), 0)
        self.assertLess(value(after, "xvbd_agi_turnaround_seconds_sum"), 5 * count)
        self.assertEqual(value(after, "xvbd_db_pool_queued"), 0)
        self.assertEqual(value(after, "xvbd_cdr_file_held_lines", path=str(self.cdr_file)), 0)
        self.assertEqual(value(after, "xvbd_cdr_db_spool_waiting"), 0)
        self.assertEqual(value(after, "xvbd_info", version=__import__("xvbd").__version__,
                               server_id="FCC-NN"), 1)

        # Three wrong PINs: BADPIN, counted apart.
        await self.call(Caller(keys=["10001", "1", "2", "3"]), args=("613",))
        self.assertEqual(self.result, "BADPIN")
        last = await self.scraper.scrape()
        self.assertEqual(value(last, "xvbd_calls_finished_total", result="OK"), 1)
        self.assertEqual(value(last, "xvbd_calls_finished_total", result="BADPIN"), 1)
        self.assertEqual(value(last, "xvbd_agi_turnaround_seconds_count"),
                         count + len(self.peer.commands))

    async def test_a_caller_gone_at_once_is_abandoned(self) -> None:
        await seed_demo(self.store)
        await self.call(Caller(hangup_on=r"^ANSWER"), args=("100", "10.0.0.1"))
        samples = await self.scraper.scrape()
        self.assertEqual(value(samples, "xvbd_calls_finished_total", result="ABANDONED"), 1)
        self.assertEqual(value(samples, "xvbd_calls_in_progress"), 0)


CallMetricsOnSQLite, CallMetricsOnMariaDB = on_both_backends(CallMetricsTests)


class ScrapersTests(TestCase):
    """Who may read /metrics: ``[WEB] METRICS_FROM``, the client's address read as for
    ``[WEB] TRUSTED_PROXIES``."""

    async def test_an_address_not_listed_gets_403(self) -> None:
        scraper = Scraper(self, ProcessMetrics("N1"), allowed=["127.0.0.1"])
        code, _, body = await scraper.get("127.0.0.1")
        self.assertEqual(code, 200)
        self.assertIn('xvbd_info{server_id="N1"', body)
        code, kind, body = await scraper.get("127.0.0.2")  # this machine, not listed
        self.assertEqual((code, kind), (403, "text/plain; charset=utf-8"))
        self.assertEqual(body, "403 Forbidden: /metrics is read only from the addresses of "
                               "[WEB] METRICS_FROM; 127.0.0.2 is not one of them.\n")

    async def test_a_client_behind_a_trusted_proxy_is_judged_by_its_own_address(self) -> None:
        scraper = Scraper(self, ProcessMetrics("N1"), trusted_proxies=["127.0.0.1"])
        code, _, body = await scraper.get(headers={"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(code, 403)
        self.assertIn("203.0.113.9 is not one of them", body)
        self.assertEqual((await scraper.get())[0], 200, "the proxy's own machine asks")

    async def test_none_lets_nobody_in(self) -> None:
        settings = parse_settings("[WEB]\nMETRICS_FROM = none\n", "test.conf")
        scraper = Scraper(self, ProcessMetrics("N1"), allowed=settings.web.metrics_from)
        self.assertEqual((await scraper.get())[0], 403)

    def test_the_page_reads_mapped_addresses(self) -> None:
        page = MetricsPage(metrics_registry(), ["127.0.0.0/8", "::1", "10.1.0.0/16"])
        self.assertTrue(page.allows("::ffff:127.0.0.1"))
        self.assertTrue(page.allows("10.1.2.3"))
        self.assertTrue(page.allows("::1"))
        self.assertFalse(page.allows("10.2.0.1"))
        self.assertFalse(page.allows("not-an-address"))


class MetricsConfigTests(SynchronousTestCase):
    def test_default_is_loopback_only(self) -> None:
        settings = parse_settings("", "test.conf")
        self.assertEqual(settings.web.metrics_from, ("127.0.0.0/8", "::1"))

    def test_addresses_and_networks(self) -> None:
        settings = parse_settings("[WEB]\nMETRICS_FROM = 192.0.2.7, 10.0.0.0/8, ::1\n",
                                  "test.conf")
        self.assertEqual(settings.web.metrics_from, ("192.0.2.7", "10.0.0.0/8", "::1"))
        self.assertEqual(parse_settings("[WEB]\nMETRICS_FROM = none\n", "t").web.metrics_from,
                         ())

    def test_a_bad_value_names_section_key_and_what_is_accepted(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_settings("[WEB]\nMETRICS_FROM = 10.0.0.0/8, prometheus.lan\n", "xvb.conf")
        self.assertEqual(caught.exception.problems, [
            "xvb.conf:2: [WEB] METRICS_FROM: 'prometheus.lan' is not an IP address or "
            "network; it takes IP addresses and networks (192.0.2.7, 10.0.0.0/8, ::1), "
            "separated by commas, or none (nobody may read /metrics)"])


class PartsTests(TestCase):
    """Redis, AMI and the reactor's lag, each against its real (test) server or clock."""

    async def test_redis_away_and_errors(self) -> None:
        import txredisapi

        server = RedisServer(self.mktemp())
        os.makedirs(server.directory)
        self.addCleanup(server.kill)
        server.start()
        redis = txredisapi.lazyConnectionPool("127.0.0.1", server.port, poolsize=1,
                                              reconnect=True, connectTimeout=1)
        counters = RedisCounters(redis, prefix=new_prefix(), owner="node-a:1", clock=reactor,
                                 timeout=0.5, probe_every=0.2)
        counters.startService()
        self.addCleanup(counters.stopService)
        scraper = Scraper(self, ProcessMetrics("N1", redis=counters))
        lease = await counters.acquire("calls:node:N1", 0)
        samples = await scraper.scrape()
        self.assertEqual(value(samples, "xvbd_redis_away"), 0)
        self.assertEqual(value(samples, "xvbd_redis_errors_total"), 0)
        server.kill()
        await counters.acquire("calls:node:N1", 0)  # waits the timeout, then counts here
        samples = await scraper.scrape()
        self.assertEqual(value(samples, "xvbd_redis_away"), 1)
        self.assertEqual(value(samples, "xvbd_redis_errors_total"), 1)
        server.start()
        await until(lambda: not counters.away, "Redis back")
        samples = await scraper.scrape()
        self.assertEqual(value(samples, "xvbd_redis_away"), 0)
        self.assertEqual(value(samples, "xvbd_redis_errors_total"), 1)
        assert lease is not None
        await counters.release("calls:node:N1", lease)

    async def test_ami_connected_and_errors_per_node(self) -> None:
        fake = FakeAsterisk(reactor, failed_login_delay=0.05)
        await fake.start()
        self.addCleanup(fake.stop)
        clock = Clock()
        client = AMIClient("N1", "127.0.0.1", fake.port, Credentials("xvb", "xvbsecret"),
                           reactor=reactor, clock=clock, jitter=lambda: 0.0)
        client.startService()
        self.addCleanup(client.stopService)
        scraper = Scraper(self, ProcessMetrics("N1", ami=[client]))
        where = f"127.0.0.1:{fake.port}"
        await until(lambda: client.connected, "AMI login")
        samples = await scraper.scrape()
        self.assertEqual(value(samples, "xvbd_ami_connected", node="N1", address=where), 1)
        for kind in ("login_refused", "ended_before_login", "lost"):
            self.assertEqual(value(samples, "xvbd_ami_errors_total", node="N1",
                                   address=where, kind=kind), 0)
        fake.secret = "changed"  # the operator changed manager.conf, then Asterisk restarts
        fake.crash()
        await until(lambda: not client.connected, "connection lost")
        await fake.restart()
        await until(lambda: bool(client.errors["login_refused"]), "the next login refused",
                    clock=clock)
        samples = await scraper.scrape()
        self.assertEqual(value(samples, "xvbd_ami_connected", node="N1", address=where), 0)
        self.assertEqual(value(samples, "xvbd_ami_errors_total", node="N1", address=where,
                               kind="lost"), 1)
        self.assertEqual(value(samples, "xvbd_ami_errors_total", node="N1", address=where,
                               kind="login_refused"), 1)

    async def test_reactor_lag(self) -> None:
        clock = Clock()
        lag = ReactorLag(clock)
        lag.startService()
        self.addCleanup(lag.stopService)
        scraper = Scraper(self, ProcessMetrics("N1", lag=lag))
        clock.advance(1.0)
        clock.advance(3.25)  # a step held the reactor 2.25 s past the timer's time
        clock.advance(1.0)
        samples = await scraper.scrape()
        self.assertEqual(value(samples, "xvbd_reactor_lag_seconds"), 0)
        self.assertEqual(value(samples, "xvbd_reactor_lag_max_seconds"), 2.25)


class RegistryTests(SynchronousTestCase):
    def test_each_process_has_its_own_registry(self) -> None:
        one = metrics_registry(ProcessMetrics("A"))
        two = metrics_registry(ProcessMetrics("B"))
        names = {m.name for m in REGISTRY.collect()}
        self.assertFalse(any(name.startswith("xvbd_") for name in names),
                         "nothing in prometheus_client's global registry")
        (a,) = [m for m in one.collect() if m.name == "xvbd_info"]
        (b,) = [m for m in two.collect() if m.name == "xvbd_info"]
        self.assertEqual((a.samples[0].labels["server_id"], b.samples[0].labels["server_id"]),
                         ("A", "B"))

    def test_durations_buckets(self) -> None:
        durations: Any = Durations((0.001, 0.01))
        for seconds in (0.0005, 0.001, 0.002, 0.5):
            durations.observe(seconds)
        buckets, total, count = durations.snapshot()
        self.assertEqual((buckets, count), ([("0.001", 2), ("0.01", 3), ("+Inf", 4)], 4))
        self.assertAlmostEqual(total, 0.5035)
        threaded = ThreadDurations((0.001,))
        threaded.observe(0.002)
        self.assertEqual(threaded.count, 1)
