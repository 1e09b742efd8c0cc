"""xvbd's AMI client against the test Asterisk over real loopback sockets: login (MD5 and
plain, refused), originations tracked to their OriginateResponse, events, command output,
reconnection with back-off when Asterisk restarts, a hung Asterisk found by keep-alive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.peers.ami import FakeAsterisk, OriginateRequest, Outcome, header
from xvbd.ami.client import AMIClient, AMIError, AMINotConnected, Credentials
from xvbd.ami.protocol import Message


async def until(check: Callable[[], bool], clock: Clock | None = None, step: float = 0.0,
                limit: float = 5.0) -> None:
    """Let the real reactor run (advancing ``clock`` by ``step`` each turn) until
    ``check()``; fail after ``limit`` real seconds."""
    waited = 0.0
    while not check():
        if clock is not None and step:
            clock.advance(step)
        await deferLater(reactor, 0.005, lambda: None)
        waited += 0.005
        if waited > limit:
            raise AssertionError("the condition did not come true in time")


class AMIClientTests(TestCase):
    def setUp(self) -> None:
        self.logs: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if str(event.get("log_namespace", "")).startswith("xvbd.ami"):
                self.logs.append(f"{event['log_level'].name}: {formatEvent(event)}")
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    async def asterisk(self, **kwargs: Any) -> FakeAsterisk:
        fake = FakeAsterisk(reactor, failed_login_delay=0.05, **kwargs)
        await fake.start()
        self.addCleanup(fake.stop)
        return fake

    def client(self, fake: FakeAsterisk, secret: str = "xvbsecret", auth: str = "md5",
               clock: Any = None, **kwargs: Any) -> AMIClient:
        client = AMIClient("N1", "127.0.0.1", fake.port, Credentials("xvb", secret, auth),
                           reactor=reactor, clock=clock, **kwargs)
        client.startService()
        self.addCleanup(client.stopService)
        return client

    async def test_md5_login_and_an_answered_origination(self) -> None:
        outcomes: list[OriginateRequest] = []

        def answer(request: OriginateRequest) -> Outcome:
            outcomes.append(request)
            return Outcome(4, delay=0.02)
        fake = await self.asterisk(on_originate=answer)
        client = self.client(fake)
        await client.when_connected()
        login = next(f for _, f in fake.actions if dict(f).get("Action") == "Login")
        self.assertEqual(dict(login).get("AuthType"), "MD5")
        self.assertNotIn("Secret", dict(login))
        self.assertEqual(dict(login)["Events"], "call,system")
        result = await client.originate(
            channel="Local/79001234567@xvb-dialout/n", context="xvb-callblast", exten="s",
            variables={"__XVB_AC": "10001", "XVB_CB_TOKEN": "N1:abc"},
            caller_id='"Shop" <613>', timeout=25)
        self.assertEqual((result.status, result.reason), ("answered", 4))
        self.assertEqual(result.uniqueid, next(iter(fake.calls)))
        (request,) = outcomes
        self.assertEqual((request.channel, request.context, request.exten, request.timeout_ms,
                          request.async_, request.caller_id),
                         ("Local/79001234567@xvb-dialout/n", "xvb-callblast", "s", 25000, True,
                          '"Shop" <613>'))
        self.assertEqual(request.variables, {"__XVB_AC": "10001", "XVB_CB_TOKEN": "N1:abc"})
        self.assertIn(f"info: AMI connected to 127.0.0.1:{fake.port} as xvb (Asterisk Call "
                      "Manager/11.0.0) for node N1", self.logs)

    async def test_every_fate_of_an_origination(self) -> None:
        fates = {"1": Outcome(5), "2": Outcome(3, delay=0.01), "3": Outcome(0), "4": Outcome(8),
                 "5": Outcome(1)}
        fake = await self.asterisk(on_originate=lambda r: fates[r.channel[6]],
                                   chunking="split")
        client = self.client(fake, auth="plain")
        await client.when_connected()
        results = [await client.originate(channel=f"Local/{n}@ctx/n", context="c", exten="s")
                   for n in "12345"]
        self.assertEqual([(r.status, r.reason) for r in results],
                         [("busy", 5), ("noanswer", 3), ("failed", 0), ("failed", 8),
                          ("noanswer", 1)])
        self.assertEqual(results[2].uniqueid, "<unknown>")
        # Asterisk refusing the action itself, and a value that would add a header
        bad = await client.originate(channel="", context="c", exten="s")
        self.assertEqual(bad.status, "failed")
        self.assertIn("Originate", bad.message)
        evil = await client.originate(channel="Local/1@c\r\nApplication: System", context="c",
                                      exten="s")
        self.assertEqual(evil.status, "failed")
        sent = [f for _, f in fake.actions if dict(f).get("Action") == "Originate"]
        self.assertEqual(len(sent), 6)  # the evil one never left xvbd

    async def test_refused_login_is_said_and_retried_with_back_off(self) -> None:
        fake = await self.asterisk()
        clock = Clock()
        client = self.client(fake, secret="wrong", clock=clock, jitter=lambda: 0.0)
        await until(lambda: len(fake.sessions) >= 1 and not fake.sessions[0].connected)
        refusals = [line for line in self.logs if line.startswith("error:")]
        self.assertEqual(len(refusals), 1)
        self.assertIn(f"Asterisk at 127.0.0.1:{fake.port} refused the AMI login of 'xvb': "
                      "Authentication failed. Check [ASTERISK] AMI_USERNAME, AMI_SECRET and "
                      "AMI_AUTH", refusals[0])
        self.assertFalse(client.connected)
        # The next tries come after growing delays: after each refusal the client waits on
        # its clock (the one timer there; no jitter here), and tries when it has passed.
        gaps = []
        for n in (1, 2, 3):
            await until(lambda: len(clock.getDelayedCalls()) == 1)
            (retry,) = clock.getDelayedCalls()
            gaps.append(round(retry.getTime() - clock.seconds(), 6))
            clock.advance(gaps[-1] - 0.01)
            await deferLater(reactor, 0.05, lambda: None)
            self.assertEqual(len(fake.sessions), n, "not before its time")
            clock.advance(0.01)
            await until(lambda n=n: len(fake.sessions) > n and  # type: ignore[misc]
                        not fake.sessions[n].connected)
        self.assertEqual(gaps, [2.0, 4.0, 8.0])
        # The operator fixes manager.conf: the next try logs in.
        fake.secret = "wrong"
        await until(lambda: client.connected, clock, 0.5)
        self.assertTrue(any("accepted after" in line for line in self.logs))
        with self.assertRaises(AMINotConnected):
            await AMIClient("N2", "127.0.0.1", 1, Credentials("x", "y"),
                            reactor=reactor).action("Ping")

    async def test_asterisk_restart_loses_calls_in_the_air_and_reconnects(self) -> None:
        pending: Deferred[Outcome] = Deferred()
        fake = await self.asterisk(on_originate=lambda r: pending)
        clock = Clock()
        client = self.client(fake, clock=clock)
        await until(lambda: client.connected)
        in_the_air = Deferred.fromCoroutine(client.originate(
            channel="Local/1@ctx/n", context="c", exten="s", timeout=30))
        await until(lambda: len(fake.originates) == 1)
        fake.crash()
        result = await in_the_air
        self.assertEqual(result.status, "lost")
        self.assertFalse(client.connected)
        self.assertTrue(any(line.startswith("warn: AMI connection to") and "lost" in line
                            for line in self.logs))
        refused = await client.originate(channel="Local/2@ctx/n", context="c", exten="s")
        self.assertEqual(refused.status, "unplaced")
        await fake.restart()
        await until(lambda: client.connected, clock, 0.5)
        self.assertEqual(client.sessions, 2)
        answered = Outcome(4)
        fake.on_originate = lambda r: answered
        after = await client.originate(channel="Local/3@ctx/n", context="c", exten="s")
        self.assertEqual(after.status, "answered")

    async def test_a_hung_asterisk_is_left_by_keep_alive(self) -> None:
        fake = await self.asterisk()
        clock = Clock()
        client = self.client(fake, clock=clock, keepalive=20, reply_timeout=5)
        await until(lambda: client.connected)
        fake.answer_pings = False
        clock.advance(20)  # quiet: a Ping goes
        await until(lambda: any(dict(f).get("Action") == "Ping" for _, f in fake.actions))
        clock.advance(5)  # no Pong
        await until(lambda: not client.connected)
        self.assertTrue(any("did not answer a keep-alive Ping" in line for line in self.logs))
        fake.answer_pings = True
        await until(lambda: client.connected, clock, 0.5)
        self.assertEqual(client.sessions, 2)

    async def test_events_reach_listeners_and_command_output_reads(self) -> None:
        for old in (False, True):
            fake = await self.asterisk(old_command_format=old)
            client = self.client(fake)
            await client.when_connected()
            seen: list[Message] = []
            stop = client.subscribe(seen.append)
            fake.event([("Event", "Newexten"), ("Privilege", "dialplan,all")])  # not asked
            # a class asked for, but not an event xvbd reads: Asterisk's filter keeps it
            fake.event([("Event", "Hangup"), ("Privilege", "call,all"), ("Channel", "PJSIP/a")])
            fake.event([("Event", "Shutdown"), ("Privilege", "system,all"),
                        ("Shutdown", "Cleanly"), ("Restart", "True")])
            await until(lambda seen=seen: any(m.event == "Shutdown" for m in seen))
            shutdown = next(m for m in seen if m.event == "Shutdown")
            self.assertEqual(shutdown.get("Restart"), "True")
            self.assertEqual([m.event for m in seen], ["Shutdown"])
            filters = [a for s, a in fake.actions if header(a, "Action") == "Filter"]
            self.assertEqual([header(a, "MatchCriteria") for a in filters],
                             ["name(OriginateResponse),method(none)",
                              "name(Shutdown),method(none)"])
            stop()
            output = await client.command("core show version")
            self.assertTrue(output[0].startswith("Asterisk 22"), output)
            with self.assertRaises(AMIError):
                await client.action("NoSuchAction")

    async def test_an_asterisk_refusing_the_event_filter_is_used_unfiltered(self) -> None:
        fake = await self.asterisk()
        fake.refuse_filter = True  # a manager user without write = system
        client = self.client(fake)
        await client.when_connected()
        seen: list[Message] = []
        client.subscribe(seen.append)
        fake.event([("Event", "Hangup"), ("Privilege", "call,all"), ("Channel", "PJSIP/a")])
        await until(lambda: bool(seen))
        self.assertEqual([m.event for m in seen], ["Hangup"])
        refusals = [line for line in self.logs if "event filter" in line]
        self.assertEqual(len(refusals), 1, self.logs)
        self.assertRegex(refusals[0], r"^info: AMI 127\.0\.0\.1:\d+: Asterisk refused the "
                                      r"event filter \(Permission denied\)")
        self.assertIn("write = system", refusals[0])
        filters = [a for s, a in fake.actions if header(a, "Action") == "Filter"]
        self.assertEqual(len(filters), 1, "one refusal is enough")
