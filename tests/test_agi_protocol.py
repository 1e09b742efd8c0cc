"""FastAGI framing, replayed against the real Asterisk 22 sessions byte for byte, and the
protocol's answers to bad input, hang-ups and lost connections."""

from __future__ import annotations

import random

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.peers.agi import env_bytes, environment, split_args
from tests.support.transcripts import load
from xvbd.agi.channel import quote, token, variable
from xvbd.agi.protocol import (
    BadInput,
    CommandError,
    EnvDeadlines,
    FastAGIProtocol,
    Hangup,
    Reply,
    parse_agi_env,
    parse_reply,
)

ENV = env_bytes(environment("ivr", args=("100", "10.0.0.1")))


class Factory:
    def __init__(self) -> None:
        self.clock = Clock()
        self.env_deadlines = EnvDeadlines(self.clock, 10.0)
        self.started: list[FastAGIProtocol] = []
        self.ended: list[FastAGIProtocol] = []
        self.live: set[FastAGIProtocol] = set()

    def session_started(self, p: FastAGIProtocol) -> None:
        self.live.add(p)

    def session_ended(self, p: FastAGIProtocol) -> None:
        self.live.discard(p)
        self.ended.append(p)

    def start_session(self, p: FastAGIProtocol) -> None:
        self.started.append(p)


def connect() -> tuple[FastAGIProtocol, StringTransport, Factory]:
    factory = Factory()
    proto = FastAGIProtocol()
    proto.factory = factory
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, factory


def outcome(pending: object) -> str:
    d = pending.as_deferred() if hasattr(pending, "as_deferred") else pending
    box: list[object] = []
    d.addBoth(box.append)
    if not box:
        return "pending"
    result = box[0]
    if isinstance(result, Failure):
        if result.check(Hangup):
            return "Hangup"
        if result.check(CommandError):
            return f"CommandError {result.value.code}"
        return repr(result.value)
    assert isinstance(result, Reply)
    text = f"{result.result}"
    if result.data is not None:
        text += f" ({result.data})"
    if result.endpos is not None:
        text += f" endpos={result.endpos}"
    return text


def replay(name: str) -> tuple[FastAGIProtocol, Factory, list[tuple[str, Deferred[Reply]]]]:
    """Feed a transcript's Asterisk side to the protocol; send its commands exactly when the
    recording server did, checking every byte we write."""
    proto, transport, factory = connect()
    sent: list[tuple[str, Deferred[Reply]]] = []
    for chunk in load(name):
        if chunk.direction == "RX":
            proto.dataReceived(chunk.data)
        else:
            command = chunk.data.decode().rstrip("\n")
            sent.append((command, proto.send_command(command, dead_ok=True)))
            assert transport.value() == chunk.data
            transport.clear()
    return proto, factory, sent


def test_fagi_01_main_session() -> None:
    proto, factory, sent = replay("fagi-01-main.txt")
    assert factory.started == [proto]
    env = proto.env
    assert env is not None
    assert (env.script, env.channel, env.callerid, env.get("extension")) == (
        "main", "Local/2500@xvb-test-00000000;2", "6135550123", "2500")
    assert env.get("accountcode") == "" and env.args == ()
    assert [(c, outcome(d)) for c, d in sent] == [
        ("ANSWER", "0"),
        ('STREAM FILE demo-congrats ""', "0 endpos=242214"),
        ("GET DATA beep 3000 4", "1234"),
        ('SAY DIGITS 123 ""', "0"),
        ('RECORD FILE /var/spool/asterisk/tmp/rec wav "#" 3000 0 s=2', "35 (dtmf) endpos=1782"),
        ('SET VARIABLE XVB_AC "613"', "1"),
        ("GET FULL VARIABLE ${CALLERID(num)}", "1 (6135550123)"),
        ("EXEC Wait 1", "0"),
        ("FOO BAR", "CommandError 510"),
        ("HANGUP", "1"),
        ("GET VARIABLE XVB_AC", "1 (613)"),
        ('STREAM FILE beep ""', "Hangup"),
    ]
    assert proto.hung_up


def test_fagi_02_no_caller_id_and_record_timeout() -> None:
    proto, _, sent = replay("fagi-02-main.txt")
    results = dict((c, outcome(d)) for c, d in sent)
    assert results["GET FULL VARIABLE ${CALLERID(num)}"] == "1 ()"
    assert results['RECORD FILE /var/spool/asterisk/tmp/rec wav "#" 3000 0 s=2'].startswith(
        "0 (timeout) endpos=")
    assert proto.env is not None and proto.env.get("calleridname") == "unknown"


def test_fagi_03_hangup_while_the_next_command_is_on_the_wire() -> None:
    proto, _, sent = replay("fagi-03-main.txt")
    assert proto.env is not None and proto.env.callerid == ""
    got = [(c, outcome(d)) for c, d in sent]
    assert got[:4] == [
        ("ANSWER", "0"),
        ('STREAM FILE demo-congrats ""', "-1 endpos=13600"),
        ("GET DATA beep 3000 4", "Hangup"),  # failed at the HANGUP line, not at its 511
        ('SAY DIGITS 123 ""', "Hangup"),
    ]
    assert ('SET VARIABLE XVB_AC "613"', "1") in got, "variables still work on a dead channel"
    assert ("GET VARIABLE XVB_AC", "1 (613)") in got
    assert got[-1] == ('STREAM FILE beep ""', "Hangup")


