"""Calls through a real Asterisk 22 into xvbd: the demo tenant's voicemail, 50 and then 200
calls at once, and what each side spent on them.

    python bench/asterisk_load.py [--db sqlite|mysql] [--concurrency C [C ...]] [--calls N]
                                  [--py-spy PREFIX] [--keep]

The rig of the Asterisk tier (``tests/asterisk/rig.py``): ``xvbd-admin db upgrade`` and
``demo-tenant``, the real ``twistd xvbd``, and a private Asterisk (``asterisk -C``) running the
shipped dialplan.  Each call is an AMI Originate into ``Local/613@from-provider``; the caller's
half waits in this bench's ``xvbb-caller`` context.  When res_agi says (``AGIExecStart``) that
xvbd asks for the AccessCode, the PIN, the menu key or the message, one AMI Redirect sends the
caller to the extension that answers it: ``10001#``, ``911#``, ``1`` (SendDTMF, as a phone
sends keys), then ``demo-thanks`` (5.5 s of speech, Playback) and ``#``.  xvbd stores the
message, says it is saved and hangs up.  One AMI session on this process's reactor drives
every call.  The group's mailbox limits are lifted (a bench leaves thousands of messages).

A call fails unless it ended with its message stored (the row, and a WAV file of 5-9 s) and
its CDR summary (``TYPE=XVB`` without ``RESULT=``) written to the CDR file and the database,
xvbd's two sinks here.

AGI turnaround is measured on xvbd's side of the wire: a packet socket on ``lo``
(AF_PACKET, which needs root or CAP_NET_RAW) sees each AGI segment to or from xvbd's port
with the kernel's timestamp, taken as the sender's write leaves it.  A sample runs from the
segment that completes Asterisk's answer (its result line; for the first command, the
environment's empty line) to the segment carrying xvbd's next command: xvbd waking, reading,
deciding (database work included) and writing, and nothing of Asterisk's own scheduling.  The
timestamps are in nanoseconds; the samples are honest well below a millisecond.  (Asterisk's
AGI debug log has millisecond timestamps, taken in the channel's thread, but they add
Asterisk's own wake-up on a busy machine and the debug log costs Asterisk CPU: it is off.)

CPU per call: utime + stime of each process (``/proc/PID/stat``: every thread, exited ones
included), from just before a phase's first call to the moment its last CDR summary is in the
database, divided by the phase's calls.  Asterisk's share includes the caller's half of each
Local channel and this bench's AMI session.  A few warm-up calls come first, not counted;
their length spreads the first calls of each phase over one call's time.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from agi_load import thread_cpu  # noqa: E402
from measure import TICK, cpu_seconds, percentile  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.internet.protocol import Protocol  # noqa: E402

from tests.asterisk.caller import CALLER_CONTEXT, PHONES_CONTEXT, wav_seconds  # noqa: E402
from tests.asterisk.manager import Event, as_dict  # noqa: E402
from tests.asterisk.pbx import Asterisk  # noqa: E402
from tests.asterisk.rig import Rig  # noqa: E402
from tests.peers.ami import parse_messages  # noqa: E402

NUMBER, ACCESS_CODE, PIN = "613", "10001", "911"
CALL_TIMEOUT = 120.0  # seconds a call may take before it counts as failed
TARGET_RATIO, TARGET_P99_MS = 0.05, 5.0
IDLE_SECONDS = 10.0  # how long the processes are watched doing nothing, after the warm-up

#: The caller's half: waits, and answers each prompt when the bench redirects it there.
BENCH_CALLER = f"""
[xvbb-caller]
exten => s,1,Wait(3600)
 same => n,Hangup()
