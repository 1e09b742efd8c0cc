"""Shared counters: concurrent calls per node, group and user, and failure counts that
throttle guessing of access codes and PINs across calls.

A call takes a *lease* on a counter and gives it back when it ends.  :class:`LocalCounters`
keeps them in this process (one xvbd).  :class:`RedisCounters` keeps them in Redis for
several xvbd processes (``[COMMON] MEM_CACHED_SHARED``): a lease is a member of a sorted set
scored by when it expires, renewed by its holder every third of ``[TIMEOUT] COUNTER_LEASE``;
the leases of a process that dies expire on their own, so no count is ever stuck.
Redis answers in its own clock, so the processes' clocks do not matter.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict, deque
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from xvbd.logs import logger

log = logger("xvbd.counters")


class Counters(Protocol):
    async def acquire(self, key: str, limit: int) -> str | None:
        """Take a slot of ``key``: a lease to give back, or None when ``limit`` (> 0)
        slots are taken (0 or less: no limit, the slot is still counted)."""

    async def release(self, key: str, lease: str) -> None:
        """Give back a slot."""

    async def current(self, key: str) -> int:
        """How many slots of ``key`` are taken."""

    async def hit(self, key: str, window: float) -> int:
        """Count one failure of ``key``; return the failures within the last ``window`` s."""

    async def hits(self, key: str, window: float) -> int:
        """The failures of ``key`` within the last ``window`` seconds."""

    async def reset(self, key: str) -> None:
        """Forget the failures of ``key``."""


class LocalCounters:
    """In-process counters; ``clock`` gives the time windows."""

    MAX_HITS_KEPT = 1000

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._slots: dict[str, set[str]] = defaultdict(set)
        self._hits: dict[str, deque[float]] = {}
        self._serial = itertools.count()

    async def acquire(self, key: str, limit: int) -> str | None:
        slots = self._slots[key]
        if 0 < limit <= len(slots):
            return None
        lease = str(next(self._serial))
        slots.add(lease)
        return lease

    async def release(self, key: str, lease: str) -> None:
        slots = self._slots.get(key)
        if slots is not None:
            slots.discard(lease)
            if not slots:
                del self._slots[key]

    async def current(self, key: str) -> int:
        return len(self._slots.get(key, ()))

    def _prune(self, key: str, window: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        horizon = self.clock.seconds() - window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return hits

    async def hit(self, key: str, window: float) -> int:
        hits = self._prune(key, window)
        if key not in self._hits:
            hits = self._hits[key] = deque(maxlen=self.MAX_HITS_KEPT)
        hits.append(self.clock.seconds())
        return len(hits)

    async def hits(self, key: str, window: float) -> int:
        return len(self._prune(key, window))

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)


_NOW = ("local t = redis.call('TIME') "
        "local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 ")
_ACQUIRE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""
_RENEW = _NOW + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + ttl, ARGV[i + 1]) == 1 then
    redis.call('EXPIRE', key, math.ceil(ttl) + 1)
  end
end
return #KEYS
"""
_CURRENT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
_HIT = _NOW + """
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return redis.call('ZCARD', KEYS[1])
"""
_HITS = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""


class RedisCounters(Service):
    """Counters in Redis, shared by every xvbd process using the same server and prefix.

    When Redis cannot be reached, calls are not refused for it: a limit that cannot be
    checked lets the call through (logged), a telephone line that stays up being worth more
    than a limit that holds for the minute Redis is away.
    """

    name = "counters"

    def __init__(self, redis: Any, *, prefix: str = "xvbd:", lease_seconds: float = 60.0,
                 clock: Any = None, owner: str = "") -> None:
        self.redis = redis
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}"
        self._serial = itertools.count()
        self._held: dict[str, str] = {}  # lease -> key
        self._heartbeat = LoopingCall(self._renew)
        if clock is not None:
            self._heartbeat.clock = clock

    def startService(self) -> None:
        super().startService()
        self._heartbeat.start(self.lease_seconds / 3, now=False)

    def stopService(self) -> Any:
        super().stopService()
        if self._heartbeat.running:
            self._heartbeat.stop()
        return self.redis.disconnect()

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def _script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self.redis.eval(script, keys, args)

    async def acquire(self, key: str, limit: int) -> str | None:
        lease = f"{self.owner}:{next(self._serial)}"
        try:
            taken = await self._script(_ACQUIRE, [self._k(key)],
                                       [limit, self.lease_seconds, lease])
        except Exception as exc:
            log.error("Redis counters unreachable ({error}); {key} not enforced for this "
                      "call", error=str(exc), key=key)
            return f"unchecked:{lease}"
        if not taken:
            return None
        self._held[lease] = key
        return lease

    async def release(self, key: str, lease: str) -> None:
        self._held.pop(lease, None)
        if lease.startswith("unchecked:"):
            return
        try:
            await self.redis.zrem(self._k(key), lease)
        except Exception as exc:  # it expires by itself
            log.warn("releasing {key} in Redis failed ({error}); it will expire",
                     key=key, error=str(exc))

    async def _renew(self) -> None:
        if not self._held:
            return
        held = list(self._held.items())
        try:
            await self._script(_RENEW, [self._k(key) for _, key in held],
                               [self.lease_seconds, *(lease for lease, _ in held)])
        except Exception as exc:
            log.error("renewing {n} call lease(s) in Redis failed ({error})", n=len(held),
                      error=str(exc))

    async def current(self, key: str) -> int:
        return int(await self._script(_CURRENT, [self._k(key)], []))

    async def hit(self, key: str, window: float) -> int:
        member = f"{self.owner}:{next(self._serial)}"
        try:
            return int(await self._script(_HIT, [self._k(key)], [window, member]))
        except Exception as exc:
            log.error("Redis counters unreachable ({error}); a failure of {key} is not "
                      "counted", error=str(exc), key=key)
            return 0

    async def hits(self, key: str, window: float) -> int:
        try:
            return int(await self._script(_HITS, [self._k(key)], [window]))
        except Exception as exc:
            log.error("Redis counters unreachable ({error}); {key} not checked",
                      error=str(exc), key=key)
            return 0

    async def reset(self, key: str) -> None:
        try:
            await self.redis.delete(self._k(key))
        except Exception as exc:
            log.warn("resetting {key} in Redis failed ({error})", key=key, error=str(exc))
