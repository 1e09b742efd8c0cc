"""Shared counters: concurrent calls per node, group and user, failure counts that
throttle guessing of access codes and PINs across calls, and marks that expire (the sources
an account was reached from).

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
from twisted.internet import defer
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

    async def mark(self, key: str, seconds: float) -> None:
        """Set the mark ``key`` for ``seconds`` from now (again: from now)."""

    async def marked(self, key: str) -> bool:
        """Whether the mark ``key`` is set and has not expired."""


class LocalCounters:
    """In-process counters; ``clock`` gives the time windows."""

    MAX_HITS_KEPT = 1000

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._slots: dict[str, set[str]] = defaultdict(set)
        self._hits: dict[str, deque[float]] = {}
        self._marks: dict[str, float] = {}  # key -> when it expires
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

    #: Marks kept at most; past this the ones that expire soonest go first.
    MAX_MARKS = 100_000

    async def mark(self, key: str, seconds: float) -> None:
        now = self.clock.seconds()
        if len(self._marks) >= self.MAX_MARKS and key not in self._marks:
            for old in [k for k, until in self._marks.items() if until <= now]:
                del self._marks[old]
            if len(self._marks) >= self.MAX_MARKS:
                del self._marks[min(self._marks, key=self._marks.__getitem__)]
        self._marks[key] = now + seconds

    async def marked(self, key: str) -> bool:
        until = self._marks.get(key)
        if until is None:
            return False
        if until <= self.clock.seconds():
            del self._marks[key]
            return False
        return True


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
_RENEW_OR_ADD = _NOW + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('EXPIRE', key, math.ceil(ttl) + 1)
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


#: Seconds a Redis command may take before Redis counts as away (a LAN answers in < 1 ms).
REDIS_TIMEOUT = 0.5
#: Seconds between the probes of a Redis that is away.
PROBE_EVERY = 5.0


class RedisAway(Exception):
    """Redis did not answer (or is known to be away): count in this process."""


class RedisCounters(Service):
    """Counters in Redis, shared by every xvbd process using the same server and prefix.

    Redis away never holds a call up or refuses one: every command has ``timeout`` seconds;
    the first that fails marks Redis *away* (logged once), and from then on the counters
    are kept in this process (this process's own calls against each limit; failures of
    codes and PINs counted here) without waiting on Redis, which is probed every
    ``probe_every`` seconds.  When it answers again (logged once) the calls counted here
    meanwhile are added to Redis as leases of this process, so the shared counts are
    whole again, and each is given back there when its call ends.
    """

    name = "counters"

    def __init__(self, redis: Any, *, prefix: str = "xvbd:", lease_seconds: float = 60.0,
                 clock: Any = None, owner: str = "", timeout: float = REDIS_TIMEOUT,
                 probe_every: float = PROBE_EVERY, where: str = "") -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.redis = redis
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}"
        self.clock = clock
        self.timeout = timeout
        self.where = where or "the Redis of [COMMON] MEM_CACHED_SHARED"
        self.away_since: float | None = None
        #: Redis commands that failed or did not answer in time (``/metrics``).
        self.errors = 0
        self._serial = itertools.count()
        self._held: dict[str, str] = {}  # lease -> key, in Redis
        self._local_held: dict[str, str] = {}  # lease -> key, counted here while away
        self._local = LocalCounters(clock)  # failures counted while away
        self._heartbeat = LoopingCall(self._renew)
        self._heartbeat.clock = clock
        self._probe = LoopingCall(self._try_back)
        self._probe.clock = clock
        self._probe_every = probe_every
        self._stopped = False

    @property
    def away(self) -> bool:
        return self.away_since is not None

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: whether Redis answers, and since when it does not."""
        if self.away_since is None:
            return {"reachable": True}
        return {"reachable": False, "away_for_s": round(self.clock.seconds() -
                                                        self.away_since, 1),
                "counted_here": len(self._local_held)}

    def startService(self) -> None:
        super().startService()
        self._heartbeat.start(self.lease_seconds / 3, now=False)

    def stopService(self) -> Any:
        """Stop renewing and probing; the disconnection is waited for ``timeout`` s at most
        (a Redis that is away never holds the shutdown up)."""
        super().stopService()
        self._stopped = True
        for loop in (self._heartbeat, self._probe):
            if loop.running:
                loop.stop()
        if self.redis is None:
            return None
        gone = defer.maybeDeferred(self.redis.disconnect)
        gone.addTimeout(self.timeout, self.clock)
        gone.addErrback(lambda _: None)
        return gone

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def _ask(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command within ``timeout`` s; RedisAway (and Redis marked away) when it
        does not answer, or at once while Redis is known to be away."""
        if self.away_since is not None:
            raise RedisAway("away")
        try:
            answer = defer.maybeDeferred(getattr(self.redis, command), *args, **kwargs)
            answer.addTimeout(self.timeout, self.clock)
            return await answer
        except Exception as exc:
            self.errors += 1
            self._went_away(exc)
            raise RedisAway(str(exc)) from None

    def _went_away(self, exc: Exception) -> None:
        if self.away_since is not None:
            return
        self.away_since = self.clock.seconds()
        why = (f"no answer within {self.timeout:g} s"
               if isinstance(exc, defer.TimeoutError | defer.CancelledError) else
               str(exc) or type(exc).__name__)
        log.error("Redis counters: {where} is not answering ({why}). Calls go on; limits "
                  "and guess counts are kept in this process only until it is back (probed "
                  "every {every:g} s). Check that Redis runs and is reachable.",
                  where=self.where, why=why, every=self._probe_every)
        if not self._stopped and not self._probe.running:
            self._probe.start(self._probe_every, now=False)

    async def _try_back(self) -> None:
        """The probe of a Redis that is away: when it answers, the calls counted here are
        added to it and Redis is used again."""
        answer = defer.maybeDeferred(self.redis.ping)
        answer.addTimeout(self.timeout, self.clock)
        try:
            await answer
            # every lease of this process: those counted here, and those Redis may have
            # lost meanwhile (restarted, it keeps nothing)
            adopted = [*self._local_held.items(), *self._held.items()]
            if adopted:
                adopt = defer.maybeDeferred(
                    self.redis.eval, _RENEW_OR_ADD, [self._k(key) for _, key in adopted],
                    [self.lease_seconds, *(lease for lease, _ in adopted)])
                adopt.addTimeout(self.timeout, self.clock)
                await adopt
        except Exception:
            return  # still away; the next probe tries again
        counted_here = 0
        for lease, key in adopted:
            if self._local_held.pop(lease, None) is not None:
                self._held[lease] = key
                counted_here += 1
        # leases given back while the adoption was on its way
        late = [(lease, key) for lease, key in adopted if lease not in self._held]
        away = self.clock.seconds() - (self.away_since or self.clock.seconds())
        self.away_since = None
        if self._probe.running:
            self._probe.stop()
        log.warn("Redis counters: {where} answers again after {away:.0f} s; {n} call(s) "
                 "counted here meanwhile are shared again", where=self.where, away=away,
                 n=counted_here)
        for lease, key in late:
            await self._give_back(key, lease)

    def _mine(self, key: str) -> int:
        """This process's own calls on ``key`` (what is known of it while Redis is away)."""
        return (sum(1 for k in self._held.values() if k == key) +
                sum(1 for k in self._local_held.values() if k == key))

    async def acquire(self, key: str, limit: int) -> str | None:
        lease = f"{self.owner}:{next(self._serial)}"
        try:
            taken = await self._ask("eval", _ACQUIRE, [self._k(key)],
                                    [limit, self.lease_seconds, lease])
        except RedisAway:
            if 0 < limit <= self._mine(key):
                return None
            self._local_held[lease] = key
            return lease
        if not taken:
            return None
        self._held[lease] = key
        return lease

    async def release(self, key: str, lease: str) -> None:
        if self._local_held.pop(lease, None) is not None:
            return
        if self._held.pop(lease, None) is None:
            return
        await self._give_back(key, lease)

    async def _give_back(self, key: str, lease: str) -> None:
        try:
            await self._ask("zrem", self._k(key), lease)
        except RedisAway:
            pass  # its lease expires in Redis by itself

    async def _renew(self) -> None:
        if not self._held or self.away_since is not None:
            return
        held = list(self._held.items())
        try:
            await self._ask("eval", _RENEW, [self._k(key) for _, key in held],
                            [self.lease_seconds, *(lease for lease, _ in held)])
        except RedisAway:
            pass

    async def current(self, key: str) -> int:
        try:
            return int(await self._ask("eval", _CURRENT, [self._k(key)], []))
        except RedisAway:
            return self._mine(key)

    async def hit(self, key: str, window: float) -> int:
        member = f"{self.owner}:{next(self._serial)}"
        try:
            return int(await self._ask("eval", _HIT, [self._k(key)], [window, member]))
        except RedisAway:
            return await self._local.hit(key, window)

    async def hits(self, key: str, window: float) -> int:
        try:
            return int(await self._ask("eval", _HITS, [self._k(key)], [window]))
        except RedisAway:
            return await self._local.hits(key, window)

    async def reset(self, key: str) -> None:
        await self._local.reset(key)
        try:
            await self._ask("delete", self._k(key))
        except RedisAway:
            pass

    async def mark(self, key: str, seconds: float) -> None:
        await self._local.mark(key, seconds)  # known here too while Redis is away
        try:
            await self._ask("set", self._k(key), "1", expire=max(1, round(seconds)))
        except RedisAway:
            pass

    async def marked(self, key: str) -> bool:
        try:
            return bool(await self._ask("exists", self._k(key)))
        except RedisAway:
            return await self._local.marked(key)
