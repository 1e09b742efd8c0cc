"""Shared counters, in-process and in Redis (the same contract), and what Redis adds:
several processes share the counts, and a process that dies leaves nothing behind."""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.support.redis import RedisServer, connect, drop_prefix, new_prefix
from xvbd.counters import LocalCounters, RedisCounters


class CounterContract:
    def make(self) -> object:
        raise NotImplementedError

    async def test_slots_up_to_the_limit(self) -> None:
        counters = self.make()
        first = await counters.acquire("calls:group:1", 2)
        second = await counters.acquire("calls:group:1", 2)
        self.assertIsNotNone(first)
        self.assertIsNotNone(second)
        self.assertIsNone(await counters.acquire("calls:group:1", 2), "the group is full")
        self.assertEqual(await counters.current("calls:group:1"), 2)
        await counters.release("calls:group:1", first)
        self.assertEqual(await counters.current("calls:group:1"), 1)
        self.assertIsNotNone(await counters.acquire("calls:group:1", 2))
        self.assertIsNotNone(await counters.acquire("calls:user:1", 0), "0: no limit")
        await counters.release("calls:group:1", first)  # twice: no harm
        self.assertEqual(await counters.current("calls:group:1"), 2)

    async def test_failures_in_a_window(self) -> None:
        counters = self.make()
        for n in range(1, 4):
            self.assertEqual(await counters.hit("authfail:x", 900), n)
        self.assertEqual(await counters.hits("authfail:x", 900), 3)
        self.assertEqual(await counters.hits("authfail:y", 900), 0)
        await counters.reset("authfail:x")
        self.assertEqual(await counters.hits("authfail:x", 900), 0)


    async def test_marks(self) -> None:
        counters = self.make()
        self.assertFalse(await counters.marked("known:user:1@192.0.2.7"))
        await counters.mark("known:user:1@192.0.2.7", 3600)
        self.assertTrue(await counters.marked("known:user:1@192.0.2.7"))
        self.assertFalse(await counters.marked("known:user:1@192.0.2.8"))
        await counters.mark("known:user:1@192.0.2.7", 3600)  # again: still one mark
        self.assertTrue(await counters.marked("known:user:1@192.0.2.7"))


class LocalCounterTests(CounterContract, TestCase):
    def make(self) -> LocalCounters:
        return LocalCounters(Clock())

    async def test_a_mark_expires_and_the_marks_kept_are_bounded(self) -> None:
        clock = Clock()
        counters = LocalCounters(clock)
        counters.MAX_MARKS = 3
        await counters.mark("a", 10)
        clock.advance(10)
        self.assertFalse(await counters.marked("a"), "expired")
        for key, seconds in (("b", 50), ("c", 20), ("d", 30), ("e", 40)):
            await counters.mark(key, seconds)
        self.assertEqual([await counters.marked(k) for k in "bcde"], [True, False, True, True],
                         "past the bound, the mark that expires soonest goes")

    def test_the_window_passes(self) -> None:
        clock = Clock()
        counters = LocalCounters(clock)
        self.successResultOf(Deferred.fromCoroutine(counters.hit("k", 10)))
        clock.advance(11)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(counters.hits("k", 10))), 0)


class RedisCounterTests(CounterContract, TestCase):
    def setUp(self) -> None:
        self.redis = connect()
        self.prefix = new_prefix()
        self.addCleanup(self.redis.disconnect)
        self.addCleanup(lambda: Deferred.fromCoroutine(drop_prefix(self.redis, self.prefix)))

    def make(self, **kw: object) -> RedisCounters:
        return RedisCounters(self.redis, prefix=self.prefix, **kw)

    async def test_a_mark_is_shared_and_expires_in_redis(self) -> None:
        one, two = self.make(owner="node-a:1"), self.make(owner="node-b:2")
        await one.mark("known:user:7@192.0.2.7", 90 * 86400)
        self.assertTrue(await two.marked("known:user:7@192.0.2.7"), "the other xvbd knows it")
        ttl = await self.redis.ttl(self.prefix + "known:user:7@192.0.2.7")
        self.assertTrue(90 * 86400 - 60 < ttl <= 90 * 86400, ttl)

    async def test_two_processes_share_one_limit(self) -> None:
        one, two = self.make(owner="node-a:1"), self.make(owner="node-b:2")
        self.assertIsNotNone(await one.acquire("calls:group:7", 1))
        self.assertIsNone(await two.acquire("calls:group:7", 1))
        self.assertEqual(await two.current("calls:group:7"), 1)

    async def test_the_calls_of_a_dead_process_stop_counting(self) -> None:
        dead = self.make(owner="crashed:1", lease_seconds=1)
        for _ in range(3):
            await dead.acquire("calls:node:N", 0)
        alive = self.make(owner="alive:2", lease_seconds=3)
        alive.startService()  # renews its own leases every second (a third of its lease)
        self.addCleanup(alive._heartbeat.stop)
        lease = await alive.acquire("calls:node:N", 0)
        self.assertEqual(await alive.current("calls:node:N"), 4)
        for _ in range(100):  # the dead process's three calls expire after their 1 s lease
            if await alive.current("calls:node:N") == 1:
                break
            await deferLater(reactor, 0.1, lambda: None)
        await deferLater(reactor, 3.5, lambda: None)  # past the live lease: renewed
        self.assertEqual(await alive.current("calls:node:N"), 1,
                         "the dead process's three calls expired; the live one was renewed")
        await alive.release("calls:node:N", lease)
        self.assertEqual(await alive.current("calls:node:N"), 0)



