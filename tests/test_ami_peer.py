"""The AMI test peer answers like the recorded Asterisk 22: the transcripts' TX bytes are
replayed at it from a raw client and what comes back is compared with their RX bytes.  Then
the behaviour the transcripts do not show in full: MD5 login, event masks, synchronous
Originate, Command, Hangup, how output is cut into writes, a crash and a restart."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.peers.ami import EventFilters, FakeAsterisk, OriginateRequest, Outcome, serialize
from tests.support.transcripts import load

AMI01 = "ami-01-login-ping-originate-events.txt"
AMI02 = "ami-02-failed-login.txt"
AMI03 = "ami-03-originate-failure-sync-unknown-action.txt"
T1 = 1795696425.478305  # ami-01's Ping Timestamp; Asterisk had been up 13 s then
T3 = 1795696551.25  # during ami-03
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PEER_EVENTS = (b"FullyBooted", b"SuccessfulAuth", b"Newchannel", b"Hangup", b"OriginateResponse")


def tx(name: str) -> list[bytes]:
    return [chunk.data for chunk in load(name) if chunk.direction == "TX"]


def rx(name: str) -> list[bytes]:
    return [chunk.data for chunk in load(name) if chunk.direction == "RX"]


def messages_of(data: bytes) -> list[bytes]:
    """The complete messages in ``data``."""
    return [message + b"\r\n\r\n" for message in data.split(b"\r\n\r\n")[:-1]]


def split_messages(stream: bytes) -> list[bytes]:
    """The complete messages of a session's output, after the banner line."""
    return messages_of(stream.partition(b"\r\n")[2])


def rx_message(name: str, event: bytes) -> bytes:
    """The first message of the recording that starts with ``event``."""
    return next(m for m in split_messages(b"".join(rx(name))) if m.startswith(event))


def peer_kind(message: bytes) -> bool:
    """Responses, and the events the peer makes (Asterisk sends many more)."""
    return message.startswith(b"Response: ") or any(
        message.startswith(b"Event: " + name + b"\r\n") for name in PEER_EVENTS)


def normalize(message: bytes) -> bytes:
    """Blank what cannot match: the session's address in memory, TCP ports, and how far a
    channel had gone in the dialplan when it hung up."""
    message = re.sub(rb"(SessionID: )0x[0-9a-f]+", rb"\1*", message)
    message = re.sub(rb"(Address: IPV4/TCP/127\.0\.0\.1/)\d+", rb"\1*", message)
    if message.startswith(b"Event: Hangup\r\n"):
        message = re.sub(rb"(Priority: )\d+", rb"\1*", message)
    return message


def action(name: str, *headers: tuple[str, str]) -> bytes:
    lines = [f"Action: {name}", *(f"{key}: {value}" for key, value in headers)]
    return "".join(line + "\r\n" for line in lines).encode() + b"\r\n"


class Wire(Protocol):
    """A raw AMI client: writes bytes as given, keeps every chunk it receives."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.lost = False
        self._waiters: list[tuple[Callable[[], bool], bool, Deferred[None]]] = []

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def messages(self) -> list[bytes]:
        return split_messages(self.data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        self._check()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        self._check()

    def _check(self) -> None:
        for item in list(self._waiters):
            predicate, allow_loss, d = item
            if predicate():
                self._waiters.remove(item)
                d.callback(None)
            elif self.lost and not allow_loss:
                self._waiters.remove(item)
                d.errback(AssertionError(f"connection lost; received {self.data!r}"))

    def until(self, predicate: Callable[[], bool], allow_loss: bool = False) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiters.append((predicate, allow_loss, d))
        self._check()
        return d

    async def wait_messages(self, count: int) -> list[bytes]:
        await self.until(lambda: len(self.messages()) >= count)
        return self.messages()

    async def wait_closed(self) -> None:
        await self.until(lambda: self.lost, allow_loss=True)

    async def close(self) -> None:
        if not self.lost and self.transport is not None:
            self.transport.loseConnection()
        await self.wait_closed()


class AMIPeerCase(TestCase):
    timeout = 10

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T1 - 13)

    async def serve(self, **kwargs: Any) -> FakeAsterisk:
        """A peer on a free port, booted 13 s before T1 (now), as in ami-01."""
        kwargs.setdefault("clock", self.clock)
        fake = FakeAsterisk(reactor, **kwargs)
        self.clock.advance(13)
        await fake.start()
        self.addCleanup(fake.stop)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        return fake

    async def connect(self, fake: FakeAsterisk) -> Wire:
        wire = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", fake.port), Wire())
        self.addCleanup(wire.close)
        return wire

    async def login(self, fake: FakeAsterisk, events: str = "off", expect: int = 1) -> Wire:
        wire = await self.connect(fake)
        wire.send(action("Login", ("Username", "xvb"), ("Secret", "xvbsecret"),
                         ("Events", events), ("ActionID", "login")))
        messages = await wire.wait_messages(expect)
        self.assertEqual(messages[0], b"Response: Success\r\nActionID: login\r\n"
                                      b"Message: Authentication accepted\r\n\r\n")
        return wire

    async def replay_ami01(self, fake: FakeAsterisk, wire: Wire) -> list[bytes]:
        """ami-01's actions; the call is hung up (by the far end) before the Logoff."""
        login, ping, originate, logoff = tx(AMI01)
        wire.send(login)
        await wire.wait_messages(3)
        wire.send(ping)
        await wire.wait_messages(4)
        wire.send(originate)
        await wire.wait_messages(8)
        fake.hangup_call("1795696425.0")
        await wire.wait_messages(10)
        wire.send(logoff)
        await wire.wait_closed()
        return wire.messages()


