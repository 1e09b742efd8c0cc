"""The Kamailio sample of ``etc/kamailio/``, run in Debian's kamailio.

``kamailio -c`` must pass on the shipped file, but it only parses: a bad regular expression
or a module parameter it cannot use shows only when kamailio starts, so the shipped files
are also started once. Then a real SIP run on loopback: the sample (its own addresses given
with ``-A``, its dispatcher list rewritten to two free ports, in a temporary directory) in
front of two SIP nodes that answer as Asterisk does (``Node`` below, the real wire format
over UDP), with SIPp placing the calls. The calls must be spread over both nodes, keep to
their node for ACK and BYE, still all be answered when one node goes silent (failover,
then probing takes the node out), and reach that node again when it answers the probes.

A missing kamailio or sipp skips these tests, and fails them under ``CI=true``
(``.ci/services`` installs both)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CFG = ROOT / "etc" / "kamailio" / "kamailio.cfg"
LIST = ROOT / "etc" / "kamailio" / "dispatcher.list"
SAMPLE_NODES = ("sip:192.0.2.11:5060", "sip:192.0.2.12:5060")
# The test's timers: OPTIONS every second, one second for a node to answer.
PING_INTERVAL = 1
FR_TIMER_MS = 1000


def need(program: str) -> str:
    found = shutil.which(program) or next(
        (str(p) for p in (Path("/usr/sbin") / program, Path("/sbin") / program) if p.exists()),
        None)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{program} is not installed; .ci/services installs it")
    pytest.skip(f"{program} is not installed (bash .ci/services installs it)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- a SIP node on UDP -----------------------------------------------------------------

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


@dataclass
class SipMessage:
    first_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def parse(cls, data: bytes) -> SipMessage:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers.append((COMPACT.get(name, name), value.strip()))
        return cls(lines[0], headers, body)

    @property
    def method(self) -> str:
        return self.first_line.split(" ", 1)[0]

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def one(self, name: str) -> str:
        values = self.all(name)
        return values[0] if values else ""


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@dataclass
class Node:
    """One node's SIP side as the proxy sees it: a UAS that answers OPTIONS with 200 and
    an INVITE with 100 then 200 (Record-Route copied, as RFC 3261 says), takes the ACK
    and answers BYE. ``silent`` makes it a dead Asterisk: it reads and answers nothing."""

    name: str
    port: int = field(default_factory=free_udp_port)
    silent: bool = False
    invites: list[str] = field(default_factory=list)     # Call-IDs answered
    ignored: list[str] = field(default_factory=list)     # INVITEs read while silent
    acks: list[str] = field(default_factory=list)
    byes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)     # their X-Xvbd-Source headers
    options_answered: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.1)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=f"node-{self.name}", daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data.strip():
                continue
            message = SipMessage.parse(data)
            if message.first_line.startswith("SIP/2.0"):
                continue
            with self.lock:
                self._handle(message, peer)

    def _handle(self, message: SipMessage, peer: tuple[str, int]) -> None:
        call_id = message.one("call-id")
        method = message.method
        if self.silent:
            if method == "INVITE" and call_id not in self.ignored:
                self.ignored.append(call_id)
            return
        if method == "OPTIONS":
            self.options_answered += 1
            self._reply(message, peer, "200 OK")
        elif method == "INVITE":
            if call_id in self.invites:      # a retransmission: answer it again
                self._reply(message, peer, "200 OK", dialog=True)
                return
            self.invites.append(call_id)
            self.sources += message.all("x-xvbd-source")
            self._reply(message, peer, "100 Trying")
            self._reply(message, peer, "200 OK", dialog=True)
        elif method == "ACK":
            self.acks.append(call_id)
        elif method == "BYE":
            self.byes.append(call_id)
            self._reply(message, peer, "200 OK")
        else:
            self._reply(message, peer, "405 Method Not Allowed")

    def _reply(self, request: SipMessage, peer: tuple[str, int], status: str,
               dialog: bool = False) -> None:
        to = request.one("to")
        if ";tag=" not in to and not status.startswith("100"):
            to += f";tag={self.name}-{abs(hash(request.one('call-id'))) % 10**8}"
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {via}" for via in request.all("via")]
        lines += [f"From: {request.one('from')}", f"To: {to}",
                  f"Call-ID: {request.one('call-id')}", f"CSeq: {request.one('cseq')}"]
        body = ""
        if dialog:
            lines += [f"Record-Route: {rr}" for rr in request.all("record-route")]
            lines += [f"Contact: <sip:{self.name}@127.0.0.1:{self.port}>",
                      "Content-Type: application/sdp"]
            body = SDP
        lines += [f"Server: test-node-{self.name}", f"Content-Length: {len(body)}", "", body]
        self.sock.sendto("\r\n".join(lines).encode(), peer)


# --- kamailio with the sample ----------------------------------------------------------

@dataclass
class Front:
    process: subprocess.Popen[bytes]
    port: int
    ctl: str
    log: Path

    def states(self) -> dict[str, str]:
        """Each destination's FLAGS from ``kamcmd dispatcher.list`` (AP: in, IP: out)."""
        out = subprocess.run([need("kamcmd"), "-s", self.ctl, "dispatcher.list"],
                             capture_output=True, text=True, timeout=5).stdout
        return dict(re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", out))

    def is_in(self, uri: str) -> bool:
        return self.states().get(uri, "").startswith("A")

    def is_out(self, uri: str) -> bool:
        return self.states().get(uri, "").startswith("I")


def start_front(tmp_path: Path, list_file: Path, *defines: str) -> Front:
    kamailio = need("kamailio")
    port = free_udp_port()
    ctl = f"unix:{tmp_path}/kamailio_ctl"
    log = tmp_path / "kamailio.log"
    command = [kamailio, "-DD", "-E", "-f", str(CFG), "-Y", str(tmp_path),
               "-P", str(tmp_path / "kamailio.pid"), "-w", str(tmp_path), "-m", "32", "-M", "4",
               "-A", f"LISTEN=udp:127.0.0.1:{port}",
               "-A", f'DISPATCHER_LIST="{list_file}"',
               "-A", f'CTL_SOCKET="{ctl}"',
               "-A", "CHILDREN=2"]
    for define in defines:
        command += ["-A", define]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=tmp_path, start_new_session=True)
    front = Front(process, port, ctl, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"kamailio exited {process.returncode}:\n{log.read_text()}")
        return bool(front.states())

    wait_until("kamailio's control socket", ready)
    return front