class RedisAwayTests(TestCase):
    """A real Redis server of the test's own, stopped and started again under the counters:
    calls are never held up nor refused for it, the outage and its end are logged once
    each, and the shared counts are whole again when it is back."""

    def setUp(self) -> None:
        import txredisapi

        self.server = RedisServer(self.mktemp())
        os.makedirs(self.server.directory)
        self.addCleanup(self.server.kill)
        self.redis = txredisapi.lazyConnectionPool("127.0.0.1", self.server.port, poolsize=2,
                                                   reconnect=True, connectTimeout=1)
        self.prefix = new_prefix()
        self.logs: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "xvbd.counters":
                self.logs.append(f"{event['log_level'].name}: {formatEvent(event)}")
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def counters(self) -> RedisCounters:
        counters = RedisCounters(self.redis, prefix=self.prefix, owner="node-a:1",
                                 clock=reactor, timeout=0.5, probe_every=0.2,
                                 where=f"Redis 127.0.0.1:{self.server.port}")
        counters.startService()
        self.addCleanup(counters.stopService)
        return counters

    async def timed(self, work: Any) -> tuple[Any, float]:
        began = time.monotonic()
        result = await work
        return result, time.monotonic() - began

    async def until(self, check: Any, what: str) -> None:
        for _ in range(200):
            if check():
                return
            await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"not in 10 s: {what}")

    async def test_away_at_start_then_back(self) -> None:
        counters = self.counters()  # nothing listens on the port yet
        lease, took = await self.timed(counters.acquire("calls:group:1", 1))
        self.assertIsNotNone(lease)
        self.assertLess(took, 2.0, "the first call waits the timeout, no more")
        self.assertTrue(counters.away)
        # counted in this process meanwhile, at once: the limit of 1 holds for our calls
        refused, took = await self.timed(counters.acquire("calls:group:1", 1))
        self.assertIsNone(refused)
        self.assertLess(took, 0.2)
        self.assertEqual(await counters.current("calls:group:1"), 1)
        self.assertEqual([await counters.hit("authfail:10001", 900) for _ in range(3)],
                         [1, 2, 3])
        self.assertEqual(await counters.hits("authfail:10001", 900), 3)
        self.assertFalse(counters.health()["reachable"])
        away = [line for line in self.logs if "is not answering" in line]
        self.assertEqual(len(away), 1, self.logs)
        self.assertTrue(away[0].startswith("error: ") and "Calls go on" in away[0], away)
        # Redis comes up: the call counted here is now in Redis, and others see it
        self.server.start()
        await self.until(lambda: not counters.away, "Redis back")
        back = [line for line in self.logs if "answers again" in line]
        self.assertEqual(len(back), 1, self.logs)
        self.assertIn("1 call(s) counted here meanwhile are shared again", back[0])
        self.assertEqual(self.server.keys(self.prefix + "*"),
                         {self.prefix + "calls:group:1": 1})
        other = RedisCounters(self.redis, prefix=self.prefix, owner="node-b:2")
        self.assertIsNone(await other.acquire("calls:group:1", 1), "the limit is shared")
        await counters.release("calls:group:1", lease)
        self.assertEqual(self.server.keys(self.prefix + "*"), {})
        self.assertIsNotNone(await other.acquire("calls:group:1", 1))
        self.assertTrue(counters.health()["reachable"])

    async def test_lost_mid_run_and_restarted_empty(self) -> None:
        self.server.start()
        counters = self.counters()
        first = await counters.acquire("calls:node:N", 0)
        self.assertEqual(self.server.keys(self.prefix + "*"), {self.prefix + "calls:node:N": 1})
        self.server.kill()  # Redis dies, and keeps nothing
        second, took = await self.timed(counters.acquire("calls:node:N", 0))
        self.assertIsNotNone(second)
        self.assertLess(took, 2.0)
        self.assertEqual(await counters.current("calls:node:N"), 2)
        third, took = await self.timed(counters.acquire("calls:node:N", 0))
        self.assertLess(took, 0.2, "known to be away: no more waiting")
        await counters.release("calls:node:N", third)
        self.server.start()
        await self.until(lambda: not counters.away, "Redis back")
        # both calls still in progress are counted in the new Redis
        self.assertEqual(self.server.keys(self.prefix + "*"), {self.prefix + "calls:node:N": 2})
        self.assertEqual(await counters.current("calls:node:N"), 2)
        await counters.release("calls:node:N", first)
        await counters.release("calls:node:N", second)
        self.assertEqual(await counters.current("calls:node:N"), 0)
        self.assertEqual(sum("is not answering" in line for line in self.logs), 1)
        self.assertEqual(sum("answers again" in line for line in self.logs), 1)

    async def test_a_stop_does_not_wait_on_a_redis_away(self) -> None:
        counters = RedisCounters(self.redis, prefix=self.prefix, clock=reactor, timeout=0.5)
        counters.startService()
        await counters.acquire("calls:group:1", 0)
        _, took = await self.timed(defer.maybeDeferred(counters.stopService))
        self.assertLess(took, 2.0)