exten => code,1,Wait(0.3)
 same => n,SendDTMF({ACCESS_CODE}#,250,120)
 same => n,Goto(s,1)
exten => pin,1,Wait(0.3)
 same => n,SendDTMF({PIN}#,250,120)
 same => n,Goto(s,1)
exten => menu,1,Wait(0.3)
 same => n,SendDTMF(1,250,120)
 same => n,Goto(s,1)
exten => speak,1,Wait(0.5)
 same => n,Playback(demo-thanks)
 same => n,SendDTMF(#,250,120)
 same => n,Goto(s,1)
"""


class BenchAsterisk(Asterisk):
    """The tier's Asterisk with room for a few hundred calls: a soft limit of 1,024 file
    descriptors (a usual default) is too few for 200 calls' channels, files and sockets."""

    def write_config(self) -> None:
        super().write_config()
        with self.conf.open("a") as options:  # [options] is the file's last section
            options.write("maxfiles = 8192\n")


# ------------------------------------------------------------------ the wire


ETH_P_IP, SO_ATTACH_FILTER, SO_TIMESTAMPNS, SO_RCVBUFFORCE = 0x0800, 26, 35, 33
SOL_PACKET, PACKET_STATISTICS, PACKET_HOST = 263, 6, 0
_REPLY = re.compile(rb"^\d{3} ")


def port_filter(port: int) -> bytes:
    """Classic BPF on the IP header: unfragmented TCP segments from or to ``port``, as
    ``lo`` delivers them (an IP packet socket gets no copy of them going out)."""
    drop, accept = 12, 11
    program = [
        (0x20, 0, 0, 0xFFFFF004),  # ld pkttype
        (0x15, 0, drop - 2, PACKET_HOST),
        (0x30, 0, 0, 9),  # ldb [9]: protocol
        (0x15, 0, drop - 4, 6),
        (0x28, 0, 0, 6),  # ldh [6]: fragment offset
        (0x45, drop - 6, 0, 0x1FFF),
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): IP header length
        (0x48, 0, 0, 0),  # ldh [x+0]: source port
        (0x15, accept - 9, 0, port),
        (0x48, 0, 0, 2),  # ldh [x+2]: destination port
        (0x15, accept - 11, drop - 11, port),
        (0x06, 0, 0, 0xFFFF),
        (0x06, 0, 0, 0),
    ]
    return b"".join(struct.pack("HBBI", *op) for op in program)


@dataclass
class Segment:
    ns: int
    peer: int  # Asterisk's port: the connection
    to_xvbd: bool
    payload: bytes
    syn: bool


class AGIWire:
    """Every AGI segment on ``lo`` to or from xvbd's AGI port, kernel-timestamped, read by
    a thread of this process from :meth:`start` to :meth:`stop`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._program = ctypes.create_string_buffer(port_filter(port))
        self.sock = self._open()  # fails here, before any call, without the right
        self.sock.close()
        self.segments: list[Segment] = []
        self.drops = 0
        self._running = False
        self._thread: threading.Thread | None = None

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        fprog = struct.pack("HL", len(self._program) // 8, ctypes.addressof(self._program))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        sock.bind(("lo", ETH_P_IP))
        sock.settimeout(0.2)
        return sock

    def start(self) -> None:
        self.sock = self._open()
        self.segments = []
        self._running = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def stop(self) -> list[Segment]:
        time.sleep(0.3)  # what is still in the socket's queue
        self._running = False
        if self._thread is not None:
            self._thread.join()
        self.drops = self._statistics()[1]
        self.sock.close()
        return self.segments

    def _statistics(self) -> tuple[int, int]:
        packets, drops = struct.unpack(
            "II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return packets, drops

    def _read(self) -> None:
        while self._running:
            try:
                data, ancillary, _flags, address = self.sock.recvmsg(65536, 64)
            except TimeoutError:
                continue
            if address[2] != PACKET_HOST or len(data) < 20 or data[9] != 6:
                continue
            ns = 0
            for _level, kind, value in ancillary:
                if kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    ns = seconds * 1_000_000_000 + nanoseconds
            ihl = (data[0] & 0x0F) * 4
            total = struct.unpack("!H", data[2:4])[0]
            source, destination = struct.unpack("!HH", data[ihl:ihl + 4])
            offset, flags = (data[ihl + 12] >> 4) * 4, data[ihl + 13]
            payload = data[ihl + offset:total]
            to_xvbd = destination == self.port
            if not to_xvbd and source != self.port:
                continue  # queued in the moment before the filter was attached
            if payload or flags & 0x02:
                self.segments.append(Segment(ns, source if to_xvbd else destination, to_xvbd,
                                             payload, bool(flags & 0x02)))


@dataclass
class _Connection:
    env_done: bool = False
    from_asterisk: bytes = b""
    from_xvbd: bytes = b""
    outstanding: int = 0
    answered_ns: int | None = None
    last: str = ""


def verb(line: bytes) -> str:
    words = line.decode(errors="replace").upper().split()
    return " ".join(words[:2]) if words else "?"


def turnarounds(segments: list[Segment]) -> list[tuple[float, str, str]]:
    """(seconds, the command Asterisk answered, xvbd's next command) per sample: from the
    segment completing Asterisk's answer to the one carrying xvbd's next command, when no
    command was still waiting for its answer."""
    connections: dict[int, _Connection] = {}
    samples = []
    for seg in sorted(segments, key=lambda s: s.ns):
        if seg.syn and not seg.payload:
            if seg.to_xvbd:
                connections[seg.peer] = _Connection()
            continue
        conn = connections.setdefault(seg.peer, _Connection())
        if seg.to_xvbd:
            *lines, conn.from_asterisk = (conn.from_asterisk + seg.payload).split(b"\n")
            for line in lines:
                if not conn.env_done:
                    if not line.strip():
                        conn.env_done, conn.answered_ns, conn.last = True, seg.ns, "(env)"
                elif _REPLY.match(line) and conn.outstanding:
                    conn.outstanding -= 1
                    if not conn.outstanding:
                        conn.answered_ns = seg.ns
            continue
        *lines, conn.from_xvbd = (conn.from_xvbd + seg.payload).split(b"\n")
        if not lines:
            continue
        if conn.answered_ns is not None and not conn.outstanding:
            samples.append(((seg.ns - conn.answered_ns) / 1e9, conn.last, verb(lines[0])))
        conn.answered_ns = None
        conn.outstanding += len(lines)
        conn.last = verb(lines[-1])
    return samples


# ------------------------------------------------------------------ the callers


class AMISession(Protocol):
    """One AMI session: actions answered by ActionID, events handed to ``on_event``."""

    def __init__(self, on_event: Callable[[Event], None]) -> None:
        self.on_event = on_event
        self.buffer = b""
        self.banner: Deferred[None] = Deferred()
        self.pending: dict[str, Deferred[Event]] = {}
        self.ids = itertools.count(1)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if not self.banner.called:
            if b"\r\n" not in self.buffer:
                return
            self.buffer = self.buffer.split(b"\r\n", 1)[1]
            self.banner.callback(None)
        messages, self.buffer = parse_messages(self.buffer)
        for fields in messages:
            message = as_dict(fields)
            if "Event" in message:
                self.on_event(message)
            elif message.get("ActionID") in self.pending:
                self.pending.pop(message["ActionID"]).callback(message)

    def action(self, name: str, **fields: str | list[str]) -> Deferred[Event]:
        action_id = f"b{next(self.ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        for key, value in fields.items():
            lines.extend(f"{key}: {v}" for v in (value if isinstance(value, list) else [value]))
        done: Deferred[Event] = Deferred()
        self.pending[action_id] = done
        assert self.transport is not None
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return done


@dataclass
class BenchCall:
    n: int
    caller_id: str
    started: float
    ended: float = 0.0
    caller_channel: str = ""
    prompts: list[str] = field(default_factory=list)
    error: str = ""
    timer: Any = None


class CallPhase:
    """Keeps ``concurrency`` callers on the line until ``calls`` have been placed; the
    first ones start spread over ``ramp`` seconds, as calls arrive."""

    def __init__(self, reactor: Any, ami: AMISession, serial: itertools.count[int], calls: int,
                 concurrency: int, ramp: float) -> None:
        self.reactor, self.ami, self.serial = reactor, ami, serial
        self.calls, self.concurrency, self.ramp = calls, concurrency, ramp
        self.by_uid: dict[str, BenchCall] = {}
        self.placed: list[BenchCall] = []
        self.active = self.peak = 0
        self.finished: Deferred[None] = Deferred()

    def run(self) -> Deferred[None]:
        for i in range(min(self.calls, self.concurrency)):
            self.reactor.callLater(i * self.ramp / self.concurrency, self.place)
        return self.finished

    def place(self) -> None:
        n = next(self.serial)
        call = BenchCall(n, f"7900{n:07d}", time.monotonic())
        self.placed.append(call)
        self.by_uid[f"xvbb-{n}-1"] = self.by_uid[f"xvbb-{n}-2"] = call
        self.active += 1
        self.peak = max(self.peak, self.active)
        call.timer = self.reactor.callLater(CALL_TIMEOUT, self.give_up, call)
        done = self.ami.action(
            "Originate", Channel=f"Local/{NUMBER}@from-provider", Context="xvbb-caller",
            Exten="s", Priority="1", CallerID=f'"Bench" <{call.caller_id}>', Timeout="30000",
            Async="true", ChannelId=f"xvbb-{n}-1", OtherChannelId=f"xvbb-{n}-2")

        def refused(reply: Event) -> None:
            if reply.get("Response") != "Success":
                self.end(call, f"Originate: {reply.get('Message')}")

        done.addCallback(refused)

    def on_event(self, event: Event) -> None:
        uid = event.get("Uniqueid", "")
        call = self.by_uid.get(uid)
        if call is None or call.ended:
            return
        name = event.get("Event")
        if name == "AGIExecStart":
            self.prompted(call, event)
        elif name == "Hangup" and uid.endswith("-2"):
            self.end(call)
        elif name == "OriginateResponse" and event.get("Response") != "Success":
            self.end(call, f"OriginateResponse {event.get('Reason')}")

    def prompted(self, call: BenchCall, event: Event) -> None:
        command = event.get("Command", "").upper()
        if command.startswith("GET DATA"):
            stage = ("code", "pin")[min(1, call.prompts.count("code"))]
            if "pin" in call.prompts:
                call.error = f"a third GET DATA: {command}"
                stage = ""
        elif command.startswith("STREAM FILE DEMO-INSTRUCT") and "menu" not in call.prompts:
            stage = "menu"
        elif command.startswith("RECORD FILE"):
            stage = "speak"
        else:
            return
        call.caller_channel = event["Channel"][:-1] + "1"
        if not stage:
            self.ami.action("Hangup", Channel=call.caller_channel)
            return
        call.prompts.append(stage)
        self.ami.action("Redirect", Channel=call.caller_channel, Context="xvbb-caller",
                        Exten=stage, Priority="1")

    def give_up(self, call: BenchCall) -> None:
        call.error = call.error or f"not over after {CALL_TIMEOUT:.0f} s ({call.prompts})"
        if call.caller_channel:
            self.ami.action("Hangup", Channel=call.caller_channel)
        self.end(call, call.error)

    def end(self, call: BenchCall, error: str = "") -> None:
        if call.ended:
            return
        call.ended = time.monotonic()
        call.error = call.error or error
        if call.timer.active():
            call.timer.cancel()
        self.active -= 1
        if len(self.placed) < self.calls:
            self.place()
        elif not self.active:
            self.finished.callback(None)


# ------------------------------------------------------------------ what is stored


def cdr_summaries(rig: Rig) -> dict[str, str]:
    """The CDR file's summary lines (TYPE=XVB): caller id -> its DATA."""
    out = {}
    for line in rig.cdr_lines():
        head, _, data = line.partition(", DATA=")
        fields = dict(part.split("=", 1) for part in head.split(", ") if "=" in part)
        if fields.get("TYPE") == "XVB":
            out[fields.get("CALLER_ID", "")] = data
    return out


def wait_stored(rig: Rig, count: int, timeout: float = 30.0) -> None:
    """Until the database holds ``count`` summaries (the file sink writes first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rig.query("SELECT COUNT(*) FROM cdrs WHERE type = 'XVB'")[0][0] >= count:
            return
        time.sleep(0.2)


def failures(rig: Rig, calls: list[BenchCall]) -> dict[str, str]:
    """Caller id -> why, for each call that did not end with its message and summary."""
    messages = {row[0]: row[1:] for row in rig.query(
        "SELECT caller_id, user_id, duration, file_name, file_format FROM messages")}
    in_file = cdr_summaries(rig)
    in_db = {row[0]: row[1] for row in rig.query(
        "SELECT caller_id, data FROM cdrs WHERE type = 'XVB'")}
    out = {}
    for call in calls:
        why = [call.error] if call.error else []
        stored = messages.get(call.caller_id)
        if stored is None:
            why.append("no message row")
        else:
            user, _duration, name, fmt = stored
            path = rig.media / "u" / str(user) / "messages" / f"{name}.{fmt}"
            if not path.exists():
                why.append(f"no file {path}")
            elif fmt == "wav" and not 5 <= wav_seconds(path) <= 9:
                why.append(f"a message of {wav_seconds(path):.1f} s")
        for where, summaries in (("file", in_file), ("database", in_db)):
            data = summaries.get(call.caller_id)
            if data is None:
                why.append(f"no CDR summary in the {where}")
            elif "RESULT=" in data:
                why.append(f"CDR summary in the {where}: {data}")
        if why:
            out[call.caller_id] = "; ".join(why)
    return out


# ------------------------------------------------------------------ a phase


def mariadb_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in ("mariadbd",
                                                                                 "mysqld"):
                return int(entry.name)
    return None


class Meter:
    """CPU seconds of Asterisk, xvbd (its reactor thread apart) and MariaDB."""

    def __init__(self, asterisk: int, xvbd: int, mariadb: int | None) -> None:
        self.pids = {"asterisk": asterisk, "xvbd": xvbd}
        if mariadb:
            self.pids["mariadb"] = mariadb

    def read(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["xvbd reactor"] = thread_cpu(self.pids["xvbd"]).get("reactor", 0.0)
        out["xvbd kernel"] = system_seconds(self.pids["xvbd"])
        out["xvbd wakeups"] = reactor_wakeups(self.pids["xvbd"])
        return out


def system_seconds(pid: int) -> float:
    """The kernel's part of ``pid``'s CPU seconds (its system calls: the socket writes,
    reads and closes of AGI)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / TICK


def reactor_wakeups(pid: int) -> float:
    """How often the reactor thread went to sleep (in epoll, mostly) and was woken."""
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return float(line.split()[1])
    return 0.0


def fd_count(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


async def run_phase(reactor: Any, rig: Rig, ami: AMISession, route: list[CallPhase],
                    serial: itertools.count[int], wire: AGIWire | None, meter: Meter,
                    calls: int, concurrency: int, ramp: float,
                    py_spy: str = "") -> dict[str, Any]:
    assert rig.asterisk.proc is not None and rig.server is not None
    phase = CallPhase(reactor, ami, serial, calls, concurrency, ramp)
    route[:] = [phase]
    fds = [0]

    def sample_fds() -> None:
        fds[0] = max(fds[0], fd_count(rig.asterisk.proc.pid))  # type: ignore[union-attr]

    from twisted.internet.task import LoopingCall

    sampler = LoopingCall(sample_fds)
    spy = None
    if py_spy:
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "100",
             "-p", str(rig.server.proc.pid), "-f", "raw", "-o", f"{py_spy}-{concurrency}.txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load = os.getloadavg()[0]
    if wire is not None:
        wire.start()
    before = meter.read()
    began = time.monotonic()
    sampler.start(1.0)
    await phase.run()
    sampler.stop()
    seconds = max(c.ended for c in phase.placed) - began
    segments = wire.stop() if wire is not None else []
    wanted = {c.caller_id for c in phase.placed}
    deadline = time.monotonic() + 30
    while not wanted <= cdr_summaries(rig).keys() and time.monotonic() < deadline:
        time.sleep(0.2)
    wait_stored(rig, len(cdr_summaries(rig)))
    after = meter.read()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    return {"phase": phase, "seconds": seconds, "load": load,
            "cpu": {k: after[k] - before[k] for k in after}, "fds": fds[0],
            "samples": turnarounds(segments), "drops": wire.drops if wire else 0}


# ------------------------------------------------------------------ the report


def report(db: str, result: dict[str, Any], failed: dict[str, str]) -> None:
    phase: CallPhase = result["phase"]
    n = len(phase.placed)
    cpu = {k: v * 1000 / max(n, 1) for k, v in result["cpu"].items()}
    wakeups = cpu.pop("xvbd wakeups") / 1000
    ratio = cpu["xvbd"] / cpu["asterisk"] if cpu["asterisk"] else float("inf")
    samples = result["samples"]
    values = [s[0] for s in samples]
    p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
    lengths = [c.ended - c.started for c in phase.placed]
    mariadb = f" mariadb={cpu['mariadb']:.1f}" if "mariadb" in cpu else ""
    print(f"asterisk/{db} concurrency={phase.concurrency}: calls={n} failed={len(failed)} "
          f"peak_calls={phase.peak} seconds={result['seconds']:.1f} "
          f"calls_per_s={n / result['seconds']:.2f} call_s={sum(lengths) / n:.1f} "
          f"load1={result['load']:.2f}")
    print(f"  cpu_ms_per_call asterisk={cpu['asterisk']:.1f} xvbd={cpu['xvbd']:.2f} "
          f"(reactor thread {cpu['xvbd reactor']:.2f}, in the kernel "
          f"{cpu['xvbd kernel']:.2f}; woken {wakeups:.0f} times){mariadb} "
          f"xvbd/asterisk={ratio * 100:.1f}%  asterisk_peak_fds={result['fds']}")
    print(f"  agi_turnaround (xvbd's side: kernel timestamps of the AGI segments on lo, "
          f"Asterisk's answer -> xvbd's next command) samples={len(values)} "
          f"p50_ms={p50:.3f} p99_ms={p99:.3f} max_ms={max(values, default=0) * 1000:.3f} "
          f"capture_drops={result['drops']}")
    steps: dict[tuple[str, str], list[float]] = {}
    for seconds, answered, following in samples:
        steps.setdefault((answered, following), []).append(seconds)
    slowest = sorted(steps.items(), key=lambda kv: -percentile(kv[1], 0.99))[:5]
    print("  slowest steps (p99): " + "; ".join(
        f"{a} -> {b} n={len(v)} p50={percentile(v, 0.5) * 1000:.2f} "
        f"p99={percentile(v, 0.99) * 1000:.2f}" for (a, b), v in slowest))
    for caller, why in list(failed.items())[:10]:
        print(f"  failed {caller}: {why}")
    met = (not failed and ratio <= TARGET_RATIO and p99 <= TARGET_P99_MS)
    print(f"  targets {'met' if met else 'MISSED'}: failed {len(failed)} (0), xvbd/asterisk "
          f"{ratio * 100:.1f}% (<= {TARGET_RATIO * 100:.0f}%), p99 {p99:.2f} ms "
          f"(<= {TARGET_P99_MS:.0f} ms)", flush=True)


# ------------------------------------------------------------------ main


def build_rig(db: str) -> Rig:
    tmp = Path(tempfile.mkdtemp(prefix="xvbb-"))  # short: Asterisk's control socket
    rig = Rig(tmp, db)
    old = rig.asterisk
    rig.asterisk = BenchAsterisk(old.dir, agi_port=rig.agi_port)
    rig.asterisk.extra_dialplan = CALLER_CONTEXT + PHONES_CONTEXT + BENCH_CALLER
    rig.asterisk.globals.update(old.globals)
    return rig


def no_mailbox_limits(rig: Rig) -> None:
    rig.query("UPDATE user_groups SET max_messages_per_ext = 0, max_messages_total = 0")


async def bench(reactor: Any, args: argparse.Namespace) -> None:
    rig = build_rig(args.db)
    wire: AGIWire | None = None
    kept = False
    try:
        rig.start(before=no_mailbox_limits)
        assert rig.ami is not None and rig.server is not None and rig.asterisk.proc is not None
        rig.ami.close()  # the tier's threaded session: this bench has its own
        rig.ami = None
        rig.asterisk.cli("agi set debug off")
        try:
            wire = AGIWire(rig.agi_port)
        except PermissionError:
            raise SystemExit("the AGI turnaround is read from a packet socket on lo: run as "
                             "root (or with CAP_NET_RAW)") from None
        route: list[CallPhase] = []

        def dispatch(event: Event) -> None:
            for phase in route:
                phase.on_event(event)

        ami = AMISession(dispatch)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", rig.asterisk.ami_port)
        await connectProtocol(endpoint, ami)
        await ami.banner
        login = await ami.action("Login", Username="tester", Secret=rig.asterisk.ami_secret,
                                 Events="agi,call")
        assert login.get("Response") == "Success", login
        await ami.action("Filter", Operation="Add",
                         Filter="Event: (AGIExecStart|Hangup|OriginateResponse)")
        meter = Meter(rig.asterisk.proc.pid, rig.server.proc.pid,
                      mariadb_pid() if args.db == "mysql" else None)
        serial = itertools.count(1)
        warm = await run_phase(reactor, rig, ami, route, serial, None, meter, 4, 2, 1.0)
        warm_calls = warm["phase"].placed
        broken = failures(rig, warm_calls)
        if broken:
            kept = True
            raise SystemExit(f"the warm-up calls failed: {broken}; files kept in {rig.tmp}")
        ramp = sum(c.ended - c.started for c in warm_calls) / len(warm_calls)
        from twisted.internet.task import deferLater

        quiet = meter.read()
        await deferLater(reactor, IDLE_SECONDS, lambda: None)
        idle = {k: (v - quiet[k]) * 1000 / IDLE_SECONDS for k, v in meter.read().items()}
        idle_wakeups = idle.pop("xvbd wakeups") / 1000
        print(f"asterisk/{args.db}: one call takes {ramp:.1f} s (the first calls of a phase "
              f"start spread over that); idle CPU ms/s: "
              + " ".join(f"{k.replace(' ', '_')}={v:.1f}" for k, v in idle.items())
              + f" (xvbd's reactor woken {idle_wakeups:.1f} times/s)", flush=True)
        for concurrency in args.concurrency:
            calls = args.calls or 4 * concurrency
            result = await run_phase(reactor, rig, ami, route, serial, wire, meter, calls,
                                     concurrency, ramp, args.py_spy)
            report(args.db, result, failures(rig, result["phase"].placed))
        ami.transport.loseConnection()  # type: ignore[union-attr]
    finally:
        rig.stop()
        problems = rig.asterisk.problems() + [f"xvbd: {p}" for p in rig.xvbd_problems()]
        print(f"asterisk/{args.db}: {len(problems)} warnings or errors in Asterisk's and xvbd's "
              "logs" + "".join(f"\n  {p}" for p in problems[:20]))
        if args.keep or kept:
            print(f"files kept in {rig.tmp}")
        else:
            shutil.rmtree(rig.tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 200],
                        help="calls at once, one phase each (default: 50, then 200)")
    parser.add_argument("--calls", type=int, default=0,
                        help="calls per phase (default: 4 x the concurrency)")
    parser.add_argument("--py-spy", default="",
                        help="record xvbd with py-spy during each phase, into "
                             "PREFIX-<concurrency>.txt (raw; the CPU numbers then include it)")
    parser.add_argument("--keep", action="store_true", help="keep the rig's files")
    args = parser.parse_args()
    from twisted.internet import task

    task.react(lambda reactor: Deferred.fromCoroutine(bench(reactor, args)))


if __name__ == "__main__":
    main()