def stop_front(front: Front) -> None:
    if front.process.poll() is None:
        front.process.send_signal(signal.SIGTERM)
        try:
            front.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(front.process.pid, signal.SIGKILL)
            front.process.wait(5)


# --- SIPp as the caller ----------------------------------------------------------------

# INVITE, 100/180 optional, 200 (its Record-Route kept), ACK and BYE along that route.
SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call through the front">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: xvbd-test-caller
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:caller@[local_ip]:[local_port]>;tag=[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:caller@[local_ip]:[local_port]>;tag=[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


def place_calls(tmp_path: Path, front: Front, calls: int) -> int:
    """``calls`` calls to 613 through the front, 10 a second; every one must succeed.
    Returns SIPp's port."""
    scenario = tmp_path / "call.xml"
    scenario.write_text(SCENARIO)
    port = free_udp_port()
    result = subprocess.run(
        [need("sipp"), f"127.0.0.1:{front.port}", "-sf", str(scenario), "-s", "613",
         "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
         "-mp", str(free_udp_port()), "-m", str(calls), "-r", "10", "-l", "5",
         "-timeout", "20", "-timeout_error", "-trace_err", "-nostdin"],
        cwd=tmp_path, capture_output=True, text=True, timeout=40)
    if result.returncode != 0:
        errors = "".join(p.read_text() for p in tmp_path.glob("call_*_errors.log"))
        raise AssertionError(
            f"sipp exited {result.returncode}: not every call was answered\n"
            f"{result.stdout[-3000:]}\n{errors[-3000:]}\n{front.log.read_text()[-3000:]}")
    return port


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[Front, Node, Node]]:
    node_a, node_b = Node("a"), Node("b")
    listed = LIST.read_text()
    for sample, node in zip(SAMPLE_NODES, (node_a, node_b), strict=True):
        assert sample in listed, f"{LIST} lists {sample}"
        listed = listed.replace(sample, node.uri)
    list_file = tmp_path / "dispatcher.list"
    list_file.write_text(listed)
    front = start_front(tmp_path, list_file, f"PING_INTERVAL={PING_INTERVAL}",
                        f"FR_TIMER={FR_TIMER_MS}")
    try:
        yield front, node_a, node_b
    finally:
        stop_front(front)
        node_a.close()
        node_b.close()


# --- the tests -------------------------------------------------------------------------

def test_config_check_passes() -> None:
    result = subprocess.run([need("kamailio"), "-c", "-f", str(CFG)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config file ok" in result.stdout + result.stderr


def test_shipped_files_start(tmp_path: Path) -> None:
    """The shipped cfg and list as they are (no probes are sent to their sample
    addresses): kamailio starts, and both nodes of the list are in set 1."""
    front = start_front(tmp_path, LIST, "PING_INTERVAL=3600")
    try:
        assert set(front.states()) == set(SAMPLE_NODES)
    finally:
        stop_front(front)
    assert front.process.returncode == 0, front.log.read_text()[-3000:]


def test_calls_spread_fail_over_and_come_back(
        tmp_path: Path, two_nodes: tuple[Front, Node, Node]) -> None:
    front, a, b = two_nodes
    wait_until("both nodes probed", lambda: a.options_answered > 0 and b.options_answered > 0)

    # Round-robin: ten calls, five each; ACK and BYE reach the node that took the INVITE.
    caller = place_calls(tmp_path, front, 10)
    assert len(a.invites) + len(b.invites) == 10
    assert set(a.sources + b.sources) == {f"127.0.0.1:{caller}"}
    assert len(a.invites) >= 4 and len(b.invites) >= 4, (a.invites, b.invites)
    for node in (a, b):
        assert sorted(node.acks) == sorted(node.invites)
        assert sorted(node.byes) == sorted(node.invites)

    # Node b goes silent. Every call is still answered: those sent to b go on to a after
    # FR_TIMER, and b is taken out (by that timeout or by the unanswered OPTIONS).
    b.silent = True
    a_before, b_before = len(a.invites), len(b.invites)
    place_calls(tmp_path, front, 6)
    assert len(a.invites) == a_before + 6
    assert len(b.invites) == b_before
    wait_until("b taken out", lambda: front.is_out(b.uri), timeout=8)
    assert front.is_in(a.uri)

    # While b is out no call even tries it.
    ignored = len(b.ignored)
    place_calls(tmp_path, front, 6)
    assert len(a.invites) == a_before + 12
    assert len(b.ignored) == ignored

    # b answers the probes again: it is back in the rotation and takes calls.
    b.silent = False
    wait_until("b back in", lambda: front.is_in(b.uri), timeout=8)
    place_calls(tmp_path, front, 6)
    assert len(b.invites) >= b_before + 2, (len(a.invites), len(b.invites))
    log = front.log.read_text()
    assert f"xvbd node {b.uri} down" in log
    assert f"xvbd node {b.uri} up" in log

    # Node a dies while no call is up: the unanswered OPTIONS alone take it out, and the
    # next calls all go to b without trying a.
    a.silent = True
    wait_until("a taken out by the probes", lambda: front.is_out(a.uri), timeout=8)
    downs = [line for line in front.log.read_text().splitlines()
             if f"xvbd node {a.uri} down" in line]
    assert downs and not any("INVITE" in line for line in downs), downs
    b_before = len(b.invites)
    place_calls(tmp_path, front, 4)
    assert len(b.invites) == b_before + 4
    assert a.ignored == []


def test_scanners_and_strangers(tmp_path: Path, two_nodes: tuple[Front, Node, Node]) -> None:
    front, a, b = two_nodes
    wait_until("both nodes probed", lambda: a.options_answered > 0 and b.options_answered > 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.1", 0))
        caller.settimeout(1.5)
        here = caller.getsockname()[1]

        def ask(method: str, user_agent: str, ruri: str, extra: str = "") -> str | None:
            request = (
                f"{method} {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bK-{method}-{time.time_ns()}\r\n"
                f"From: <sip:100@127.0.0.1:{here}>;tag=1\r\n"
                f"To: <{ruri}>\r\nCall-ID: {method}-{time.time_ns()}@test\r\n"
                f"CSeq: 1 {method}\r\nContact: <sip:100@127.0.0.1:{here}>\r\n"
                f"Max-Forwards: 70\r\nUser-Agent: {user_agent}\r\n{extra}"
                "Content-Length: 0\r\n\r\n")
            caller.sendto(request.encode(), ("127.0.0.1", front.port))
            try:
                return caller.recv(65535).decode().split("\r\n", 1)[0]
            except TimeoutError:
                return None

        proxy = f"sip:127.0.0.1:{front.port}"
        # A scanner learns nothing, and no node sees it.
        assert ask("INVITE", "friendly-scanner", f"sip:100@127.0.0.1:{front.port}") is None
        assert ask("OPTIONS", "sipvicious", proxy) is None
        assert a.invites == [] and b.invites == []
        # Keepalives to the proxy are answered by it; it takes no registrations.
        assert ask("OPTIONS", "some-pbx", proxy) == "SIP/2.0 200 OK"
        assert ask("REGISTER", "some-phone", proxy) == "SIP/2.0 405 Method Not Allowed"
        # A caller cannot tell the nodes where it calls from: the proxy says it.
        forged = "X-Xvbd-Source: 192.0.2.66:5060\r\n"
        answer = ask("INVITE", "some-pbx", f"sip:100@127.0.0.1:{front.port}", forged)
        assert answer and answer.startswith("SIP/2.0 100 "), answer
        wait_until("the INVITE at a node", lambda: len(a.invites) + len(b.invites) == 1)
        assert a.sources + b.sources == [f"127.0.0.1:{here}"]