class TranscriptTests(AMIPeerCase):
    async def test_the_banner_is_one_line_with_no_blank_after_it(self) -> None:
        fake = await self.serve()
        wire = await self.connect(fake)
        await wire.until(lambda: len(wire.data) >= len(BANNER))
        self.assertEqual(wire.data, rx(AMI01)[0])
        wire.send(b"Action: Ping\r\nActionID: p\r\n\r\n")
        await wire.wait_messages(1)
        self.assertEqual(wire.data, BANNER + b"Response: Error\r\nActionID: p\r\n"
                                             b"Message: Permission denied\r\n\r\n")

    async def test_ami01_login_ping_originate_hangup_logoff(self) -> None:
        fake = await self.serve()
        wire = await self.connect(fake)
        messages = await self.replay_ami01(fake, wire)
        chunks = rx(AMI01)
        self.assertTrue(wire.data.startswith(chunks[0] + chunks[1]),
                        "banner, then login reply and FullyBooted byte for byte")
        self.assertIn(chunks[3] + chunks[4], wire.data, "the Ping reply")
        self.assertIn(chunks[5], wire.data, "Originate successfully queued")
        self.assertIn(rx_message(AMI01, b"Event: OriginateResponse"), wire.data)
        expected = [m for m in split_messages(b"".join(chunks)) if peer_kind(m)]
        self.assertEqual([normalize(m) for m in messages], [normalize(m) for m in expected])
        self.assertEqual([m.split(b"\r\n", 1)[0] for m in messages], [
            b"Response: Success", b"Event: FullyBooted", b"Event: SuccessfulAuth",
            b"Response: Success", b"Response: Success", b"Event: Newchannel",
            b"Event: Newchannel", b"Event: OriginateResponse", b"Event: Hangup",
            b"Event: Hangup", b"Response: Goodbye"])
        self.assertTrue(fake.sessions[0].closed_by_asterisk, "Asterisk closed after Goodbye")
        self.assertEqual(fake.calls, {})

    async def test_ami02_a_wrong_secret_is_answered_after_a_second_then_closed(self) -> None:
        fake = await self.serve()
        wire = await self.connect(fake)
        [login] = tx(AMI02)
        wire.send(login)
        await fake.wait_for(lambda f: len(f.actions) == 1)
        self.clock.advance(0.5)
        self.assertEqual(fake.sessions[0].writes, [BANNER], "nothing yet")
        self.clock.advance(0.5)
        await wire.wait_closed()
        self.assertEqual(wire.data, b"".join(rx(AMI02)))
        # A Ping right behind the bad Login is never answered: the session is over.
        wire = await self.connect(fake)
        wire.send(login + b"Action: Ping\r\nActionID: p\r\n\r\n")
        await fake.wait_for(lambda f: len(f.actions) == 3)
        self.clock.advance(1)
        await wire.wait_closed()
        self.assertEqual(wire.data, b"".join(rx(AMI02)))

    async def test_ami03_events_off_failed_and_sync_originate_unknown_action(self) -> None:
        def decide(request: OriginateRequest) -> Outcome:
            return Outcome(reason=0 if "9999" in request.channel else 4)

        fake = await self.serve(on_originate=decide)
        self.clock.advance(T3 - T1)
        wire = await self.connect(fake)
        login, events, bad, sync, bogus, logoff = tx(AMI03)
        for data, count in ((login, 1), (events, 2), (bad, 8), (sync, 11), (bogus, 12)):
            wire.send(data)
            await wire.wait_messages(count)
        wire.send(logoff)
        await wire.wait_closed()
        chunks = rx(AMI03)
        for exact in (chunks[1], chunks[2], chunks[3], chunks[7], chunks[-1]):
            self.assertIn(exact, wire.data)
        self.assertIn(chunks[4][chunks[4].index(b"Event: OriginateResponse"):], wire.data)
        # The recording's Local channels were Asterisk's 7th and 8th; here they are the first.
        recorded = b"".join(chunks)
        for old, new in ((b"-00000006;", b"-00000000;"), (b"-00000007;", b"-00000001;"),
                         (b"551.12\r\n", b"551.0\r\n"), (b"551.13\r\n", b"551.1\r\n"),
                         (b"551.14\r\n", b"551.2\r\n"), (b"551.15\r\n", b"551.3\r\n")):
            recorded = recorded.replace(old, new)
        # There the synchronous call ended by itself (Wait(1)); here calls last until hung up.
        expected = [m for m in split_messages(recorded) if peer_kind(m)
                    and not (m.startswith(b"Event: Hangup\r\n") and b"answer@sink" in m)]
        self.assertEqual([normalize(m) for m in wire.messages()],
                         [normalize(m) for m in expected])
        self.assertEqual([c.channels for c in fake.calls.values()],
                         [["Local/answer@sink-00000001;1", "Local/answer@sink-00000001;2"]])
        fake.hangup_call("1795696551.2")


