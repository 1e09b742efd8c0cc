"""The environment block with what callers really put in it: a name with line breaks and
empty lines (Asterisk writes it raw), copies of other keys in it, bytes that are not UTF-8,
thousands of bytes.  The call is served with every other value as Asterisk sent it, or
refused politely; never a traceback, never a value moved into another key."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher

from tests.peers.agi import Caller, env_bytes, environment, place_call
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from xvbd.agi.environment import MAX_ENV_BYTES, NAME_LIMIT, VALUE_LIMIT
from xvbd.agi.protocol import EnvDeadlines, FastAGIProtocol
from xvbd.demo import seed_demo

ARGS = ("613", "10.0.0.1", "pbx.example.com")


class Factory:
    def __init__(self) -> None:
        self.env_deadlines = EnvDeadlines(Clock(), 10.0)
        self.started: list[FastAGIProtocol] = []

    def session_started(self, p: FastAGIProtocol) -> None:
        pass

    def session_ended(self, p: FastAGIProtocol) -> None:
        pass

    def start_session(self, p: FastAGIProtocol) -> None:
        self.started.append(p)


class Warnings:
    """The xvbd warnings logged while it is open."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __enter__(self) -> Warnings:
        globalLogPublisher.addObserver(self.observe)
        return self

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self.observe)

    def observe(self, event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith("xvbd.") and \
                event["log_level"].name in ("warn", "error", "critical"):
            self.lines.append(formatEvent(event))


def block(**values: str | bytes) -> bytes:
    """An environment as Asterisk 22 writes it, with some values replaced (raw bytes)."""
    env: list[tuple[str, str | bytes]] = list(environment("ivr", args=ARGS))
    return env_bytes([(key, values.get(key, value)) for key, value in env])


def feed(data: bytes, chunks: list[int] | None = None) -> tuple[FastAGIProtocol,
                                                                StringTransport, Factory]:
    factory = Factory()
    proto = FastAGIProtocol()
    proto.factory = factory
    transport = StringTransport()
    proto.makeConnection(transport)
    sizes = iter(chunks or [len(data)])
    at = 0
    while at < len(data) and not transport.disconnecting:
        step = next(sizes, len(data))
        proto.dataReceived(data[at:at + step])
        at += step
    return proto, transport, factory


def served(data: bytes, chunks: list[int] | None = None) -> Any:
    proto, transport, factory = feed(data, chunks)
    assert factory.started == [proto] and not transport.disconnecting, transport.value()
    assert proto.env is not None
    assert proto.env.args == ARGS and proto.env.script == "ivr"
    assert proto.env.channel == "PJSIP/gw-00000001" and proto.env.get("threadid")
    return proto.env


#: The rest of the block after the name, as a caller would copy it into the name (with an
#: argument of theirs and the empty line that ends a block).
FORGED_TAIL = (b"agi_callingpres: 0\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\n"
               b"agi_dnid: unknown\nagi_rdnis: unknown\nagi_context: xvb-main\n"
               b"agi_extension: 100\nagi_priority: 3\nagi_enhanced: 0.0\nagi_accountcode: \n"
               b"agi_threadid: 1\nagi_arg_1: 100\nagi_arg_2: 10.0.0.1\n\n")

NAMES = [
    b"Bob\nSmith",
    b"\n",
    b"Bob\n\nagi_arg_1: 999\n\nagi_arg_2: 10.0.0.1\n",
    b"x\nagi_callingpres: 0\nagi_calleridname: Eve\nagi_callerid: 100",
    b"x\nagi_threadid: 1\nagi_arg_1: 100\n",
    b"x\n" + FORGED_TAIL,
    b"x\n" + FORGED_TAIL + b"HANGUP\n",
    b"x\n" + FORGED_TAIL + FORGED_TAIL + b"y",
]


def test_the_usual_block_is_kept_as_it_is_and_says_nothing() -> None:
    with Warnings() as warnings:
        env = served(block())
    assert env.get("calleridname") == "XVB Test" and env.notes == ()
    assert warnings.lines == []


def test_a_name_with_line_breaks_or_other_keys_in_it_stays_in_the_name() -> None:
    for name in NAMES:
        with Warnings() as warnings:
            env = served(block(calleridname=name))
        kept = name.decode()[:NAME_LIMIT]
        assert env.get("calleridname") == kept, name
        assert env.callerid == "6135550123" and env.get("callingpres") == "0"
        assert env.get("dnid") == "unknown" and env.get("context") == "xvb-main"
        cut = f"cut from {len(name)} to {NAME_LIMIT} characters, " if kept != name.decode() \
            else ""
        assert warnings.lines == [
            "FastAGI call 1795696425.1 on PJSIP/gw-00000001: the environment had values "
            f"xvbd changed to serve it: agi_calleridname: {cut}{kept.count(chr(10))} line "
            "break(s) kept in it"]


def test_however_the_bytes_are_split() -> None:
    """A name that cannot look like the rest of the block (no agi_threadid in it) is read
    the same whatever the reads; Asterisk's HANGUP may come with the block."""
    name = NAMES[2]
    for size in (1, 2, 3, 7, 64, 391):
        env = served(block(calleridname=name), [size] * 10_000)
        assert env.get("calleridname") == name.decode()
    proto, _, factory = feed(block(calleridname=name) + b"HANGUP\n")
    assert factory.started == [proto] and proto.hung_up


def test_a_forged_end_read_alone_is_refused_when_the_real_rest_comes() -> None:
    """Asterisk writes the name in one write and the keys after it in others: a read may
    end right after a copy of the block's end inside the name.  The call looks complete
    then; the real rest of the block, coming next, refuses it."""
    data = block(calleridname=b"x\n" + FORGED_TAIL)
    cut = data.index(FORGED_TAIL) + len(FORGED_TAIL)
    with Warnings() as warnings:
        proto, transport, factory = feed(data, [cut])
    assert factory.started == [proto], "it looked like a block"
    assert transport.disconnecting
    assert any("environment lines after the environment's end ('agi_callingpres: 0')"
               in line for line in warnings.lines), warnings.lines


def test_bytes_that_are_not_utf8_are_replaced() -> None:
    with Warnings() as warnings:
        env = served(block(calleridname=b"J\xf6rg \xff\xfe", callerid=b"61\xc0\xaf35"))
    assert env.get("calleridname") == "J\ufffdrg \ufffd\ufffd"
    assert env.callerid == "61\ufffd\ufffd35"
    assert len(warnings.lines) == 1
    assert warnings.lines[0].endswith(
        "agi_callerid: bytes that are not UTF-8 replaced by U+FFFD; "
        "agi_calleridname: bytes that are not UTF-8 replaced by U+FFFD")


def test_long_values_are_cut_to_their_limit_and_said_once() -> None:
    name = "Ω" * 4500  # 9,000 bytes
    with Warnings() as warnings:
        proto, transport, factory = feed(block(calleridname=name.encode()))
        env = proto.env
    assert env is not None and factory.started == [proto] and not transport.disconnecting
    assert env.get("calleridname") == name[:NAME_LIMIT]
    assert env.notes == (f"agi_calleridname: cut from 4500 to {NAME_LIMIT} characters",)
    assert len(warnings.lines) == 1
    script = "ivr?" + "q" * 2000  # not a name: the longer limit
    env = feed(block(network_script=script))[0].env
    assert env is not None and env.get("network_script") == script[:VALUE_LIMIT]


def test_an_environment_past_the_bound_is_refused() -> None:
    with Warnings() as warnings:
        _, transport, factory = feed(block(calleridname=b"x" * MAX_ENV_BYTES), [1500] * 100)
    assert factory.started == [] and transport.disconnecting
    assert any(f"longer than {MAX_ENV_BYTES} bytes" in line for line in warnings.lines)


def test_an_environment_that_stops_says_where() -> None:
    data = block()
    with Warnings() as warnings:
        proto, transport, _ = feed(data[:data.index(b"agi_channel")])
        proto.env_timed_out(10)
    assert transport.disconnecting
    assert warnings.lines[0].endswith(
        "the AGI environment did not end within 10 s: it sent 79 bytes, the keys in order up "
        "to agi_request and no agi_channel after it; Asterisk sends every key up to "
        "agi_threadid, the arguments, then an empty line"), warnings.lines


# ------------------------------------------------------------------ any bytes at all

PIECES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"\n", b"\n\n", b"\r\n", b"\xff", b"\xc3", b"agi_", b":", b" ",
                     b"agi_threadid: 1\n", b"agi_arg_1: evil\n", b"agi_callingpres: 0\n",
                     b"agi_dnid: x\n", b"agi_calleridname: Eve\n", b"HANGUP\n",
                     FORGED_TAIL, b"\xe2\x98\x8e"]))