@pytest.mark.parametrize("name", ["fagi-04-hangup.txt", "fagi-06-hangup.txt"])
def test_dead_mode_answers(name: str) -> None:
    proto, factory, sent = replay(name)
    got = dict((c, outcome(d)) for c, d in sent)
    assert got['STREAM FILE beep ""'] == "Hangup"
    assert got["GET VARIABLE CHANNEL"].startswith("1 (Local/")
    assert got['SET VARIABLE XVB_DEAD "1"'] == "1"
    assert got['VERBOSE "xvb dead-mode probe" 1'] == "1"
    assert got["NOOP"] == "0"
    assert got["GET DATA beep 1000 1"] == "Hangup"
    assert got["FOO BAR"] == "CommandError 510"
    assert got["HANGUP"] == "Hangup"
    assert proto.hung_up
    assert factory.live == {proto}, "Asterisk keeps a dead session open; xvbd closes it"


def test_fagi_04_env_in_many_chunks() -> None:
    proto, _, _ = replay("fagi-04-hangup.txt")
    assert proto.env is not None and proto.env.get("threadid") == "140485301135040"


def test_fagi_05_exit_on_hangup() -> None:
    proto, transport, factory = connect()
    sent = []
    for chunk in load("fagi-05-hangup.txt"):
        if chunk.direction == "RX":
            proto.dataReceived(chunk.data)
        else:
            sent.append(proto.send_command(chunk.data.decode().rstrip("\n")))
    assert [outcome(d) for d in sent] == ["0", "-1 endpos=20000"]
    assert proto.hung_up
    later = proto.send_command('STREAM FILE beep ""')
    assert outcome(later) == "Hangup"
    assert transport.value().endswith(b'STREAM FILE demo-congrats ""\n'), \
        "nothing goes on the wire for a channel command after the hang-up"
    proto.connectionLost(Failure(ConnectionError("closed by Asterisk")))
    assert factory.ended == [proto]


def test_fagi_07_args_query_usage_and_missing_things() -> None:
    proto, _, sent = replay("fagi-07-misc.txt")
    env = proto.env
    assert env is not None
    assert env.script == "misc" and env.query == {"foo": "1", "bar": "two"}
    assert env.args == ("first", "second arg", "")
    usage_error = next(d for c, d in sent if c == "SET VARIABLE")
    failure: list[Failure] = []
    usage_error.as_deferred().addErrback(lambda f: (failure.append(f), f)[1])
    assert "Sets a variable to the current channel." in failure[0].value.text
    assert failure[0].value.text.endswith("520 End of proper usage.")
    got = dict((c, outcome(d)) for c, d in sent)
    assert got["SET VARIABLE"] == "CommandError 520"
    assert got["GET VARIABLE NOSUCHVAR"] == "0"
    assert got["GET FULL VARIABLE ${XVB_NOPE}"] == "1 ()"
    assert got["CHANNEL STATUS"] == "6"
    assert got["DATABASE GET xvb k1"] == "1 (v1)"
    assert got['STREAM FILE nosuchfile ""'] == "-1 endpos=0"
    assert got["EXEC NoSuchApp x"] == "-2"
    assert got["GET VARIABLE XVB_SP"] == "1 (a b c)"
    assert got["answer"] == "0"


def test_hangup_between_a_reply_and_the_next_command() -> None:
    proto, _transport, _ = connect()
    proto.dataReceived(ENV)
    watched: list[str] = []
    proto.on_hangup(lambda: watched.append("gone"))
    first = proto.send_command("ANSWER")
    proto.dataReceived(b"200 result=0\nHANGUP\n")
    assert outcome(first) == "0" and watched == ["gone"]
    assert outcome(proto.send_command("WAIT FOR DIGIT 100")) == "Hangup"
    variable_read = proto.send_command("GET VARIABLE X", dead_ok=True)
    proto.dataReceived(b"200 result=0\n")
    assert outcome(variable_read) == "0"


def test_hangup_lines_said_twice_count_once() -> None:
    """Asterisk may write ``HANGUP`` more than once (the channel goes, then the AGI ends);
    the session is hung up once, the answers still arrive, and nothing is refused."""
    proto, transport, factory = connect()
    proto.dataReceived(ENV)
    watched: list[str] = []
    proto.on_hangup(lambda: watched.append("gone"))
    playing = proto.send_command('STREAM FILE demo-instruct "0123456789*#"')
    proto.dataReceived(b"200 result=-1 endpos=1200\nHANGUP\nHANGUP\n")
    assert outcome(playing) == "-1 endpos=1200"
    assert watched == ["gone"], "one hang-up, however many lines say it"
    variable_set = proto.send_command('SET VARIABLE XVB_RESULT "ABANDONED"', dead_ok=True)
    proto.dataReceived(b"HANGUP\n200 result=1\n")
    assert outcome(variable_set) == "1"
    assert not transport.disconnecting, "a repeated HANGUP is not bad input"
    assert factory.ended == []