class LoginTests(AMIPeerCase):
    async def test_md5_challenge(self) -> None:
        fake = await self.serve()
        wire = await self.connect(fake)
        wire.send(action("Challenge", ("AuthType", "MD5"), ("ActionID", "c")))
        [reply] = await wire.wait_messages(1)
        match = re.fullmatch(rb"Response: Success\r\nActionID: c\r\nChallenge: (\d{9})\r\n\r\n",
                             reply)
        assert match is not None, reply
        key = hashlib.md5(match[1] + b"xvbsecret").hexdigest()
        wire.send(action("Login", ("AuthType", "md5"), ("Username", "xvb"), ("Key", key),
                         ("Events", "off"), ("ActionID", "l")))
        messages = await wire.wait_messages(2)
        self.assertEqual(messages[1], b"Response: Success\r\nActionID: l\r\n"
                                      b"Message: Authentication accepted\r\n\r\n")
        self.assertEqual(fake.logged_in(), [fake.sessions[0]])

        other = await self.connect(fake)
        other.send(action("Challenge", ("ActionID", "c")) +
                   action("Challenge", ("AuthType", "MD5"), ("ActionID", "c2")) +
                   action("Login", ("AuthType", "MD5"), ("Username", "xvb"),
                          ("Key", "0" * 32), ("ActionID", "l2")))
        await fake.wait_for(lambda f: len(f.sessions[1].actions) == 3)
        self.clock.advance(1)
        await other.wait_closed()
        first, second, third = other.messages()
        self.assertEqual(first, b"Response: Error\r\nActionID: c\r\n"
                                b"Message: Must specify AuthType\r\n\r\n")
        self.assertNotIn(match[1], second, "a new challenge for each session")
        self.assertEqual(third, b"Response: Error\r\nActionID: l2\r\n"
                                b"Message: Authentication failed\r\n\r\n")

    async def test_an_unknown_user_fails_like_a_wrong_secret(self) -> None:
        fake = await self.serve(failed_login_delay=2)
        wire = await self.connect(fake)
        wire.send(action("Login", ("Username", "nobody"), ("Secret", "xvbsecret")))
        await fake.wait_for(lambda f: len(f.actions) == 1)
        self.clock.advance(2)
        await wire.wait_closed()
        self.assertEqual(wire.messages(), [b"Response: Error\r\n"
                                           b"Message: Authentication failed\r\n\r\n"])

    async def test_nothing_but_login_challenge_logoff_before_login(self) -> None:
        fake = await self.serve()
        wire = await self.connect(fake)
        wire.send(action("Ping", ("ActionID", "1")) + action("NoSuchAction", ("ActionID", "2"))
                  + action("Originate", ("Channel", "Local/1@x"), ("ActionID", "3"))
                  + action("Logoff", ("ActionID", "4")))
        await wire.wait_closed()
        self.assertEqual(wire.messages(), [
            *(f"Response: Error\r\nActionID: {n}\r\nMessage: Permission denied\r\n\r\n".encode()
              for n in (1, 2, 3)),
            b"Response: Goodbye\r\nActionID: 4\r\nMessage: Thanks for all the fish.\r\n\r\n"])
        self.assertEqual(fake.originates, [])


