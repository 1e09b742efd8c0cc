"""xvbd's AMI client against the test Asterisk (tests/peers/ami.py) in another process:
how many originations a second one logged-in session carries, and how fast it takes events.

    python bench/ami_originate.py [--seconds 5] [--concurrency 50] [--events 200000]
                                  [--chunking natural|split|merged]

1. Originations: ``--concurrency`` calls of ``AMIClient.originate`` in flight for
   ``--seconds``, shaped as the CallBlast scheduler sends them (a Local channel through
   xvb-dialout, five channel variables, a CallerID).  The test Asterisk answers every one
   at once as busy (reason 5), so each is a whole round trip: the action, its ``queued``
   response, Newchannel x2, Hangup x2, the OriginateResponse.  Prints originations/s, the
   client's CPU per origination, and the latency from the call to its result (p50/p99).
2. Events: ``--events`` call events (Newchannel, NewCallerid, DialBegin, Newstate, Hangup…
   as in the recorded session, ~400 bytes each, Privilege call,all so that they pass
   xvbd's ``call,system`` mask), written as fast as the test Asterisk can; a listener
   subscribed with ``AMIClient.subscribe`` counts them.  Prints events/s and MB/s from the
   first event to the last at the client, and the client's CPU per event.

``--chunking`` is the test Asterisk's (natural: each message as produced; merged: the output
of a reactor turn in one write; split: every message cut into 2-3 writes, one a reactor turn
here rather than the tests' 2 ms apart, so that the pacing does not set the rate).

The test Asterisk runs as ``python bench/ami_originate.py server PORT [--chunking …]``
(prints "listening PORT" once ready, serves until killed); with two CPUs or more it and the
client each get their own.  Its CPU is shown too, as it is Python as well.  The originations
fall into step: the test Asterisk answers a whole read of actions in one write, the client
handles all of it and sends the next actions together, so the two mostly take turns and
originations/s comes out near 1 / (client CPU + test Asterisk CPU) per origination.  The
client's CPU per origination is the figure that belongs to xvbd alone.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import epollreactor  # noqa: E402

if __name__ == "__main__":
    epollreactor.install()

from measure import cpu_seconds, percentile  # noqa: E402
from twisted.internet.defer import Deferred, gatherResults  # noqa: E402
from twisted.internet.task import LoopingCall, react  # noqa: E402

from tests.peers import ami as peer  # noqa: E402
from tests.peers.ami import FakeAsterisk, Fields, Outcome  # noqa: E402
from xvbd.ami.client import AMIClient, Credentials  # noqa: E402
from xvbd.ami.protocol import Message  # noqa: E402

BURST_BATCH = 1000  # events the test Asterisk writes per reactor turn in a burst

# ---------------------------------------------------------------------- the server side

STATE = {0: "Down", 4: "Ring", 6: "Up"}


def snapshot(event: str, channel: str, state: int, uniqueid: str, linkedid: str, *,
             cid: bool = True, prefix: str = "", extra: Fields | None = None) -> Fields:
    """A call-class event carrying a channel snapshot, as Asterisk 22 writes it."""
    num, name = ("6135550123", "XVB Test") if cid else ("<unknown>", "<unknown>")
    return [("Event", event), ("Privilege", "call,all"),
            *[(prefix + key, value) for key, value in [
                ("Channel", channel), ("ChannelState", str(state)),
                ("ChannelStateDesc", STATE[state]), ("CallerIDNum", num),
                ("CallerIDName", name), ("ConnectedLineNum", num),
                ("ConnectedLineName", name), ("Language", "en"), ("AccountCode", ""),
                ("Context", "xvb-dialout"), ("Exten", channel[6:17]), ("Priority", "1"),
                ("Uniqueid", uniqueid), ("Linkedid", linkedid)]],
            *(extra or [])]


def call_events() -> Iterator[Fields]:
    """The call-class events of one Local-channel call after another, endlessly."""
    for n in itertools.count():
        base = f"Local/7900{n % 10_000_000:07d}@xvb-dialout-{n:08x}"
        one, two = f"{base};1", f"{base};2"
        uid1, uid2 = f"1795696425.{2 * n}", f"1795696425.{2 * n + 1}"
        yield snapshot("Newchannel", one, 0, uid1, uid1, cid=False)
        yield snapshot("Newchannel", two, 4, uid2, uid1, cid=False)
        yield snapshot("NewCallerid", one, 0, uid1, uid1, extra=[
            ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])
        yield snapshot("NewConnectedLine", two, 4, uid2, uid1)
        yield snapshot("DialBegin", one, 0, uid1, uid1, prefix="Dest", extra=[
            ("DialString", one[6:].rsplit("-", 1)[0])])
        yield snapshot("Newstate", two, 6, uid2, uid1)
        yield snapshot("Newstate", one, 6, uid1, uid1)
        yield snapshot("DialEnd", one, 6, uid1, uid1, prefix="Dest", extra=[
            ("DialStatus", "ANSWER")])
        yield snapshot("SoftHangupRequest", two, 6, uid2, uid1, extra=[("Cause", "16")])
        yield snapshot("Hangup", two, 6, uid2, uid1, extra=[("Cause", "16"),
                                                             ("Cause-txt", "Normal Clearing")])
        yield snapshot("Hangup", one, 6, uid1, uid1, extra=[("Cause", "16"),
                                                            ("Cause-txt", "Normal Clearing")])


class BenchAsterisk(FakeAsterisk):
    """The test Asterisk, every origination busy at once, and two CLI commands of the
    bench's own: ``bench burst N`` (answered, then N events as fast as they can be
    written) and ``bench sent`` (``EVENTS BYTES`` of the last burst)."""

    def __init__(self, reactor: Any, chunking: str) -> None:
        super().__init__(reactor, chunking=chunking, on_originate=lambda request: Outcome(5))
        self.sent_events = self.sent_bytes = 0
        self._events = call_events()
        # What the tests look at afterwards, kept here for nobody: forgotten as it goes.
        forget = LoopingCall(self._forget)
        forget.clock = reactor
        forget.start(1.0)

    def cli(self, command: str) -> tuple[bool, list[str]]:
        words = command.split()
        if words[:2] == ["bench", "burst"] and len(words) == 3 and words[2].isdigit():
            self.sent_events = self.sent_bytes = 0
            self.reactor.callLater(0, self._burst, int(words[2]))  # after the reply
            return True, [f"bursting {words[2]} events"]
        if command == "bench sent":
            return True, [f"{self.sent_events} {self.sent_bytes}"]
        return super().cli(command)

    def _burst(self, left: int) -> None:
        for fields in itertools.islice(self._events, min(left, BURST_BATCH)):
            self.event(fields)
            self.sent_events += 1
            self.sent_bytes += sum(len(k) + len(v) + 4 for k, v in fields) + 2
        if left > BURST_BATCH:
            self.reactor.callLater(0, self._burst, left - BURST_BATCH)

    def _forget(self) -> None:
        self.actions.clear()
        self.originates.clear()
        for session in self.sessions:
            session.actions.clear()
            session.writes.clear()


def serve(argv: list[str]) -> None:
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(prog="ami_originate.py server")
    parser.add_argument("port", type=int)
    parser.add_argument("--chunking", default="natural", choices=("natural", "split", "merged"))
    args = parser.parse_args(argv)
    peer.SPLIT_GAP = 0.0  # split: one piece a reactor turn (see the module's doc)
    fake = BenchAsterisk(reactor, args.chunking)

    async def start() -> None:
        print(f"listening {await fake.start(args.port)}", flush=True)

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()))
    reactor.run()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- the client side

def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_server(chunking: str) -> tuple[subprocess.Popen[str], int]:
    """The test Asterisk in its own process, on its own CPU when there are two or more."""
    server = subprocess.Popen([sys.executable, __file__, "server", "0", "--chunking",
                               chunking], stdout=subprocess.PIPE, text=True)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(server.pid, {cpus[0]})
        os.sched_setaffinity(0, set(cpus[1:]))
    print(f"chunking {chunking}; client on CPU(s) {sorted(os.sched_getaffinity(0))}, "
          f"test Asterisk on {sorted(os.sched_getaffinity(server.pid))}", flush=True)
    assert server.stdout is not None
    line = server.stdout.readline()  # the reactor has nothing else to do yet
    if not line.startswith("listening "):
        server.kill()
        raise SystemExit(f"the test Asterisk did not start (it said {line!r})")
    return server, int(line.split()[1])


async def originations(client: AMIClient, seconds: float, concurrency: int,
                       server_pid: int) -> None:
    serial = itertools.count(1)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    odd: list[str] = []

    async def caller(deadline: float) -> None:
        while time.perf_counter() < deadline:
            n = next(serial)
            began = time.perf_counter()
            result = await client.originate(
                channel=f"Local/7900{n % 10_000_000:07d}@xvb-dialout/n",
                context="xvb-callblast", exten="s",
                variables={"__XVB_AC": "20001", "XVB_CALL_TYPE": "callblast",
                           "XVB_CB_ITEM": str(1000 + n % 50), "XVB_CB_PHONE": str(n),
                           "XVB_CB_TOKEN": f"BENCH:{n:016x}"},
                caller_id='"XVB Bench" <6135550123>', timeout=30)
            latencies.append(time.perf_counter() - began)
            statuses[result.status] += 1
            if result.status != "busy" and len(odd) < 5:
                odd.append(f"{result.status} ({result.message or result.reason})")

    async def run(span: float) -> float:
        deadline = time.perf_counter() + span
        began = time.perf_counter()
        await gatherResults([Deferred.fromCoroutine(caller(deadline))
                             for _ in range(concurrency)])
        return time.perf_counter() - began

    await run(min(0.5, seconds / 5))  # warm-up, not counted
    latencies.clear()
    statuses.clear()
    odd.clear()
    cpu, server_cpu = own_cpu(), cpu_seconds(server_pid)
    elapsed = await run(seconds)
    cpu, server_cpu = own_cpu() - cpu, cpu_seconds(server_pid) - server_cpu
    done = len(latencies)
    latencies.sort()
    print(f"originations: {done / elapsed:.0f}/s ({done} in {elapsed:.2f} s, "
          f"{concurrency} in flight)")
    print(f"originations: client CPU {cpu / done * 1000:.3f} ms each "
          f"(test Asterisk: {server_cpu / done * 1000:.3f} ms)")
    print(f"originations: latency p50 {percentile(latencies, 0.50) * 1000:.2f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms")
    errors = done - statuses["busy"]
    print(f"originations: errors {errors}" + (
        f" {dict(statuses)}, e.g. {'; '.join(odd)}" if errors else " (every result busy)"))


async def events(reactor: Any, client: AMIClient, count: int, server_pid: int) -> None:
    seen = 0
    first = last = 0.0
    done: Deferred[None] = Deferred()

    def listener(message: Message) -> None:
        nonlocal seen, first, last
        seen += 1
        if seen == 1:
            first = time.perf_counter()
        if seen == count:
            last = time.perf_counter()
            done.callback(None)

    stop = client.subscribe(listener)
    cpu, server_cpu = own_cpu(), cpu_seconds(server_pid)
    await client.command(f"bench burst {count}")
    done.addTimeout(60 + count / 10_000, reactor)
    try:
        await done
    except Exception:
        print(f"events: only {seen} of {count} came within the time allowed")
        return
    finally:
        stop()
    cpu, server_cpu = own_cpu() - cpu, cpu_seconds(server_pid) - server_cpu
    sent_events, sent_bytes = map(int, (await client.command("bench sent"))[0].split())
    if sent_events != count:
        print(f"events: the test Asterisk sent {sent_events}, not {count}")
    span = last - first
    print(f"events: {count / span:.0f}/s, {sent_bytes / span / 1e6:.1f} MB/s of AMI text "
          f"({count} events, {sent_bytes / sent_events:.0f} bytes each, first to last "
          f"{span:.2f} s)")
    print(f"events: client CPU {cpu / count * 1e6:.1f} us each "
          f"(test Asterisk: {server_cpu / count * 1e6:.1f} us)")


async def main(reactor: Any, args: argparse.Namespace) -> None:
    server, port = start_server(args.chunking)
    try:
        client = AMIClient("bench", "127.0.0.1", port, Credentials("xvb", "xvbsecret"),
                           reactor=reactor)
        client.startService()
        await client.when_connected()
        if args.seconds > 0:
            await originations(client, args.seconds, args.concurrency, server.pid)
        if args.events > 0:
            await events(reactor, client, args.events, server.pid)
        await client.stopService()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        serve(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--seconds", type=float, default=5.0)
        parser.add_argument("--concurrency", type=int, default=50)
        parser.add_argument("--events", type=int, default=200_000)
        parser.add_argument("--chunking", default="natural",
                            choices=("natural", "split", "merged"))
        arguments = parser.parse_args()
        react(lambda reactor: Deferred.fromCoroutine(main(reactor, arguments)))