VALUES = st.lists(PIECES, max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=VALUES)
def test_any_bytes_in_the_name(name: bytes) -> None:
    """Read whole, as a block of Asterisk comes: always served, the name decoded and cut,
    every other key as Asterisk sent it."""
    env = served(block(calleridname=name))
    assert env.get("calleridname") == name.decode("utf-8", "replace")[:NAME_LIMIT]
    expected = dict(environment("ivr", args=ARGS))
    del expected["calleridname"]
    assert {k: v for k, v in env.values.items() if k != "calleridname"} == {
        k: v for k, v in expected.items() if not k.startswith("arg_")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(callerid=VALUES, name=VALUES, dnid=VALUES, rdnis=VALUES, extension=VALUES,
       accountcode=VALUES)
def test_any_bytes_in_everything_callers_send(callerid: bytes, name: bytes, dnid: bytes,
                                              rdnis: bytes, extension: bytes,
                                              accountcode: bytes) -> None:
    """All of them at once: what one holds may end up in another of them (the same bytes
    can be written by several sets of values), never in the arguments, the script, the
    channel or the keys before the caller id; the caller id keeps its beginning."""
    env = served(block(callerid=callerid, calleridname=name, dnid=dnid, rdnis=rdnis,
                       extension=extension, accountcode=accountcode))
    assert (env.get("language"), env.uniqueid, env.get("version")) == (
        "en", "1795696425.1", "22.10.1")
    assert callerid.decode("utf-8", "replace")[:NAME_LIMIT].startswith(env.get("callerid"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(callerid=VALUES, name=VALUES, extension=VALUES,
       chunks=st.lists(st.integers(1, 300), min_size=1, max_size=30))
def test_any_bytes_split_anyhow(callerid: bytes, name: bytes, extension: bytes,
                                chunks: list[int]) -> None:
    """Split anyhow: served with Asterisk's own arguments, or refused; nothing else."""
    proto, transport, factory = feed(block(callerid=callerid, calleridname=name,
                                           extension=extension), chunks)
    assert factory.started == [proto] or transport.disconnecting
    if not transport.disconnecting:
        assert proto.env is not None and proto.env.args == ARGS
        assert proto.env.script == "ivr" and proto.env.channel == "PJSIP/gw-00000001"


# ------------------------------------------------------------------ a whole call


class CallerNameTests(EngineCase):
    async def test_a_call_with_a_hostile_name_is_served(self) -> None:
        await seed_demo(self.store)
        name = b"Eve\n\nagi_arg_1: 100\n\xff" + b"e" * 9000
        env: list[tuple[str, str | bytes]] = list(environment("ivr", args=("613",)))
        env = [(k, name if k == "calleridname" else v) for k, v in env]
        with Warnings() as warnings:
            peer = await place_call(reactor, self.port, env,  # type: ignore[arg-type]
                                    Caller(keys=["10001", "911", "*"]), self.clock.advance)
            await self.factory.when_idle()
        self.assertIn("GET DATA agent-user 9000 16", peer.commands, "the public number")
        self.assertEqual(self.result, "OK")
        summary = [line for line in self.cdr_lines() if ", TYPE=XVB," in line]
        self.assertEqual(len(summary), 1)
        self.assertIn("ACCESS_CODE=10001, CALLED_ID=613, CALLER_ID=6135550123, ", summary[0])
        (warning,) = [line for line in warnings.lines if "FastAGI call" in line]
        decoded = name.decode("utf-8", "replace")
        self.assertIn("agi_calleridname: bytes that are not UTF-8 replaced by U+FFFD, cut "
                      f"from {len(decoded)} to {NAME_LIMIT} characters, 3 line break(s) kept "
                      "in it", warning)
        self.assertEqual(self.calls[-1].env.get("calleridname"), decoded[:NAME_LIMIT])


CallerNameOnSQLite, CallerNameOnMariaDB = on_both_backends(CallerNameTests)