def test_lost_connection_fails_every_pending_command_once() -> None:
    proto, _, factory = connect()
    proto.dataReceived(ENV)
    pending = proto.send_command('STREAM FILE x ""')
    proto.connectionLost(Failure(ConnectionError("gone")))
    assert outcome(pending) == "Hangup"
    assert outcome(proto.send_command("NOOP", dead_ok=True)) == "Hangup"
    assert factory.ended == [proto]


def test_a_command_with_a_line_break_never_reaches_the_wire() -> None:
    proto, transport, _ = connect()
    proto.dataReceived(ENV)
    d = proto.send_command('SET VARIABLE X "1"\nHANGUP')
    failures: list[Failure] = []
    d.as_deferred().addErrback(failures.append)
    assert failures and failures[0].check(ValueError)
    assert transport.value() == b""


@pytest.mark.parametrize(("data", "why"), [
    (b"GET / HTTP/1.1\r\n", "not an AGI environment line"),
    (b"agi_network: yes\nGET / HTTP/1.1\n", "not an AGI environment line"),
    (b"agi_network: yes\n\n", "ends before agi_threadid"),
    (b"\n", "not an AGI environment line"),
    (b"agi_network: yes\nagi_network_script: " + b"a" * 70000, "longer than 65536 bytes"),
])
def test_bad_input_closes_the_session(data: bytes, why: str) -> None:
    from twisted.logger import globalLogPublisher

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        proto, transport, factory = connect()
        proto.dataReceived(data)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert transport.disconnecting
    assert factory.started == []
    assert any(why in str(e.get("why", "")) for e in events), events


def test_an_environment_that_never_ends_is_cut_off() -> None:
    proto, transport, factory = connect()
    proto.dataReceived(b"agi_network: yes\nagi_request: agi://x/ivr\n")
    factory.clock.pump([1.0] * 9 + [0.5])
    assert not transport.disconnecting
    factory.clock.advance(0.6)
    assert transport.disconnecting and factory.started == []
    proto.connectionLost(Failure(ConnectionError("closed")))
    assert factory.clock.getDelayedCalls() == [], "no timer is left behind"


def test_a_timely_environment_leaves_no_timer() -> None:
    proto, _, factory = connect()
    proto.dataReceived(ENV)
    assert factory.started == [proto]
    assert factory.clock.getDelayedCalls() == []


def test_an_answer_nobody_waits_for_is_ignored_not_fatal() -> None:
    proto, transport, _ = connect()
    proto.dataReceived(ENV)
    proto.dataReceived(b"200 result=0\n")
    assert not transport.disconnecting


def test_parse_reply_and_env() -> None:
    assert parse_reply("200 result=12*3") == Reply("12*3")
    assert parse_reply("200 result= (timeout)").data == "timeout"
    assert parse_reply("200 result= (timeout)").value == 0
    assert parse_reply("200 result=-1 (hangup) endpos=880").endpos == 880
    with pytest.raises(BadInput):
        parse_reply("200 ok")
    env = parse_agi_env(env_bytes(environment("ivr", args=("a", "b"), callerid=""))[:-1])
    assert env.args == ("a", "b") and env.callerid == "" and env.notes == ()
    with pytest.raises(BadInput):
        parse_agi_env(b"agi_arg_2: b\nagi_arg_1: a\nagi_callerid: unknown\n")


NASTY = ['plain', 'two words', 'quote " inside', 'back\\slash', 'trailing \\', '"',
         'line\nbreak', 'cr\rlf\n', 'HANGUP\nSTREAM FILE x ""', 'ünïcödé ☎', '', 'tab\tx',
         '\\"', 'a,b;c=d']


@pytest.mark.parametrize("text", NASTY)
def test_quote_survives_asterisks_argument_parser(text: str) -> None:
    line = f"SET VARIABLE X {quote(text)}"
    assert "\n" not in line and "\r" not in line
    words = split_args(line)
    expected = "".join(" " if ord(c) < 32 else c for c in text)
    assert words == ["SET", "VARIABLE", "X", expected]


def test_quote_random_strings() -> None:
    rng = random.Random(7)
    alphabet = 'ab "\\\n\r\t,=()*#'
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        words = split_args(f"VERBOSE {quote(text)} 1")
        assert len(words) == 3 and words[1] == "".join(
            " " if ord(c) < 32 else c for c in text)


def test_words_and_variable_names_are_checked() -> None:
    assert token("demo-congrats") == "demo-congrats"
    assert variable("CHANNEL(language)") == "CHANNEL(language)"
    assert variable("__XVB_AC") == "__XVB_AC"
    for bad in ("two words", 'x"y', "a\nb", ""):
        with pytest.raises(ValueError):
            token(bad)
    with pytest.raises(ValueError):
        variable("X Y")
