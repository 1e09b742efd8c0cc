"""Shared counters, in-process and in Redis (the same contract), and what Redis adds:
several processes share the counts, and a process that dies leaves nothing behind."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from tests.support.redis import connect, drop_prefix, new_prefix
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


class LocalCounterTests(CounterContract, TestCase):
    def make(self) -> LocalCounters:
        return LocalCounters(Clock())

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

    async def test_an_unreachable_redis_does_not_refuse_calls(self) -> None:
        import txredisapi

        nowhere = txredisapi.lazyConnectionPool("127.0.0.1", 1, poolsize=1, reconnect=False,
                                                connectTimeout=1)
        self.addCleanup(nowhere.disconnect)
        counters = RedisCounters(nowhere, prefix=self.prefix)
        lease = await counters.acquire("calls:group:1", 1)
        self.assertTrue(lease and lease.startswith("unchecked:"))
        await counters.release("calls:group:1", lease)
        self.assertEqual(await counters.hit("authfail:x", 900), 0)
        self.flushLoggedErrors()