class EventMaskTests(AMIPeerCase):
    async def test_events_off_then_the_events_action(self) -> None:
        fake = await self.serve()
        wire = await self.login(fake, events="off")
        user = [("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", "x")]
        call = [("Event", "Newstate"), ("Privilege", "call,all"), ("Channel", "PJSIP/1-0001")]
        fake.event(user)
        fake.event(call)
        wire.send(action("Events", ("EventMask", "call,system"), ("ActionID", "e1")))
        await wire.wait_messages(2)
        fake.event(user)
        fake.event(call)
        wire.send(action("Events", ("EventMask", "off"), ("ActionID", "e2")))
        await wire.wait_messages(4)
        fake.event(call)
        wire.send(action("Events", ("EventMask", "on")))
        messages = await wire.wait_messages(5)
        self.assertEqual(messages[1:], [
            b"Response: Success\r\nActionID: e1\r\nEvents: On\r\n\r\n",
            b"Event: Newstate\r\nPrivilege: call,all\r\nChannel: PJSIP/1-0001\r\n\r\n",
            b"Response: Success\r\nActionID: e2\r\nEvents: Off\r\n\r\n",
            b"Response: Success\r\nEvents: On\r\n\r\n"])

    async def test_login_events_select_classes(self) -> None:
        fake = await self.serve()
        system = await self.login(fake, events="system,call", expect=2)
        self.assertTrue(system.messages()[1].startswith(b"Event: FullyBooted\r\n"))
        everything = await self.login(fake, events="on", expect=3)
        self.assertTrue(everything.messages()[2].startswith(b"Event: SuccessfulAuth\r\n"))
        fake.event([("Event", "SuccessfulAuth"), ("Privilege", "security,all")])
        for wire in (system, everything):
            wire.send(action("Ping", ("ActionID", "barrier")))
        await system.wait_messages(3)
        await everything.wait_messages(5)
        self.assertTrue(system.messages()[2].startswith(b"Response: Success\r\nActionID: barrier"),
                        "no security events without the security class")
        self.assertTrue(everything.messages()[3].startswith(b"Event: SuccessfulAuth\r\n"))

    async def test_originate_response_goes_to_every_session_that_takes_call_events(self) -> None:
        fake = await self.serve(on_originate=lambda r: Outcome(reason=4, delay=1))
        watcher = await self.login(fake, events="on", expect=3)
        caller = await self.login(fake, events="off")
        bystander = await self.login(fake, events="system", expect=2)
        await watcher.wait_messages(5)  # the others' SuccessfulAuth
        caller.send(action("Originate", ("Channel", "Local/2500@xvb-test"),
                           ("Application", "Wait"), ("Data", "5"), ("Async", "1"),
                           ("ActionID", "o")))
        await caller.wait_messages(2)
        self.clock.advance(1)
        await watcher.wait_messages(8)
        for wire, count in ((caller, 3), (bystander, 3)):
            wire.send(action("Ping", ("ActionID", "barrier")))
            await wire.wait_messages(count)
        self.assertTrue(watcher.messages()[7].startswith(
            b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o\r\n"
            b"Response: Success\r\nChannel: Local/2500@xvb-test-00000000;1\r\n"
            b"Application: Wait\r\nData: 5\r\nReason: 4\r\n"))
        self.assertEqual([m.split(b"\r\n")[:2] for m in caller.messages()[1:]],
                         [[b"Response: Success", b"ActionID: o"],
                          [b"Response: Success", b"ActionID: barrier"]], "no events at all")
        self.assertEqual(len(bystander.messages()), 3)


