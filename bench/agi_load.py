"""FastAGI load: plays many Asterisk sessions against xvbd and prints what it measured.

    python bench/agi_load.py plain [--calls N] [--concurrency C]
        The plain seven-command script (ANSWER, STREAM FILE, GET DATA x2, SET VARIABLE,
        STREAM FILE, HANGUP) against a bare Twisted LineReceiver server and against xvbd's
        FastAGI stack, one after the other: server CPU per call, and the ratio.

    python bench/agi_load.py full --db sqlite|mysql [--calls N] [--concurrency C]
                                  [--scrape N]
        The real process (twistd xvbd) with a bench tenant: every call authenticates by
        AccessCode + PIN, walks a three-level menu and leaves a voicemail (CDR lines to the
        file and the database).  Completed calls/s, AGI turnaround p50/p99 (from our answer
        to xvbd's next command), peak concurrent sessions, server CPU per call.  With
        ``--scrape N``, Prometheus is played too: /metrics is read N times a second during
        the measured phase (compare with ``--scrape 0``: what a scrape costs the calls).

    python bench/agi_load.py hold --db sqlite|mysql [--sessions N]
        N sessions opened and held (each waiting in its first command), then released to
        finish their calls: server RSS per held session.

The server runs in its own process; its CPU time and RSS are read from /proc.  The load
generator shares the machine, so calls/s is a floor of what xvbd alone would do.  ``full``
also splits the CPU between the reactor thread and the others (the writer threads, the
database pool), the kernel's part of each, and how often they slept and were woken per call
(on one core, each wake-up of a thread waiting for the GIL is a context switch).

Environment for ``full``: XVBD_BENCH_CDR (the CDR sinks, default FILE,DB);
XVBD_BENCH_PROFILE=FILE (a cProfile of the server); XVBD_BENCH_PYSPY=FILE (5 s of py-spy
samples of every thread, raw; XVBD_BENCH_PYSPY_OPTIONS=--gil for the GIL's holder only).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import epollreactor  # noqa: E402

if __name__ == "__main__":
    epollreactor.install()

from measure import TICK, cpu_seconds, percentile  # noqa: E402
from twisted.internet.protocol import ClientFactory, Protocol  # noqa: E402

BIN = Path(sys.executable).parent

# ------------------------------------------------------------------ the bench tenant

VOICE_NUMBER, ACCESS_CODE, PIN = "700", "20001", "4321"
MENU_KEYS = ("5", "5", "1")  # root -> 5 -> 5*5 -> 5*5*1 (the voicemail)


async def seed(store: Any) -> None:
    user = await store.accounts.create_user(VOICE_NUMBER, ACCESS_CODE, 1, pin=PIN,
                                            language="xvb.EN-Female")
    ivr = store.ivr
    level = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
    for depth in range(2):
        level = await ivr.add_child(user.id, level.id, "5", "Playback",
                                    {"greeting": f"system:menu{depth}"})
        await ivr.add_child(user.id, level.id, "2", "DateTime", {})
    await ivr.add_child(user.id, level.id, "1", "VoiceMail", {})
    await store.accounts.update_group(1, max_messages_per_ext=0, max_messages_total=0)


def seed_command(conf: str) -> None:
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    from xvbd.config import load_settings
    from xvbd.store import Database, Store

    settings = load_settings(conf)

    async def main(reactor: Any) -> None:
        db = Database(settings.db.url, pool_max=1, reactor=reactor)
        db.start()
        try:
            await seed(Store(db))
        finally:
            db.close()

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))

# ------------------------------------------------------------------ Asterisk's side


def env_block(script: str, args: tuple[str, ...], n: int) -> bytes:
    lines = [("network", "yes"), ("network_script", script),
             ("request", f"agi://127.0.0.1/{script}"), ("channel", f"PJSIP/gw-{n:08x}"),
             ("language", "en"), ("type", "PJSIP"), ("uniqueid", f"1795696425.{n}"),
             ("version", "22.10.1"), ("callerid", f"7900{n % 1000000:06d}"),
             ("calleridname", "Bench"), ("callingpres", "0"), ("callingani2", "0"),
             ("callington", "0"), ("callingtns", "0"), ("dnid", "unknown"),
             ("rdnis", "unknown"), ("context", "xvb-main-fagi"), ("extension", args[0]),
             ("priority", "3"), ("enhanced", "0.0"), ("accountcode", ""),
             ("threadid", "140485300623040")]
    lines += [(f"arg_{i}", a) for i, a in enumerate(args, 1)]
    return "".join(f"agi_{k}: {v}\n" for k, v in lines).encode() + b"\n"


class Stats:
    def __init__(self) -> None:
        self.turnaround: list[float] = []
        self.by_verb: dict[bytes, list[float]] = {}
        self.done = 0
        self.failed = 0
        self.open = 0
        self.peak = 0
        self.commands = 0


class Session(Protocol):
    """Answers like Asterisk, fast: a table of replies by command."""

    def __init__(self, load: Load, n: int) -> None:
        self.load = load
        self.n = n
        self.buffer = b""
        self.keys = list(MENU_KEYS)
        self.sent_at = 0.0
        self.held: bytes | None = None

    def connectionMade(self) -> None:
        stats = self.load.stats
        stats.open += 1
        stats.peak = max(stats.peak, stats.open)
        self.sock = self.transport.getHandle()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send(self.load.env(self.n))

    def send(self, data: bytes) -> None:
        """Straight to the socket, as Asterisk writes: the time taken is when it leaves."""
        self.sent_at = time.perf_counter()
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.transport.write(data[sent:])

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            now = time.perf_counter()
            self.load.stats.turnaround.append(now - self.sent_at)
            self.load.stats.by_verb.setdefault(line[:10], []).append(now - self.sent_at)
            self.load.stats.commands += 1
            if self.load.holding:
                self.held = line
                self.load.held.append(self)
                return
            if self.load.think:  # Asterisk plays a prompt, the caller thinks: time passes,
                # more or less (in step, a thousand calls would all come back at once)
                delay = self.load.think * (0.5 + self.load.random.random())
                self.load.reactor.callLater(delay, self.answer, line)
            else:
                self.answer(line)

    def answer(self, line: bytes) -> None:
        self.send(self.reply(line))

    def reply(self, line: bytes) -> bytes:
        verb = line[:8]
        if verb == b"STREAM F":
            if line.endswith(b'"0123456789*#"') and self.keys:
                return b"200 result=%d endpos=4000\n" % ord(self.keys.pop(0))
            return b"200 result=0 endpos=16000\n"
        if verb == b"GET DATA":
            if b"agent-user" in line:
                return b"200 result=" + ACCESS_CODE.encode() + b"\n"
            if b"agent-pass" in line:
                return b"200 result=" + PIN.encode() + b"\n"
            return b"200 result=1234\n"
        if verb == b"RECORD F":
            return b"200 result=35 (dtmf) endpos=40000\n"
        if verb == b"HANGUP":
            return b"200 result=1\nHANGUP\n"
        if verb == b"SET VARI" or verb == b"VERBOSE ":
            return b"200 result=1\n"
        if verb == b"GET VARI":
            return b"200 result=0\n"
        return b"200 result=0\n"

    def connectionLost(self, reason: Any = None) -> None:
        stats = self.load.stats
        stats.open -= 1
        stats.done += 1
        self.load.next_call()


class Load(ClientFactory):
    """Keeps ``concurrency`` calls going until ``calls`` have been placed, per phase; the
    reactor stops after the last phase."""

    def __init__(self, reactor: Any, port: int, script: str, args: tuple[str, ...],
                 calls: int, concurrency: int) -> None:
        self.reactor = reactor
        self.port = port
        self.phases: list[tuple[int, int, Any]] = [(calls, concurrency, None)]
        self.calls = calls
        self.concurrency = concurrency
        self.stats = Stats()
        self.started = 0
        self.requested = 0
        self.holding = False
        self.think = 0.0
        self.random = random.Random(1)
        self.held: list[Session] = []
        self._env = [env_block(script, args, n) for n in range(64)]
        self.began = 0.0

    def then(self, calls: int, concurrency: int, before: Any) -> Load:
        """A further phase, after ``before()`` (which takes the measurements)."""
        self.phases.append((calls, concurrency, before))
        return self

    def env(self, n: int) -> bytes:
        return self._env[n % len(self._env)]

    def buildProtocol(self, addr: Any) -> Session:
        self.started += 1
        return Session(self, self.started)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.stats.failed += 1
        self.stats.done += 1
        self.next_call()

    def _connect(self) -> None:
        self.requested += 1
        self.reactor.connectTCP("127.0.0.1", self.port, self, timeout=30)

    def next_call(self) -> None:
        if self.requested < self.calls:
            self._connect()
        elif self.stats.done >= self.calls:
            self._next_phase()

    def _next_phase(self) -> None:
        if not self.phases:
            self.seconds = time.perf_counter() - self.began
            if self.reactor.running:
                self.reactor.stop()
            return
        self.seconds = time.perf_counter() - self.began
        calls, concurrency, before = self.phases.pop(0)
        if before is not None:
            before(self)
        self.stats, self.calls, self.concurrency = Stats(), calls, concurrency
        self.requested = 0
        self.began = time.perf_counter()
        for _n in range(min(concurrency, calls)):
            if self.think:  # calls that think start spread out, as real calls arrive
                self.reactor.callLater(self.random.random() * self.think * 6, self._connect)
            else:
                self._connect()

    def run(self) -> float:
        # The load generator's own collector pauses would show as xvbd's latency: off.
        import gc

        gc.collect()
        gc.disable()
        self.reactor.callWhenRunning(self._next_phase)
        self.reactor.run()
        return self.seconds

# ------------------------------------------------------------------ the server side


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the reactor (the main thread) and of the other threads of ``pid``, the
    kernel's part of each (``… kernel``) and how often they slept and were woken
    (``… woken``)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "reactor" if task.name == str(pid) else "threads"
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
        out[name + " kernel"] = out.get(name + " kernel", 0.0) + int(fields[12]) / TICK
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        woken = status.split("voluntary_ctxt_switches:", 1)[1].split()[0]
        out[name + " woken"] = out.get(name + " woken", 0.0) + int(woken)
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    import select

    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if text in line:
            return line
        if not line and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
    raise SystemExit(f"the server did not say {text!r} within {timeout} s")


def pin(server_pid: int) -> None:
    """Server on the first CPU, this load generator on the others: they do not take turns
    on one core, which makes the server's CPU time per call far steadier."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(server_pid, {cpus[0]})
        os.sched_setaffinity(0, set(cpus[1:]))


