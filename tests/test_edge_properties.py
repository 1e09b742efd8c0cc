"""Any bytes at the edges (hypothesis): an AGI answer and an AMI message are read, refused
or waited for, never a traceback, and xvbd writes one AGI line per command whatever
Asterisk answered.  (The FastAGI environment's own properties are in
``test_agi_environment.py``; whole calls and the webs' bodies in ``test_hostile_input.py``.)"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.peers.agi import env_bytes, environment
from tests.support.logs import Tracebacks
from tests.test_agi_environment import Factory
from xvbd.agi.protocol import AGIError, FastAGIProtocol, Reply
from xvbd.ami.client import (
    AMIConnectionLost,
    AMIError,
    AMIProtocol,
    Credentials,
    _originate_result,
)
from xvbd.ami.protocol import AMIProtocolError, Message, MessageParser

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ AGI answers

ANSWER_PIECES = st.one_of(
    st.binary(max_size=16),
    st.sampled_from([b"200 result=", b"200 result=1", b"200 result=-1", b"510 ", b"511 ",
                     b"520-", b"520 End of proper usage.\n", b"Usage: x\n", b"HANGUP\n",
                     b" endpos=", b" (timeout)", b" (dtmf)", b"(", b")", b"=", b"\r",
                     b"\n", b"\n\n", b"\xff", b"\xc3", b"agi_arg_1: x\n", b"9" * 30]))
ANSWERS = st.lists(ANSWER_PIECES, max_size=30).map(b"".join)
CHUNKS = st.lists(st.integers(1, 64), min_size=1, max_size=20)


def feed(proto: Any, transport: StringTransport, data: bytes, chunks: list[int]) -> None:
    """``data`` into ``proto`` in pieces of the sizes ``chunks`` gives (the rest at once),
    until it is all read or the protocol closes the connection."""
    at, sizes = 0, iter(chunks)
    while at < len(data) and not transport.disconnecting:
        step = next(sizes, len(data))
        proto.dataReceived(data[at:at + step])
        at += step


def a_started_session() -> tuple[FastAGIProtocol, StringTransport]:
    proto = FastAGIProtocol()
    proto.factory = Factory()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(env_bytes(environment("ivr", args=("613",))))
    assert proto.factory.started == [proto]
    return proto, transport


@SETTINGS
@given(answer=ANSWERS, chunks=CHUNKS)
def test_any_answer_to_a_command(answer: bytes, chunks: list[int]) -> None:
    """Whatever Asterisk answers, split anyhow: the command is answered, fails with an AGI
    error, or waits (the answer is not a whole line yet, or a 520 usage block is still
    open); a line xvbd cannot read closes the session.  Only the one command line is ever
    written, and nothing escapes as a traceback."""
    proto, transport = a_started_session()
    transport.clear()
    results: list[object] = []
    proto.send_command('STREAM FILE demo-instruct "0123456789*#"').as_deferred().addCallbacks(
        results.append, results.append)
    with Tracebacks() as seen:
        feed(proto, transport, answer, chunks)
    assert seen == [], seen
    assert transport.value() == b'STREAM FILE demo-instruct "0123456789*#"\n'
    for result in results:
        assert isinstance(result, Reply) or (
            isinstance(result, Failure) and result.check(AGIError)), result
    if not results:
        assert transport.disconnecting or _unfinished(answer), answer


def _unfinished(answer: bytes) -> bool:
    """An answer that leaves the command waiting: no whole line past blank lines and
    HANGUPs, or a 520 usage block without its end."""
    lines = answer.split(b"\n")[:-1]
    meaningful = [line.rstrip(b"\r") for line in lines if line.rstrip(b"\r")
                  not in (b"", b"HANGUP")]
    return not meaningful or meaningful[0].startswith(b"520-")


# ------------------------------------------------------------------ AMI messages

AMI_PIECES = st.one_of(
    st.binary(max_size=16),
    st.sampled_from([b"\r\n", b"\r\n\r\n", b"\n", b": ", b":", b"Response: ", b"Success",
                     b"Error", b"Follows", b"Event: ", b"OriginateResponse", b"Shutdown",
                     b"ActionID: ", b"xvb-1", b"xvb-2", b"Reason: ", b"4", b"-1", b"x" * 40,
                     b"EventList: start", b"EventList: Complete", b"--END COMMAND--",
                     b"Output: ", b"\xff", b"\xc3", b"Asterisk Call Manager/11.0.0\r\n"]))
AMI_BYTES = st.lists(AMI_PIECES, max_size=60).map(b"".join)
AMI_LOSSES = (AMIConnectionLost, defer.TimeoutError)


@SETTINGS
@given(data=AMI_BYTES, chunks=CHUNKS)
def test_any_bytes_to_the_ami_parser(data: bytes, chunks: list[int]) -> None:
    """Read as messages or refused with AMIProtocolError; the same messages however the
    bytes are split."""
    def read(sizes: list[int]) -> list[Message] | str:
        parser, out, at, it = MessageParser(), [], 0, iter(sizes)
        try:
            while at < len(data):
                step = next(it, len(data))
                out.extend(parser.feed(data[at:at + step]))
                at += step
        except AMIProtocolError as exc:
            return f"refused: {exc}"
        return out

    whole, split = read([len(data)]), read(chunks)
    if isinstance(whole, str) or isinstance(split, str):
        assert isinstance(whole, str) and isinstance(split, str), (whole, split)
    else:
        assert [m.fields for m in whole] == [m.fields for m in split]


def a_logged_in_ami() -> tuple[AMIProtocol, StringTransport, Clock]:
    clock = Clock()
    proto = AMIProtocol(Credentials("xvb", "xvbsecret", "plain"), clock, keepalive=20,
                        reply_timeout=10, action_ids=iter(f"xvb-{n}" for n in range(1, 99)))
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.on_event = lambda message: None
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    for _ in range(3):  # the login, then the two event filters
        (action,) = MessageParser(expect_banner=False).feed(transport.value())
        transport.clear()
        proto.dataReceived(f"Response: Success\r\nActionID: {action.action_id}\r\n\r\n"
                           .encode())
    assert proto.ready.called
    return proto, transport, clock


@SETTINGS
@given(data=AMI_BYTES, chunks=CHUNKS)
def test_any_bytes_to_a_logged_in_ami_session(data: bytes, chunks: list[int]) -> None:
    """Two actions waiting, then anything from Asterisk: each action is answered, fails
    with an AMI error or the session's loss, or still waits (and times out on the clock);
    nothing escapes as a traceback."""
    proto, transport, clock = a_logged_in_ami()
    results: list[object] = []
    for _ in range(2):
        proto.send("Ping").addCallbacks(results.append, results.append)
    with Tracebacks() as seen:
        feed(proto, transport, data, chunks)
        if transport.disconnecting:
            proto.connectionLost(Failure(ConnectionError("closed by xvbd")))
        clock.advance(60)
    assert seen == [], seen
    assert len(results) == 2, results
    for result in results:
        assert isinstance(result, Message) or (
            isinstance(result, Failure) and result.check(AMIError, ConnectionError,
                                                         *AMI_LOSSES)), result


@SETTINGS
@given(fields=st.lists(st.tuples(st.sampled_from(["Response", "Reason", "Uniqueid",
                                                  "Channel", "ActionID", "Event"]),
                                 st.text(max_size=20)), max_size=8))
def test_any_originate_response(fields: list[tuple[str, str]]) -> None:
    """Whatever an OriginateResponse holds, the dialer gets one of its outcomes."""
    result = _originate_result(Message([("Event", "OriginateResponse"), *fields]))
    assert result.status in ("answered", "busy", "noanswer", "failed"), result
    assert result.status != "answered" or result.response.lower() == "success", result