class ActionTests(AMIPeerCase):
    async def test_ping_reply_on_the_real_clock(self) -> None:
        fake = await self.serve(clock=reactor)
        wire = await self.login(fake)
        wire.send(b"Action: Ping\r\nActionID: xvb-ping-1\r\n\r\nAction: Ping\r\n\r\n")
        _, with_id, without_id = await wire.wait_messages(3)
        match = re.fullmatch(rb"Response: Success\r\nActionID: xvb-ping-1\r\nPing: Pong\r\n"
                             rb"Timestamp: (\d{10}\.\d{6})\r\n\r\n", with_id)
        assert match is not None, with_id
        self.assertLess(abs(float(match[1]) - time.time()), 5)
        self.assertRegex(without_id, rb"^Response: Success\r\nPing: Pong\r\n"
                                     rb"Timestamp: \d{10}\.\d{6}\r\n\r\n$")
        self.assertEqual(fake.sessions[0].writes[-2], b"Response: Success\r\n",
                         "the first line is a write of its own, as in ami-01")

    async def test_a_hung_asterisk_does_not_answer_pings(self) -> None:
        fake = await self.serve()
        fake.answer_pings = False
        wire = await self.login(fake)
        wire.send(action("Ping", ("ActionID", "p")) + action("Events", ("EventMask", "off"),
                                                            ("ActionID", "e")))
        messages = await wire.wait_messages(2)
        self.assertEqual(messages[1], b"Response: Success\r\nActionID: e\r\nEvents: Off\r\n\r\n")
        fake.answer_pings = True
        wire.send(action("Ping", ("ActionID", "p2")))
        messages = await wire.wait_messages(3)
        self.assertTrue(messages[2].startswith(b"Response: Success\r\nActionID: p2\r\n"))

    async def test_unknown_and_malformed_actions(self) -> None:
        fake = await self.serve()
        wire = await self.login(fake)
        wire.send(tx(AMI03)[4] + b"Action: NoSuchAction\r\n\r\n" + b"\r\n"
                  + b"action: ping\nactionid: lf\n\n")
        messages = await wire.wait_messages(5)
        self.assertEqual(messages[1], rx(AMI03)[7])
        self.assertEqual(messages[2], b"Response: Error\r\nMessage: Invalid/unknown command: "
                         b"NoSuchAction. Use Action: ListCommands to show available commands."
                         b"\r\n\r\n")
        self.assertEqual(messages[3], b"Response: Error\r\nMessage: Missing action in request"
                                      b"\r\n\r\n")
        self.assertTrue(messages[4].startswith(b"Response: Success\r\nActionID: lf\r\n"))

    async def test_input_cut_anywhere_or_several_actions_in_one_chunk(self) -> None:
        fake = await self.serve()
        wire = await self.connect(fake)
        data = tx(AMI01)[0] + action("Ping", ("ActionID", "a"))
        for i in range(0, len(data), 7):
            wire.send(data[i:i + 7])
            await deferLater(reactor, 0.001, lambda: None)
        await wire.wait_messages(4)
        wire.send(b"".join(action("Ping", ("ActionID", str(n))) for n in range(3)))
        messages = await wire.wait_messages(7)
        replies = [m for m in messages if m.startswith(b"Response:")]
        self.assertEqual([m.split(b"\r\n")[1] for m in replies],
                         [b"ActionID: " + n for n in (b"xvb-login-1", b"a", b"0", b"1", b"2")])
        self.assertEqual(len(fake.actions), 5)

    async def test_command_output(self) -> None:
        fake = await self.serve()
        wire = await self.login(fake)
        wire.send(action("Command", ("Command", "core show version"), ("ActionID", "v"))
                  + action("Command", ("Command", "core  show  channels"), ("ActionID", "c"))
                  + action("Command", ("Command", "foo bar"), ("ActionID", "x")))
        messages = await wire.wait_messages(4)
        self.assertRegex(messages[1], rb"^Response: Success\r\nActionID: v\r\n"
                                      rb"Message: Command output follows\r\n"
                                      rb"Output: Asterisk 22\.10\.1 built by .*\r\n\r\n$")
        self.assertEqual(messages[2], b"Response: Success\r\nActionID: c\r\n"
                         b"Message: Command output follows\r\n"
                         b"Output: Channel              Location             State   "
                         b"Application(Data)             \r\n"
                         b"Output: 0 active channels\r\nOutput: 0 active calls\r\n"
                         b"Output: 0 calls processed\r\n\r\n")
        self.assertEqual(messages[3], b"Response: Error\r\nActionID: x\r\n"
                         b"Message: Command output follows\r\nOutput: No such command 'foo bar'"
                         b" (type 'core show help foo bar' for other possible commands)\r\n\r\n")

    async def test_command_output_before_asterisk_14(self) -> None:
        fake = await self.serve(old_command_format=True)
        wire = await self.login(fake)
        wire.send(action("Command", ("Command", "core show channels"), ("ActionID", "c")))
        await wire.until(lambda: wire.data.endswith(b"--END COMMAND--\r\n\r\n"))
        self.assertEqual(wire.data.split(b"Authentication accepted\r\n\r\n")[1],
                         b"Response: Follows\r\nPrivilege: Command\r\nActionID: c\r\n"
                         b"Channel              Location             State   Application(Data)"
                         b"             \n0 active channels\n0 active calls\n0 calls processed\n"
                         b"--END COMMAND--\r\n\r\n")


