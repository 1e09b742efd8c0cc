"""CDR sinks and RADIUS: how many records (packets) per second, and what they do to the
reactor's latency.

    python bench/cdr_throughput.py [--seconds 5] [--rate 1000]

For each sink (FILE, DB on SQLite, DB on MariaDB, UDP) it prints
  * the most records/s it takes (100 calls' writes in flight, 6 records a call), and
  * at a steady ``--rate`` records/s: whether it kept up, and the reactor's lag (how late a
    10 ms tick runs, p50/p99/max) — what every call on the node would feel;
and for RADIUS accounting, packets/s answered by a local FreeRADIUS (when installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import epollreactor

if __name__ == "__main__":
    epollreactor.install()

from measure import percentile
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall, deferLater, react

from xvbd.accounting.cdr import CallCDR
from xvbd.accounting.radius import RadiusClient
from xvbd.accounting.sinks import DBSink, FileSink, UDPSink
from xvbd.accounting.spool import Spool
from xvbd.config import HostPort, database_url
from xvbd.store import Database, Store, migrations

RECORDS_PER_CALL = 6
_serial = iter(range(10**9))


def call_records() -> list[Any]:
    n = next(_serial)
    cdr = CallCDR({"ACCESS_CODE": "10001", "CALLED_ID": "2500",
                   "CALLER_ID": "2501@10.1.5.22", "CALL_ID": f"{n:032x}",
                   "SERVER_ID": "BENCH", "SUBSCR_ID": 1})
    for step in range(RECORDS_PER_CALL - 1):
        cdr.step("Playback", f"9*{step}", 1285757672 + step, 1285757673 + step)
    cdr.summary(call_type="incoming", start=1285757672, stop=1285757702, now=1285757702,
                cost=0, sys_cost=0, currency_id=1, dtmf="9w2 w8 3w6 #")
    return cdr.records


class Lag:
    """How late a 10 ms tick of the reactor runs."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.samples: list[float] = []
        self._expected = 0.0
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor

    def start(self) -> None:
        self._expected = time.perf_counter() + 0.01
        self._loop.start(0.01, now=False)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.samples.append(max(0.0, now - self._expected))
        self._expected = now + 0.01

    def stop(self) -> str:
        self._loop.stop()
        s = self.samples or [0.0]
        return (f"reactor lag p50={percentile(s, 0.5) * 1000:.2f} ms "
                f"p99={percentile(s, 0.99) * 1000:.2f} ms max={max(s) * 1000:.2f} ms")


async def most(sink: Any, seconds: float) -> float:
    """Records/s with 100 calls' writes in flight."""
    done = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await sink.write(call_records())
            done += RECORDS_PER_CALL

    await gatherResults([Deferred.fromCoroutine(writer()) for _ in range(100)])
    return done / (time.perf_counter() - began)


async def steady(reactor: Any, sink: Any, rate: float, seconds: float) -> str:
    """``rate`` records/s for ``seconds``: kept up?  and the reactor's lag meanwhile."""
    lag = Lag(reactor)
    lag.start()
    calls_per_second = rate / RECORDS_PER_CALL
    waits: list[Deferred[None]] = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        due = int((time.perf_counter() - began) * calls_per_second)
        while len(waits) < due:
            waits.append(sink.write(call_records()))
        await deferLater(reactor, 0.01, lambda: None)
    sent = time.perf_counter() - began
    await gatherResults(waits)
    behind = time.perf_counter() - began - sent
    result = lag.stop()
    return (f"{len(waits) * RECORDS_PER_CALL / sent:.0f} records/s offered, all written "
            f"{behind * 1000:.0f} ms after the last; {result}")


def udp_collector() -> tuple[socket.socket, list[int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    count = [0]

    def drain() -> None:
        while True:
            try:
                sock.recv(65536)
            except OSError:
                return
            count[0] += 1

    threading.Thread(target=drain, daemon=True).start()
    return sock, count


async def database(url_text: str, work: Path, reactor: Any) -> tuple[Database, Any]:
    url = database_url(url_text)
    migrations.upgrade(url)
    db = Database(url, pool_max=4, reactor=reactor)
    db.start()
    return db, DBSink(Store(db).cdrs, Spool(work / f"{url.backend}.spool", reactor),
                      clock=reactor)


async def radius_rate(reactor: Any, seconds: float, work: Path) -> str:
    if shutil.which("freeradius") is None:
        return "radius: FreeRADIUS is not installed (apt-get install freeradius); skipped"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.freeradius import SECRET, FreeRadius

    server = FreeRadius(work / "radius")
    try:
        client = RadiusClient(HostPort("127.0.0.1", server.port), SECRET, reactor,
                              timeout=2, retries=3)
        await client.start()
        answered = 0
        deadline = time.perf_counter() + seconds
        began = time.perf_counter()

        async def sender() -> None:
            nonlocal answered
            while time.perf_counter() < deadline:
                p = client.accounting_packet()
                p["Acct-Status-Type"] = "Interim-Update"
                p["Acct-Session-Id"] = f"{next(_serial):032x}"
                p["User-Name"] = "10001"
                p["Cisco-AVPair"] = ["xvb-event-type=Playback", "xvb-event-duration=9",
                                     "xvb-event-ext=0"]
                if await client.send(p):
                    answered += 1

        await gatherResults([Deferred.fromCoroutine(sender()) for _ in range(100)])
        client.stop()
        rate = answered / (time.perf_counter() - began)
        return f"radius: {rate:.0f} accounting packets/s answered by FreeRADIUS " \
               f"(100 in flight; given up: {client.given_up})"
    finally:
        server.stop()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="xvbd-cdr-bench-"))
    try:
        sinks: list[tuple[str, Any]] = [("file", FileSink(work / "xvbd.cdr", reactor))]
        sqlite_db, sqlite_sink = await database(f"sqlite:{work / 'bench.sqlite3'}", work,
                                                reactor)
        sinks.append(("db/sqlite", sqlite_sink))
        mysql = os.environ.get("XVBD_TEST_MYSQL", "mysql://root@127.0.0.1:3306")
        name = f"xvbd_cdr_bench_{os.getpid()}"
        mysql_db, mysql_sink = await database(f"{mysql}/{name}", work, reactor)
        sinks.append(("db/mariadb", mysql_sink))
        collector, received = udp_collector()
        udp = UDPSink([HostPort("127.0.0.1", collector.getsockname()[1])], reactor)
        await udp.start()
        sinks.append(("udp", udp))
        for label, sink in sinks:
            best = await most(sink, args.seconds)
            print(f"{label}: at most {best:.0f} records/s", flush=True)
            print(f"{label}: {await steady(reactor, sink, args.rate, args.seconds)}", flush=True)
        print(f"udp: the collector received {received[0]} datagrams")
        print(await radius_rate(reactor, args.seconds, work), flush=True)
        for _, sink in sinks:
            await sink.stop()
        sqlite_db.close()
        mysql_db.close()
        import pymysql

        url = database_url(f"{mysql}/{name}")
        conn = pymysql.connect(host=url.host, port=url.port, user=url.user,
                               password=url.password)
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    arguments = parser.parse_args()
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, arguments)))
