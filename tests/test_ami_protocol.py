"""The AMI wire format against the recorded Asterisk 22 sessions, and one AMI session
driven in memory (login, correlation, lists, keep-alive) with a test clock."""

from __future__ import annotations

import hashlib
import re

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.support.transcripts import load
from xvbd.ami.client import (
    AMIConnectionLost,
    AMIError,
    AMILoginRefused,
    AMIProtocol,
    Credentials,
)
from xvbd.ami.protocol import AMIProtocolError, Message, MessageParser, encode_action


def received(name: str) -> list[bytes]:
    return [c.data for c in load(name) if c.direction == "RX"]


def sent(name: str) -> list[bytes]:
    return [c.data for c in load(name) if c.direction == "TX"]


def parse(chunks: list[bytes]) -> tuple[str | None, list[Message]]:
    parser = MessageParser()
    out: list[Message] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return parser.banner, out


class ParserTests(TestCase):
    def test_recorded_session_as_it_came(self) -> None:
        banner, messages = parse(received("ami-01-login-ping-originate-events.txt"))
        self.assertEqual(banner, "Asterisk Call Manager/11.0.0")
        self.assertEqual(messages[0].fields, [("Response", "Success"),
                                              ("ActionID", "xvb-login-1"),
                                              ("Message", "Authentication accepted")])
        self.assertEqual(messages[1].event, "FullyBooted")
        # The Ping reply came in two chunks ("Response: Success\r\n", then the rest).
        ping = next(m for m in messages if m.action_id == "xvb-ping-1")
        self.assertEqual((ping.response, ping.get("Ping")), ("Success", "Pong"))
        self.assertRegex(ping.get("Timestamp"), r"^\d+\.\d+$")
        originate = next(m for m in messages if m.event == "OriginateResponse")
        self.assertEqual((originate.action_id, originate.response, originate.get("Reason"),
                          originate.get("Uniqueid"), originate.get("CallerIDNum")),
                         ("xvb-orig-1", "Success", "4", "1795696425.0", "6135550123"))
        self.assertEqual(messages[-1].fields[:2], [("Response", "Goodbye"),
                                                   ("ActionID", "xvb-logoff-1")])
        # An empty value is a value ("AccountCode: ").
        newchannel = next(m for m in messages if m.event == "Newchannel")
        self.assertIn(("AccountCode", ""), newchannel.fields)

    def test_any_split_gives_the_same_messages(self) -> None:
        for name in ("ami-01-login-ping-originate-events.txt",
                     "ami-03-originate-failure-sync-unknown-action.txt"):
            chunks = received(name)
            whole = b"".join(chunks)
            _, expected = parse(chunks)
            _, bytewise = parse([whole[i:i + 1] for i in range(len(whole))])
            _, merged = parse([whole])
            _, odd = parse([whole[i:i + 7] for i in range(0, len(whole), 7)])
            self.assertEqual(bytewise, expected)
            self.assertEqual(merged, expected)
            self.assertEqual(odd, expected)
            self.assertGreater(len(expected), 10)

    def test_failure_and_unknown_action(self) -> None:
        _, messages = parse(received("ami-03-originate-failure-sync-unknown-action.txt"))
        failed = next(m for m in messages if m.event == "OriginateResponse")
        self.assertEqual((failed.response, failed.get("Reason"), failed.get("Uniqueid")),
                         ("Failure", "0", "<unknown>"))
        bogus = next(m for m in messages if m.action_id == "xvb-bogus-1")
        self.assertEqual(bogus.response, "Error")
        self.assertTrue(bogus.get("Message").startswith("Invalid/unknown command: NoSuchAction."))
        _, refused = parse(received("ami-02-failed-login.txt"))
        self.assertEqual(refused[0].get("Message"), "Authentication failed")

    def test_actions_are_written_as_xvbd_wrote_them_to_asterisk(self) -> None:
        tx = sent("ami-01-login-ping-originate-events.txt")
        self.assertEqual(encode_action("Login", [("Username", "xvb"), ("Secret", "xvbsecret"),
                                                 ("ActionID", "xvb-login-1")]), tx[0])
        self.assertEqual(encode_action("Ping", [("ActionID", "xvb-ping-1")]), tx[1])
        self.assertEqual(encode_action("Originate", [
            ("Channel", "Local/2500@xvb-test"), ("Context", "caller"), ("Exten", "dtmf"),
            ("Priority", "1"), ("CallerID", '"XVB Test" <6135550123>'), ("Timeout", "30000"),
            ("Variable", "XVB_FROM_AMI=1"), ("Async", "true"),
            ("ActionID", "xvb-orig-1")]), tx[2])

    def test_a_line_break_cannot_add_a_header(self) -> None:
        for fields in ([("Channel", "Local/1@ctx\r\nApplication: System")],
                       [("Variable", "A=1\nB")], [("Bad: key", "1")], [("", "x")]):
            with self.assertRaises(ValueError):
                encode_action("Originate", fields)

    def test_command_output_old_and_new(self) -> None:
        old = (b"Asterisk Call Manager/1.1\r\nResponse: Follows\r\nPrivilege: Command\r\n"
               b"ActionID: 7\r\nChannel              Location\r\nSIP/1-0001: up\r\n"
               b"\r\n2 active channels\n--END COMMAND--\r\n\r\n"
               b"Event: Hangup\r\nChannel: SIP/1\r\n\r\n")
        banner, messages = parse([old])
        self.assertEqual(banner, "Asterisk Call Manager/1.1")
        self.assertEqual(messages[0].fields, [("Response", "Follows"),
                                              ("Privilege", "Command"), ("ActionID", "7")])
        self.assertEqual(messages[0].output, ["Channel              Location", "SIP/1-0001: up",
                                              "", "2 active channels"])
        self.assertEqual(messages[1].event, "Hangup")
        new = (b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 8\r\n"
               b"Message: Command output follows\r\nOutput: Asterisk 22.10.1 built by x\r\n"
               b"Output: \r\n\r\n")
        _, messages = parse([new])
        self.assertEqual(messages[0].output, ["Asterisk 22.10.1 built by x", ""])

    def test_bare_newlines_and_blank_lines_between_messages(self) -> None:
        data = (b"Asterisk Call Manager/11.0.0\r\nEvent: A\nX: 1\n\n\r\nEvent: B\r\n"
                b"Y: 2\r\n\r\n\r\nEvent: C\r\nNo colon here\r\nZ:3\r\n\r\n")
        for chunks in ([data], [data[i:i + 1] for i in range(len(data))]):
            _, messages = parse(chunks)
            self.assertEqual([m.fields for m in messages],
                             [[("Event", "A"), ("X", "1")], [("Event", "B"), ("Y", "2")],
                              [("Event", "C"), ("Z", "3")]])
            self.assertEqual(messages[2].output, ["No colon here"])
            self.assertEqual((messages[1].get("y"), "Y" in messages[1], "Z" in messages[1]),
                             ("2", True, False))

    def test_a_line_without_end_is_bounded(self) -> None:
        parser = MessageParser()
        list(parser.feed(b"Asterisk Call Manager/11.0.0\r\n"))
        with self.assertRaises(AMIProtocolError):
            list(parser.feed(b"x" * 70000))