class OriginateTests(AMIPeerCase):
    async def test_async_answered_after_a_delay_then_hung_up(self) -> None:
        outcomes: list[Deferred[Outcome]] = []

        def decide(request: OriginateRequest) -> Deferred[Outcome]:
            outcomes.append(Deferred())
            return outcomes[-1]

        fake = await self.serve(on_originate=decide)
        wire = await self.login(fake, events="call")
        wire.send(b'Action: Originate\r\nChannel: Local/2500@xvb-test/n\r\nContext: caller\r\n'
                  b'Exten: dtmf\r\nPriority: 1\r\nCallerID: "XVB Test" <6135550123>\r\n'
                  b'Timeout: 45000\r\nVariable: A=1,B=2\r\nvariable: C=x=y\r\nAsync: Yes\r\n'
                  b'ActionID: o1\r\n\r\n')
        messages = await wire.wait_messages(2)
        self.assertEqual(messages[1], b"Response: Success\r\nActionID: o1\r\n"
                                      b"Message: Originate successfully queued\r\n\r\n")
        [request] = fake.originates
        self.assertEqual((request.action_id, request.channel, request.context, request.exten,
                          request.priority, request.application, request.caller_id,
                          request.timeout_ms, request.async_, request.variables),
                         ("o1", "Local/2500@xvb-test/n", "caller", "dtmf", "1", "",
                          '"XVB Test" <6135550123>', 45000, True,
                          {"A": "1", "B": "2", "C": "x=y"}))
        self.assertEqual(request.fields[0], ("Action", "Originate"))
        self.assertIs(request.session, fake.sessions[0])
        outcomes[0].callback(Outcome(reason=4, delay=2.5))
        messages = await wire.wait_messages(4)
        self.assertEqual(messages[2], rx_message(AMI01, b"Event: Newchannel"))
        self.clock.advance(2.5)
        messages = await wire.wait_messages(5)
        self.assertEqual(messages[4], rx_message(AMI01, b"Event: OriginateResponse")
                         .replace(b"xvb-orig-1", b"o1"))

        wire.send(action("Command", ("Command", "core show channels"), ("ActionID", "c")))
        messages = await wire.wait_messages(6)
        self.assertIn(b"Output: 2 active channels\r\nOutput: 1 active call\r\n"
                      b"Output: 1 call processed\r\n", messages[5])
        self.assertIn(b"Output: Local/2500@xvb-test- dtmf@caller:1", messages[5])
        wire.send(action("Hangup", ("Channel", "Local/2500@xvb-test-00000000;1"),
                         ("ActionID", "h")))
        messages = await wire.wait_messages(9)
        self.assertEqual(messages[6], b"Response: Success\r\nActionID: h\r\n"
                                      b"Message: Channel Hungup\r\n\r\n")
        self.assertEqual([m.split(b"\r\n")[2] for m in messages[7:]],
                         [b"Channel: Local/2500@xvb-test-00000000;1",
                          b"Channel: Local/2500@xvb-test-00000000;2"])
        self.assertEqual(fake.calls, {})
        wire.send(action("Hangup", ("Channel", "Local/2500@xvb-test-00000000;1"),
                         ("ActionID", "h2")))
        messages = await wire.wait_messages(10)
        self.assertEqual(messages[9], b"Response: Error\r\nActionID: h2\r\n"
                                      b"Message: No such channel\r\n\r\n")
        with self.assertRaises(KeyError):
            fake.hangup_call("1795696425.0")

    async def test_failures(self) -> None:
        fake = await self.serve(on_originate=lambda r: Outcome(reason=5, delay=3))
        wire = await self.login(fake, events="call")
        wire.send(action("Originate", ("Channel", "PJSIP/100"), ("Context", "c"), ("Exten", "200"),
                         ("Priority", "1"), ("CallerID", '"XVB Test" <6135550123>'),
                         ("Async", "true"), ("ActionID", "busy"))
                  + action("Originate", ("Context", "c"), ("Exten", "200"), ("Async", "true"),
                           ("ActionID", "nochan")))
        messages = await wire.wait_messages(4)
        self.assertEqual(messages[3], b"Response: Error\r\nActionID: nochan\r\n"
                                      b"Message: Channel not specified\r\n\r\n")
        self.assertTrue(messages[2].startswith(
            b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/100-00000000\r\n"))
        self.clock.advance(3)
        messages = await wire.wait_messages(6)
        self.assertIn(b"Cause: 17\r\nCause-txt: User busy\r\n\r\n", messages[4])
        self.assertEqual(messages[5], b"Event: OriginateResponse\r\nPrivilege: call,all\r\n"
                         b"ActionID: busy\r\nResponse: Failure\r\nChannel: PJSIP/100\r\n"
                         b"Context: c\r\nExten: 200\r\nReason: 5\r\nUniqueid: <unknown>\r\n"
                         b"CallerIDNum: 6135550123\r\nCallerIDName: XVB Test\r\n\r\n")

    async def test_synchronous_originate_blocks_the_session_until_the_outcome(self) -> None:
        def decide(request: OriginateRequest) -> Outcome:
            return Outcome(reason=4, delay=5) if "2500" in request.channel else Outcome(3, 30)

        fake = await self.serve(on_originate=decide)
        wire = await self.login(fake, events="on", expect=3)
        wire.send(action("Originate", ("Channel", "Local/2500@xvb-test"), ("Context", "caller"),
                         ("Exten", "dtmf"), ("Priority", "1"), ("ActionID", "s1"))
                  + action("Ping", ("ActionID", "p")))
        await fake.wait_for(lambda f: len(f.actions) == 3)
        self.clock.advance(4.5)
        self.assertEqual(len(fake.sessions[0].writes), 4, "banner, login, FullyBooted, Auth")
        self.clock.advance(0.5)
        messages = await wire.wait_messages(7)
        self.assertEqual(messages[3], b"Response: Success\r\nActionID: s1\r\n"
                                      b"Message: Originate successfully queued\r\n\r\n")
        self.assertEqual([m.split(b"\r\n")[0] for m in messages[4:]],
                         [b"Event: Newchannel", b"Event: Newchannel", b"Response: Success"])
        self.assertIn(b"ActionID: p\r\nPing: Pong", messages[6], "then what waited")

        wire.send(action("Originate", ("Channel", "Local/2600@xvb-test"),
                         ("Application", "Wait"), ("Data", "1"), ("ActionID", "s2")))
        await fake.wait_for(lambda f: len(f.actions) == 4)
        self.clock.advance(30)
        messages = await wire.wait_messages(12)
        self.assertEqual(messages[7], b"Response: Error\r\nActionID: s2\r\n"
                                      b"Message: Originate failed\r\n\r\n")
        self.assertEqual([m.split(b"\r\n")[0] for m in messages[8:]],
                         [b"Event: Newchannel"] * 2 + [b"Event: Hangup"] * 2)
        self.assertNotIn(b"OriginateResponse", wire.data, "only Async has OriginateResponse")
        self.assertEqual(list(fake.calls), [f"{int(T1)}.0"])
        fake.hangup_call(f"{int(T1)}.1")
        await wire.wait_messages(14)


class ChunkingTests(AMIPeerCase):
    async def test_split_output_is_the_same_bytes_in_pieces(self) -> None:
        fake = await self.serve(chunking="split")
        wire = await self.connect(fake)
        messages = await self.replay_ami01(fake, wire)
        expected = [m for m in split_messages(b"".join(rx(AMI01))) if peer_kind(m)]
        self.assertEqual([normalize(m) for m in messages], [normalize(m) for m in expected])
        writes = fake.sessions[0].writes
        self.assertEqual(b"".join(writes), wire.data)
        self.assertGreaterEqual(len(writes), 2 * (len(messages) + 1), "2 or 3 writes each")
        self.assertLessEqual(len(writes), 3 * (len(messages) + 1))
        self.assertIn(b"Response: Success\r\n", writes, "Ping's first line alone")
        self.assertTrue(any(not chunk.endswith((b"\r\n\r\n", BANNER)) for chunk in wire.chunks),
                        "the client did receive a message in pieces")

    async def test_merged_output_is_one_write_per_turn(self) -> None:
        fake = await self.serve(chunking="merged")
        wire = await self.connect(fake)
        await wire.until(lambda: wire.data == BANNER)
        login, ping, originate, _ = tx(AMI01)
        wire.send(login)
        await wire.wait_messages(3)
        wire.send(originate + ping)
        await wire.wait_messages(8)
        writes = fake.sessions[0].writes
        self.assertEqual([w.count(b"\r\n\r\n") for w in writes], [0, 3, 5])
        self.assertTrue(writes[2].startswith(rx(AMI01)[5] + b"Event: Newchannel\r\n"))
        self.assertIn(b"Ping: Pong", writes[2])
        fake.hangup_call("1795696425.0")
        await wire.wait_messages(10)
        self.assertEqual(fake.sessions[0].writes[3].count(b"Event: Hangup\r\n"), 2)


class CrashTests(AMIPeerCase):
    async def test_crash_then_restart_on_the_same_port(self) -> None:
        fake = await self.serve()
        port = fake.port
        one = await self.login(fake)
        two = await self.login(fake, events="on", expect=3)
        one.send(action("Originate", ("Channel", "Local/2500@xvb-test"), ("Application", "Wait"),
                        ("Data", "9"), ("Async", "true")))
        await two.wait_messages(6)
        self.assertEqual(len(fake.calls), 1)
        fake.crash()
        await one.wait_closed()
        await two.wait_closed()
        self.assertTrue(all(s.closed_by_asterisk and not s.connected for s in fake.sessions))
        self.assertEqual((fake.calls, fake.logged_in()), ({}, []))
        with self.assertRaises(ConnectionRefusedError):
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Wire())

        self.clock.advance(60)
        await fake.restart()
        self.assertEqual(fake.port, port)
        three = await self.login(fake, events="on", expect=3)
        self.assertTrue(three.data.startswith(BANNER))
        self.assertIn(b"Uptime: 0\r\nLastReload: 0\r\n", three.messages()[1])
        three.send(action("Originate", ("Channel", "Local/2500@xvb-test"),
                          ("Application", "Wait"), ("Data", "9"), ("Async", "true")))
        messages = await three.wait_messages(7)
        self.assertIn(f"Uniqueid: {int(T1) + 60}.0\r\n".encode(), messages[-1])
        self.assertIn(b"Channel: Local/2500@xvb-test-00000000;1\r\n", messages[-1])
        self.assertEqual(len(fake.sessions), 3)


class EventFilterTests(TestCase):
    """The fake applies a session's Filter actions as Asterisk 22's manager.c does."""

    NEWCHANNEL = [("Event", "Newchannel"), ("Channel", "PJSIP/a-1"), ("Context", "xvb")]
    ORIGINATED = [("Event", "OriginateResponse"), ("Response", "Success")]

    def passes(self, filters: EventFilters, fields: list[tuple[str, str]]) -> bool:
        return filters.lets_through(fields, serialize(fields))

    def test_none_include_exclude_and_both(self) -> None:
        filters = EventFilters()
        self.assertTrue(self.passes(filters, self.NEWCHANNEL))  # no filter: everything
        self.assertEqual(filters.add("name(OriginateResponse),method(none)", ""), "")
        self.assertTrue(self.passes(filters, self.ORIGINATED))
        self.assertFalse(self.passes(filters, self.NEWCHANNEL))  # an include: only it
        filters.add("", "Context: xvb")  # the old kind: a regex on the whole event
        self.assertTrue(self.passes(filters, self.NEWCHANNEL))
        filters.add("action(exclude),name(Newchannel),header(Channel),method(starts_with)",
                    "PJSIP/")
        self.assertFalse(self.passes(filters, self.NEWCHANNEL))
        self.assertTrue(self.passes(filters, self.ORIGINATED))
        excluding = EventFilters()
        excluding.add("", "!Event: Newchannel")  # an exclude only: all but it
        self.assertFalse(self.passes(excluding, self.NEWCHANNEL))
        self.assertTrue(self.passes(excluding, self.ORIGINATED))

    def test_bad_filters_get_asterisks_answers(self) -> None:
        filters = EventFilters()
        self.assertIn("formatted incorrectly", filters.add("", ""))
        self.assertIn("formatted incorrectly", filters.add("nmae(X)", "x"))
        self.assertIn("formatted incorrectly", filters.add("method(coains)", "x"))
        self.assertIn("did not compile", filters.add("", "XX[X"))
        self.assertEqual((filters.include, filters.exclude), ([], []))
