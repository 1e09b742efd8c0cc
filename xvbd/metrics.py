"""``/metrics``: this process in the Prometheus text format (``prometheus_client``).

Everything is read when Prometheus asks, by one collector (:class:`ProcessMetrics`): the
call path only adds to plain counters of its own (``Engine.calls_finished``,
``FastAGIFactory.turnaround``, the pool's ``waits`` …) and never calls into
prometheus_client, so a scrape costs a call nothing.  The registry is the process's own,
not the library's global one: two processes' worth of metrics (tests) never mix.

Who may read it is ``[WEB] METRICS_FROM`` (:class:`MetricsPage`); others get 403.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from twisted.web.iweb import IRequest

import xvbd
from xvbd.engine.call import RESULTS
from xvbd.timings import Durations
from xvbd.web.security import client_address

if TYPE_CHECKING:
    from xvbd.accounting.sinks import CDREmitter
    from xvbd.agi.server import FastAGIFactory
    from xvbd.ami.client import AMIClient
    from xvbd.counters import RedisCounters
    from xvbd.engine.engine import Engine
    from xvbd.health import ReactorLag
    from xvbd.store.db import Database

#: The text format Prometheus reads (version 0.0.4), what ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

AMI_ERRORS = ("login_refused", "ended_before_login", "lost")


def _histogram(name: str, documentation: str, durations: Durations) -> HistogramMetricFamily:
    buckets, total, _count = durations.snapshot()
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=total)


class ProcessMetrics:
    """The collector: reads each part given (a part left out is not reported)."""

    def __init__(self, server_id: str, *, engine: Engine | None = None,
                 agi: FastAGIFactory | None = None, db: Database | None = None,
                 emitter: CDREmitter | None = None, redis: RedisCounters | None = None,
                 ami: Iterable[AMIClient] = (), lag: ReactorLag | None = None,
                 mail: Any = None) -> None:
        self.server_id = server_id
        self.engine = engine
        self.agi = agi
        self.db = db
        self.emitter = emitter
        self.redis = redis
        self.ami = tuple(ami)
        self.lag = lag
        self.mail = mail  # a MailSender

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("xvbd_info", "This xvbd: its version and [COMMON] "
                                 "SERVER_ID (always 1)", labels=["version", "server_id"])
        info.add_metric([xvbd.__version__, self.server_id], 1)
        yield info
        yield from self._calls()
        yield from self._cdr()
        yield from self._database()
        yield from self._redis()
        yield from self._ami()
        yield from self._reactor()
        yield from self._mail()

    def _mail(self) -> Iterator[Metric]:
        if self.mail is None:
            return
        outbox = GaugeMetricFamily("xvbd_mail_outbox", "Mails of the outbox, as read after "
                                   "the sender's last round: queued (waiting or being "
                                   "retried) and dead (dead letters, listed on /ai/mail)",
                                   labels=["status"])
        for status in ("queued", "dead"):
            outbox.add_metric([status], self.mail.counts.get(status, 0))
        yield outbox
        yield CounterMetricFamily("xvbd_mail_sent", "Mails this process handed to the relay "
                                  "(its 250 for the DATA)", value=self.mail.sent)
        yield CounterMetricFamily("xvbd_mail_failed_tries", "Tries of this process the "
                                  "relay did not take (retried, or made dead letters)",
                                  value=self.mail.failures)

    def _calls(self) -> Iterator[Metric]:
        if self.engine is not None:
            yield GaugeMetricFamily("xvbd_calls_in_progress",
                                    "Calls the engine is serving now (answered, not finished)",
                                    value=self.engine.calls_in_progress)
            finished = CounterMetricFamily(
                "xvbd_calls_finished", "Calls finished, by how they ended: the call's result "
                "word (XVB_RESULT; the CDR summary's RESULT, empty there for OK)",
                labels=["result"])
            done = self.engine.calls_finished
            for result in sorted({*RESULTS, *done}):
                finished.add_metric([result], done.get(result, 0))
            yield finished
        if self.agi is not None:
            yield GaugeMetricFamily("xvbd_agi_sessions", "FastAGI connections open now",
                                    value=len(self.agi.sessions))
            yield _histogram(
                "xvbd_agi_turnaround_seconds", "xvbd's own time per AGI command: from "
                "Asterisk's answer to the previous command (or the end of the AGI "
                "environment) to xvbd's next command on that call (database reads and "
                "decisions; not the time Asterisk takes to play or record)",
                self.agi.turnaround)

    def _cdr(self) -> Iterator[Metric]:
        if self.emitter is None:
            return
        held = GaugeMetricFamily("xvbd_cdr_file_held_lines", "CDR lines the FILE sink holds "
                                 "in memory because its disk refused them", labels=["path"])
        spool = GaugeMetricFamily("xvbd_cdr_db_spool_waiting", "1 when CDR records wait in "
                                  "the DB sink's spool for the database, else 0")
        dropped = CounterMetricFamily("xvbd_cdr_udp_dropped", "CDR datagrams the UDP sink "
                                      "could not send")
        seen = set()
        for sink in self.emitter.sinks:
            health = sink.health()
            kind = health.get("sink")
            seen.add(kind)
            if kind == "FILE":
                held.add_metric([health["path"]], health["held_lines"])
            elif kind == "DB":
                spool.add_metric([], int(bool(health["spool_waiting"])))
            elif kind == "UDP":
                dropped.add_metric([], health["dropped"])
        for kind, family in (("FILE", held), ("DB", spool), ("UDP", dropped)):
            if kind in seen:
                yield family

    def _database(self) -> Iterator[Metric]:
        if self.db is None:
            return
        yield GaugeMetricFamily("xvbd_db_pool_queued", "Database transactions waiting for "
                                "a pool thread now", value=self.db.pool_queued)
        yield _histogram("xvbd_db_pool_wait_seconds", "Seconds a database transaction "
                         "waited for a free pool thread before it ran", self.db.pool_waits)

    def _redis(self) -> Iterator[Metric]:
        if self.redis is None:
            return
        yield GaugeMetricFamily("xvbd_redis_away", "1 while the shared counters' Redis does "
                                "not answer (calls are counted in this process), else 0",
                                value=int(self.redis.away))
        yield CounterMetricFamily("xvbd_redis_errors", "Redis commands that failed or did "
                                  "not answer in time", value=self.redis.errors)

    def _ami(self) -> Iterator[Metric]:
        if not self.ami:
            return
        connected = GaugeMetricFamily("xvbd_ami_connected", "1 while the AMI session to the "
                                      "node's Asterisk is logged in, else 0",
                                      labels=["node", "address"])
        errors = CounterMetricFamily("xvbd_ami_errors", "AMI sessions that went wrong: "
                                     "login_refused, ended_before_login, lost",
                                     labels=["node", "address", "kind"])
        for client in self.ami:
            connected.add_metric([client.node_id, client.where], int(client.connected))
            for kind in sorted({*AMI_ERRORS, *client.errors}):
                errors.add_metric([client.node_id, client.where, kind],
                                  client.errors.get(kind, 0))
        yield connected
        yield errors

    def _reactor(self) -> Iterator[Metric]:
        if self.lag is None:
            return
        health = self.lag.health()
        yield GaugeMetricFamily("xvbd_reactor_lag_seconds", "How late the reactor ran its "
                                "last once-a-second timer", value=health["last_ms"] / 1000)
        yield GaugeMetricFamily("xvbd_reactor_lag_max_seconds", "The worst reactor lag of "
                                "the last minute", value=health["max_1min_ms"] / 1000)


def metrics_registry(*collectors: Any) -> CollectorRegistry:
    """A registry of this process's own holding ``collectors``."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MetricsPage:
    """``GET /metrics`` for the clients within ``allowed`` (``[WEB] METRICS_FROM``; the
    client's address as :func:`~xvbd.web.security.client_address` reads it)."""

    def __init__(self, registry: CollectorRegistry, allowed: Sequence[str]) -> None:
        self.registry = registry
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False)
                                                   for n in allowed)

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack port
        return any(ip in net or (mapped is not None and mapped in net)
                   for net in self.networks)

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        who = client_address(request)
        if not self.allows(who):
            request.setResponseCode(403)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return (f"403 Forbidden: /metrics is read only from the addresses of [WEB] "
                    f"METRICS_FROM; {who} is not one of them.\n").encode()
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode())
        return bytes(generate_latest(self.registry))