class SessionTests(TestCase):
    """One AMIProtocol over an in-memory transport; the test plays Asterisk."""

    def session(self, auth: str = "plain") -> tuple[AMIProtocol, StringTransport, Clock]:
        clock = Clock()
        proto = AMIProtocol(Credentials("xvb", "xvbsecret", auth), clock, keepalive=20,
                            reply_timeout=10)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.events: list[Message] = []
        proto.on_event = self.events.append
        return proto, transport, clock

    def take(self, transport: StringTransport) -> list[Message]:
        data = transport.value()
        transport.clear()
        parser = MessageParser(expect_banner=False)
        return list(parser.feed(data))

    def answer(self, proto: AMIProtocol, action: Message, *fields: tuple[str, str]) -> None:
        body = [("Response", "Success"), ("ActionID", action.action_id), *fields]
        proto.dataReceived(b"".join(f"{k}: {v}\r\n".encode() for k, v in body) + b"\r\n")

    def test_plain_login_then_events_and_responses_interleave(self) -> None:
        proto, transport, _ = self.session()
        proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
        (login,) = self.take(transport)
        self.assertEqual(login.fields[:4], [("Action", "Login"), ("Username", "xvb"),
                                            ("Secret", "xvbsecret"), ("Events", "call,system")])
        self.assertFalse(proto.ready.called)
        self.answer(proto, login, ("Message", "Authentication accepted"))
        self.assertTrue(proto.logged_in)
        # then it asks for the events it reads only, by name, one Filter each
        self.assertFalse(proto.ready.called)
        for name in ("OriginateResponse", "Shutdown"):
            (action,) = self.take(transport)
            self.assertEqual(action.fields[:4], [
                ("Action", "Filter"), ("Operation", "Add"), ("Filter", ""),
                ("MatchCriteria", f"name({name}),method(none)")])
            self.answer(proto, action, ("Message", "Success"))
        self.assertIs(self.successResultOf(proto.ready), proto)
        first, second = proto.send("Ping"), proto.send("Ping")
        ping1, ping2 = self.take(transport)
        # The second answer first, an event between, the first split in two reads.
        self.answer(proto, ping2, ("Ping", "Pong"))
        proto.dataReceived(b"Event: Newchannel\r\nChannel: Local/1\r\n\r\nResponse: Succ")
        proto.dataReceived(f"ess\r\nActionID: {ping1.action_id}\r\nPing: Pong\r\n\r\n".encode())
        self.assertEqual(self.successResultOf(first).action_id, ping1.action_id)
        self.assertEqual(self.successResultOf(second).action_id, ping2.action_id)
        self.assertEqual([e.event for e in self.events], ["Newchannel"])

    def test_md5_challenge_login(self) -> None:
        proto, transport, _ = self.session("md5")
        proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
        (challenge,) = self.take(transport)
        self.assertEqual(challenge.fields[:2], [("Action", "Challenge"), ("AuthType", "MD5")])
        self.answer(proto, challenge, ("Challenge", "123456789"))
        (login,) = self.take(transport)
        key = hashlib.md5(b"123456789xvbsecret").hexdigest()
        self.assertEqual(login.fields[:4], [("Action", "Login"), ("AuthType", "MD5"),
                                            ("Username", "xvb"), ("Key", key)])
        self.assertNotIn(b"xvbsecret", b"".join(encode_action("x", login.fields[1:]).split()))
        self.answer(proto, login)
        self.assertTrue(proto.logged_in)

    def test_refused_login_fails_ready_and_closes(self) -> None:
        proto, transport, _ = self.session()
        proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
        (login,) = self.take(transport)
        proto.dataReceived(f"Response: Error\r\nActionID: {login.action_id}\r\n"
                           "Message: Authentication failed\r\n\r\n".encode())
        failure = self.failureResultOf(proto.ready, AMILoginRefused)
        self.assertEqual(failure.getErrorMessage(), "Authentication failed")
        self.assertTrue(transport.disconnecting)

    def logged_in(self) -> tuple[AMIProtocol, StringTransport, Clock]:
        proto, transport, clock = self.session()
        proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
        (login,) = self.take(transport)
        self.answer(proto, login)
        for _ in range(2):  # the event filters
            (action,) = self.take(transport)
            self.answer(proto, action, ("Message", "Success"))
        self.successResultOf(proto.ready)
        return proto, transport, clock

    def test_error_response_fails_only_its_action(self) -> None:
        proto, transport, _ = self.logged_in()
        bad = proto.send("NoSuchAction")
        (action,) = self.take(transport)
        proto.dataReceived(f"Response: Error\r\nActionID: {action.action_id}\r\nMessage: "
                           "Invalid/unknown command: NoSuchAction.\r\n\r\n".encode())
        error = self.failureResultOf(bad, AMIError).value
        self.assertIn("Invalid/unknown command", str(error))
        self.assertFalse(transport.disconnecting)

    def test_list_answer_gathers_its_events(self) -> None:
        proto, transport, _ = self.logged_in()
        listing = proto.send("CoreShowChannels")
        (action,) = self.take(transport)
        aid = action.action_id
        proto.dataReceived(
            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
            f"Event: CoreShowChannel\r\nActionID: {aid}\r\nChannel: PJSIP/a-1\r\n\r\n"
            "Event: Hangup\r\nChannel: PJSIP/b-2\r\n\r\n"
            f"Event: CoreShowChannel\r\nActionID: {aid}\r\nChannel: PJSIP/c-3\r\n\r\n".encode())
        self.assertNoResult(listing)
        proto.dataReceived(f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\n"
                           "EventList: Complete\r\nListItems: 2\r\n\r\n".encode())
        reply = self.successResultOf(listing)
        self.assertEqual([e.get("Channel") for e in reply.events[:2]],
                         ["PJSIP/a-1", "PJSIP/c-3"])
        self.assertEqual(reply.events[-1].event, "CoreShowChannelsComplete")
        self.assertEqual([e.event for e in self.events], ["Hangup"])  # not part of the list

    def test_keepalive_pings_a_quiet_line_and_drops_a_dead_one(self) -> None:
        proto, transport, clock = self.logged_in()
        clock.advance(19)
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(b"Event: Newchannel\r\nChannel: x\r\n\r\n")  # heard at 19 s
        clock.advance(10)  # 29 s: quiet for 10 s only
        self.assertEqual(transport.value(), b"")
        clock.advance(10)  # 39 s: quiet for 20 s
        (ping,) = self.take(transport)
        self.assertEqual(ping.fields[0], ("Action", "Ping"))
        self.answer(proto, ping, ("Ping", "Pong"))
        clock.advance(20)
        (ping,) = self.take(transport)
        clock.advance(10)  # no answer in reply_timeout
        self.assertTrue(transport.disconnecting or transport.disconnected)

    def test_lost_connection_fails_what_waits(self) -> None:
        proto, _, _ = self.logged_in()
        waiting = proto.send("Ping")
        proto.connectionLost(Failure(ConnectionError("reset")))
        self.failureResultOf(waiting, AMIConnectionLost)

    def test_banner_not_asterisk_is_logged_not_fatal(self) -> None:
        proto, transport, _ = self.session()
        proto.dataReceived(b"SSH-2.0-OpenSSH_9\r\n")
        self.assertTrue(re.match(rb"Action: Login", transport.value()))