def start_plain_server(kind: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "servers.py"), kind,
                             str(port)], stdout=subprocess.PIPE, text=True)
    pin(proc.pid)
    wait_for(proc, "listening")
    return proc


def start_xvbd(db: str, work: Path, port: int,
               web_port: int = 0) -> tuple[subprocess.Popen[str], str]:
    if db == "sqlite":
        url = f"sqlite:{work / 'bench.sqlite3'}"
    else:
        name = f"xvbd_bench_{os.getpid()}"
        url = f"{os.environ.get('XVBD_TEST_MYSQL', 'mysql://root@127.0.0.1:3306')}/{name}"
    conf = work / "xvb.conf"
    conf.write_text(f"""
[COMMON]
SERVER_ID = BENCH
[DB]
URL = {url}
POOL_MAX = 8
[AGI]
LISTEN = tcp:{port}:interface=127.0.0.1:backlog=4096
SHUTDOWN_GRACE = 0
ENV_TIMEOUT = 120
[WEB]
LISTEN = tcp:{web_port}:interface=127.0.0.1
[DEBUG]
LEVEL = 3
SEND_TO =
[CDR]
SEND_TO = {os.environ.get("XVBD_BENCH_CDR", "FILE,DB")}
FILE = {work / 'bench.cdr'}
[PATH]
MEDIA_DIR = {work / 'media'}
""")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([str(BIN / "xvbd-admin"), "db", "upgrade", "-c", str(conf)], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, __file__, "seed", str(conf)], check=True, env=env)
    profile = os.environ.get("XVBD_BENCH_PROFILE")  # a cProfile of the server, to that file
    options = ["--profile", profile, "--profiler", "cprofile", "--savestats"] if profile else []
    proc = subprocess.Popen([str(BIN / "twistd"), "-n", "--pidfile=", *options, "xvbd", "-c",
                             str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=work)
    wait_for(proc, "started: server_id=BENCH")
    pin(proc.pid)
    # What the server logs from now on (a web access line per request: /metrics) is read
    # and dropped; left in the pipe, 64 KiB of it would block the server's next write.
    threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
    return proc, url


def drop_mysql(url: str) -> None:
    if not url.startswith("mysql"):
        return
    import pymysql

    from xvbd.config import database_url

    parsed = database_url(url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user,
                           password=parsed.password)
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{parsed.name}`")
    conn.close()


class Scraper:
    """Prometheus, played: ``GET /metrics`` every ``every`` seconds on one kept-alive
    connection (a scrape still running when the next is due is skipped, as Prometheus
    does)."""

    def __init__(self, reactor: Any, port: int, every: float) -> None:
        from twisted.internet.task import LoopingCall
        from twisted.web.client import Agent, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 1
        self.agent = Agent(reactor, pool=pool)
        self.url = f"http://127.0.0.1:{port}/metrics".encode()
        self.loop = LoopingCall(self.scrape)
        self.loop.clock = reactor
        self.every = every
        self.done = self.failed = self.skipped = self.bytes = 0
        self.busy = False
        self.took: list[float] = []
        self.last = ""

    def start(self) -> None:
        self.loop.start(self.every, now=True)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def scrape(self) -> None:
        from twisted.web.client import readBody

        if self.busy:
            self.skipped += 1
            return
        self.busy = True
        began = time.perf_counter()

        def read(response: Any) -> Any:
            if response.code != 200:
                raise RuntimeError(f"/metrics answered {response.code}")
            return readBody(response)

        def got(body: bytes) -> None:
            self.took.append(time.perf_counter() - began)
            self.done += 1
            self.bytes += len(body)
            self.last = body.decode()

        def failed(_: Any) -> None:
            self.failed += 1

        d = self.agent.request(b"GET", self.url)
        d.addCallback(read).addCallbacks(got, failed)
        d.addBoth(lambda _: setattr(self, "busy", False))


def run_load(port: int, script: str, args: tuple[str, ...], calls: int,
             concurrency: int) -> tuple[Stats, float]:
    from twisted.internet import reactor

    load = Load(reactor, port, script, args, calls, concurrency)
    seconds = load.run()
    return load.stats, seconds

# ------------------------------------------------------------------ modes


def plain(args: argparse.Namespace) -> None:
    """Each server in a fresh process per run (a reactor runs once per process), the two
    alternating; the best run of each is the least disturbed by the machine."""
    results: dict[str, list[float]] = {"bare": [], "xvbd": []}
    for _ in range(args.repeat):
        for kind in ("bare", "xvbd"):
            out = subprocess.run([sys.executable, __file__, "plain-one", kind, "--calls",
                                  str(args.calls), "--concurrency", str(args.concurrency)],
                                 capture_output=True, text=True, check=True).stdout
            print(out, end="")
            results[kind].append(float(out.split("cpu_ms_per_call=")[1].split()[0]))
    best = {kind: min(values) for kind, values in results.items()}
    median = {kind: sorted(values)[len(values) // 2] for kind, values in results.items()}
    print(f"server CPU per call, best of {args.repeat}: bare {best['bare']:.3f} ms, "
          f"xvbd {best['xvbd']:.3f} ms, ratio {best['xvbd'] / best['bare']:.2f}; "
          f"median: bare {median['bare']:.3f} ms, xvbd {median['xvbd']:.3f} ms, "
          f"ratio {median['xvbd'] / median['bare']:.2f}")


def plain_one(args: argparse.Namespace) -> None:
    port = free_port()
    server = start_plain_server(args.kind, port)
    try:
        cpu0 = cpu_seconds(server.pid)
        stats, seconds = run_load(port, "bench", ("2500",), args.calls, args.concurrency)
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.kill()
        server.wait()
    print(f"plain/{args.kind}: calls={stats.done} failed={stats.failed} "
          f"commands={stats.commands} seconds={seconds:.2f} calls_per_s={stats.done / seconds:.0f} "
          f"cpu_ms_per_call={cpu * 1000 / max(stats.done, 1):.3f} "
          f"turnaround_p50_ms={percentile(stats.turnaround, 0.5) * 1000:.3f} "
          f"p99_ms={percentile(stats.turnaround, 0.99) * 1000:.3f}")


def full(args: argparse.Namespace) -> None:
    """Each run in a fresh process (a reactor runs once per process)."""
    rates, cpus = [], []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, __file__, "full-one", "--db", args.db,
                              "--calls", str(args.calls), "--concurrency",
                              str(args.concurrency), "--think", str(args.think),
                              "--scrape", str(args.scrape)],
                             capture_output=True, text=True, check=True).stdout
        print(out, end="", flush=True)
        rates.append(float(out.split("calls_per_s=")[1].split()[0]))
        cpus.append(float(out.split("server_cpu_ms_per_call=")[1].split()[0]))
    print(f"full/{args.db}, {args.repeat} runs, /metrics {args.scrape:g}/s: "
          f"calls/s best {max(rates):.0f}, median "
          f"{sorted(rates)[len(rates) // 2]:.0f}; server CPU per call best {min(cpus):.3f} ms, "
          f"median {sorted(cpus)[len(cpus) // 2]:.3f} ms")


def full_one(args: argparse.Namespace) -> None:
    from twisted.internet import reactor

    port, web_port = free_port(), free_port()
    scraper = Scraper(reactor, web_port, 1 / args.scrape) if args.scrape > 0 else None
    with tempfile.TemporaryDirectory(prefix="xvbd-bench-") as tmp:
        server, url = start_xvbd(args.db, Path(tmp), port, web_port)
        try:
            before: dict[str, float] = {}

            def measure(_: Load) -> None:
                before.update(cpu=cpu_seconds(server.pid), rss=rss_kib(server.pid))
                before.update({f"t_{k}": v for k, v in thread_cpu(server.pid).items()})
                if os.environ.get("XVBD_BENCH_PYSPY"):  # a flame graph of every thread
                    # (XVBD_BENCH_PYSPY_OPTIONS=--gil: only the thread holding the GIL)
                    extra = os.environ.get("XVBD_BENCH_PYSPY_OPTIONS", "").split()
                    subprocess.Popen([str(BIN / "py-spy"), "record", "-p", str(server.pid),
                                      "-d", "5", "-r", "500", "--threads", *extra,
                                      "-f", "raw", "-o", os.environ["XVBD_BENCH_PYSPY"]],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def start_measured_phase(load: Load) -> None:
                measure(load)
                load.think = args.think / 1000
                if scraper is not None:
                    scraper.start()
                if os.environ.get("XVBD_BENCH_PROBE"):  # a second, simple Asterisk
                    subprocess.Popen([sys.executable, str(ROOT / "bench" / "probe.py"),
                                      str(port), "200"])

            load = Load(reactor, port, "ivr", (VOICE_NUMBER, "127.0.0.1"), 300, 20)  # warm-up
            load.then(args.calls, args.concurrency, start_measured_phase)
            seconds = load.run()
            if scraper is not None:
                scraper.stop()
            stats = load.stats
            cpu0, rss0 = before["cpu"], before["rss"]
            cpu = cpu_seconds(server.pid) - cpu0
            split = {k: v - before.get(f"t_{k}", 0.0) for k, v in thread_cpu(server.pid).items()}
            rss = rss_kib(server.pid)
            idle_scrape_ms = scrape_cost(server.pid, web_port) if scraper is not None else 0.0
            cdr_file = Path(tmp) / "bench.cdr"
            cdr_lines = sum(1 for _ in open(cdr_file)) if cdr_file.exists() else 0
        finally:
            server.terminate()
            server.wait()
            drop_mysql(url)
    commands = stats.commands / max(stats.done, 1)

    def per_call(name: str) -> float:
        return split.get(name, 0.0) / max(stats.done, 1)

    def ms(name: str) -> float:
        return per_call(name) * 1000

    print(f"full/{args.db}: calls={stats.done} failed={stats.failed} "
          f"concurrency={args.concurrency} think_ms={args.think} peak_sessions={stats.peak} "
          f"commands_per_call={commands:.1f} seconds={seconds:.2f} "
          f"calls_per_s={stats.done / seconds:.0f} "
          f"server_cpu_ms_per_call={cpu * 1000 / max(stats.done, 1):.3f} "
          f"(reactor thread {ms('reactor'):.3f}, of it in the kernel {ms('reactor kernel'):.3f}; "
          f"other threads {ms('threads'):.3f}, in the kernel {ms('threads kernel'):.3f}; "
          f"woken per call: reactor {per_call('reactor woken'):.2f}, "
          f"other threads {per_call('threads woken'):.2f}) "
          f"turnaround_p50_ms={percentile(stats.turnaround, 0.5) * 1000:.3f} "
          f"p99_ms={percentile(stats.turnaround, 0.99) * 1000:.3f} "
          f"server_rss_mib={rss / 1024:.0f} (was {rss0 / 1024:.0f}) cdr_lines={cdr_lines}")
    if scraper is not None:
        print(f"  /metrics every {scraper.every * 1000:.0f} ms: scrapes={scraper.done} "
              f"failed={scraper.failed} skipped={scraper.skipped} "
              f"bytes_each={scraper.bytes // max(scraper.done, 1)} "
              f"scrape_p50_ms={percentile(scraper.took, 0.5) * 1000:.2f} "
              f"p99_ms={percentile(scraper.took, 0.99) * 1000:.2f}; "
              f"xvbd's own turnaround, mean {mean_turnaround(scraper.last) * 1000:.3f} ms; "
              f"server CPU per scrape (500 on the idle process) {idle_scrape_ms:.3f} ms, "
              f"i.e. {idle_scrape_ms / scraper.every / (stats.done / seconds):.4f} ms per "
              f"call at this rate")
    if os.environ.get("XVBD_BENCH_VERBS"):
        for verb, values in sorted(stats.by_verb.items()):
            print(f"  {verb.decode():12} n={len(values):6} "
                  f"p50={percentile(values, 0.5) * 1000:.2f} "
                  f"p99={percentile(values, 0.99) * 1000:.2f} max={max(values) * 1000:.2f}")


def scrape_cost(pid: int, port: int, n: int = 500) -> float:
    """Server CPU ms per ``GET /metrics``: ``n`` of them, one after the other on one
    connection, against the process with no call running."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    cpu0 = cpu_seconds(pid)
    for _ in range(n):
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
    cpu = cpu_seconds(pid) - cpu0
    conn.close()
    return cpu * 1000 / n


def mean_turnaround(text: str) -> float:
    """The mean of xvbd_agi_turnaround_seconds in a scrape (0 without one)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name == "xvbd_agi_turnaround_seconds":
            values = {s.name: s.value for s in family.samples if not s.labels}
            return values["xvbd_agi_turnaround_seconds_sum"] / max(
                values["xvbd_agi_turnaround_seconds_count"], 1)
    return 0.0


def hold(args: argparse.Namespace) -> None:
    from twisted.internet import reactor

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="xvbd-bench-") as tmp:
        server, url = start_xvbd(args.db, Path(tmp), port)
        try:
            load = Load(reactor, port, "ivr", (VOICE_NUMBER, "127.0.0.1"), args.sessions,
                        args.sessions)
            load.phases = []  # the sessions are opened here, in steps, not all at once
            load.holding = True
            measured: dict[str, float] = {}
            time.sleep(0.5)
            rss0 = rss_kib(server.pid)

            def ramp(opened: int = 0) -> None:
                batch = min(500, args.sessions - opened)
                for _ in range(batch):
                    load._connect()
                if opened + batch < args.sessions:
                    reactor.callLater(0.05, ramp, opened + batch)

            def check() -> None:
                if len(load.held) < args.sessions:
                    reactor.callLater(0.2, check)
                    return
                time.sleep(0.5)
                measured["rss"] = rss_kib(server.pid)
                load.holding = False
                for session in load.held:
                    assert session.held is not None
                    session.answer(session.held)

            reactor.callWhenRunning(ramp)
            reactor.callLater(0.2, check)
            begin = time.perf_counter()
            reactor.run()
            seconds = time.perf_counter() - begin
        finally:
            server.terminate()
            server.wait()
            drop_mysql(url)
    per_session = (measured["rss"] - rss0) / args.sessions
    print(f"hold/{args.db}: sessions={args.sessions} held_at_once={len(load.held)} "
          f"completed={load.stats.done} failed={load.stats.failed} seconds={seconds:.1f} "
          f"server_rss_mib before={rss0 / 1024:.0f} held={measured['rss'] / 1024:.0f} "
          f"rss_kib_per_session={per_session:.2f}")


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("plain")
    p.add_argument("--calls", type=int, default=30000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--repeat", type=int, default=5)
    p = sub.add_parser("plain-one")
    p.add_argument("kind", choices=["bare", "xvbd"])
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=50)
    for name in ("full", "full-one"):
        p = sub.add_parser(name)
        p.add_argument("--db", choices=["sqlite", "mysql"], default="sqlite")
        p.add_argument("--calls", type=int, default=8000)
        p.add_argument("--concurrency", type=int, default=100)
        p.add_argument("--repeat", type=int, default=3)
        p.add_argument("--think", type=float, default=0.0,
                       help="ms Asterisk takes before each answer (a prompt playing); "
                            "0: answer at once, the server saturated")
        p.add_argument("--scrape", type=float, default=0.0,
                       help="read /metrics this many times a second during the measured "
                            "phase (0: never)")
    p = sub.add_parser("hold")
    p.add_argument("--db", choices=["sqlite", "mysql"], default="sqlite")
    p.add_argument("--sessions", type=int, default=10000)
    p = sub.add_parser("seed")
    p.add_argument("conf")
    args = parser.parse_args()
    if args.mode == "seed":
        seed_command(args.conf)
        return
    {"plain": plain, "plain-one": plain_one, "full": full, "full-one": full_one,
     "hold": hold}[args.mode](args)


if __name__ == "__main__":
    main()
