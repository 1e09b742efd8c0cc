"""CallBlast and Callback end to end: the scheduler and the dialer of xvbd against the test
Asterisk over AMI (real sockets), the answered calls coming back over FastAGI (the peer
playing the shipped xvb-callblast / xvb-callback contexts), results and CDRs in the real
database; the reactor's minute is a test clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher

from tests.peers.agi import AsteriskAGI, Caller, environment, start_call
from tests.peers.ami import FakeAsterisk, OriginateRequest, Outcome
from tests.support.db import on_both_backends
from tests.support.engine import T0, EngineCase
from tests.support.redis import connect, drop_prefix, new_prefix
from xvbd.ami.client import AMIClient, Credentials
from xvbd.counters import Counters, RedisCounters
from xvbd.outbound.callback import CallbackDialer
from xvbd.outbound.callblast import CallblastScheduler
from xvbd.outbound.dialer import Dialer, NodeRoom

UNIT = 10000
ANSWER, BUSY, NOANSWER, MACHINE, FAIL, RING = ("answer", "busy", "noanswer", "machine",
                                               "fail", "ring")


class OutboundCase(EngineCase):
    """The engine of EngineCase, plus the test Asterisk's AMI, xvbd's AMI client, the
    CallBlast scheduler and the Callback dialer of node FCC-NN."""

    extra_config = "[CALLBLAST]\nSLEEP = 2\nMAX_CALLS = 150\n"
    node_limit = 0

    def setUp(self) -> None:
        super().setUp()
        self.fates: dict[str, str] = {}  # phone -> what happens when it is called
        self.callers: dict[str, Caller] = {}  # phone -> the person who answers
        self.sessions: dict[str, list[AsteriskAGI]] = {}  # phone -> answered calls
        self.load = (0.1, 0.1, 0.1)
        self.logs: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if str(event.get("log_namespace", "")).startswith("xvbd."):
                self.logs.append(f"{event['log_level'].name}: {formatEvent(event)}")
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    async def start_outbound(self, secret: str = "xvbsecret",
                             counters: Counters | None = None,
                             fake: FakeAsterisk | None = None) -> CallblastScheduler:
        if fake is None:
            fake = FakeAsterisk(reactor, clock=self.clock, failed_login_delay=0,
                                on_originate=self.originated)
            await fake.start()
            self.addCleanup(fake.stop)
            self.fake = fake
        await self.store.accounts.put_node("FCC-NN", limit_calls=self.node_limit)
        ami = AMIClient("FCC-NN", "127.0.0.1", fake.port, Credentials("xvb", secret),
                        reactor=reactor, clock=self.clock, keepalive=86400,
                        reply_timeout=86400)  # the test clock races ahead of the sockets
        ami.startService()
        self.addCleanup(ami.stopService)
        counters = counters or self.counters
        dialer = Dialer(ami, self.clock)
        room = NodeRoom("FCC-NN", self.store.accounts.get_node, counters,
                        self.settings.callblast.load_threshold, lambda: self.load)
        scheduler = CallblastScheduler(self.settings, self.store, self.directory, counters,
                                       dialer, room, self.clock)
        callbacks = CallbackDialer(self.settings, self.store, dialer, room, self.clock)
        scheduler.startService()
        callbacks.startService()
        self.addCleanup(scheduler.stopService)
        self.addCleanup(callbacks.stopService)
        self.engine.callback_requested = callbacks.kick
        self.ami, self.dialer, self.scheduler, self.callbacks = ami, dialer, scheduler, callbacks
        if secret == "xvbsecret":
            await ami.when_connected()
        return scheduler

    # ------------------------------------------------------------------ the Asterisk side

    def originated(self, request: OriginateRequest) -> Outcome | Deferred[Outcome]:
        """Asterisk dials: the phone's fate; an answered phone comes to xvbd over FastAGI
        as the xvb-callblast / xvb-callback context sends it (AMD first)."""
        match = re.fullmatch(r"Local/([^@]+)@([^/]+)/n", request.channel)
        assert match, request.channel
        phone = match[1]
        fate = self.fates.get(phone, ANSWER)
        if fate in (BUSY, NOANSWER, FAIL):
            return Outcome({BUSY: 5, NOANSWER: 3, FAIL: 0}[fate], delay=3)
        if fate == RING:
            return Outcome(3, delay=request.timeout_ms / 1000)
        caller = self.callers.get(phone) or Caller()
        if request.variables.get("XVB_CHECK_AMD") == "1":
            caller.variables["AMDSTATUS"] = "MACHINE" if fate == MACHINE else "HUMAN"
        for name, value in request.variables.items():
            caller.variables[name.lstrip("_")] = value
        if request.context == "xvb-callblast":
            args = (request.variables["XVB_CB_PHONE"], request.variables["XVB_CB_TOKEN"])
        else:
            args = (request.variables["XVB_CB_REQUEST"], request.variables["XVB_CB_TOKEN"])
        number = re.sub(r".*<(.*)>", r"\1", request.caller_id)
        answered: Deferred[Outcome] = Deferred()

        async def answer() -> None:
            env = environment(request.context.removeprefix("xvb-"), args=args,
                              callerid=number, calleridname="", extension="s",
                              channel=f"Local/{phone}@{match[2]}-0000000{len(self.sessions)};1")
            peer = await start_call(reactor, self.port, env, caller, self.clock.advance)
            self.sessions.setdefault(phone, []).append(peer)
            # Asterisk reports the answer once the call is in xvbd's hands (xvbd has kept
            # the attempt's outcome when it sets the call's variables).
            while not peer.done.called and not any(
                    c.startswith("SET VARIABLE") for c in peer.commands):
                await deferLater(reactor, 0.002, lambda: None)
            answered.callback(Outcome(4))
        reactor.callLater(0, lambda: Deferred.fromCoroutine(answer()))
        return answered

    # ------------------------------------------------------------------ driving time

    async def until(self, check: Callable[[], bool], step: float = 1.0,
                    limit: float = 20.0) -> None:
        """Move the test clock ``step`` s at a time, letting sockets and the database work
        in between, until ``check()``."""
        waited = 0.0
        while not check():
            self.clock.advance(step)
            await deferLater(reactor, 0.003, lambda: None)
            waited += 0.003
            if waited > limit:
                raise AssertionError("not done in time")

    async def minute(self, settle: bool = True) -> Any:
        """The scheduler's next run, to its end (and every call it placed settled)."""
        runs = self.scheduler.last_report
        self.clock.advance(60 - (self.clock.seconds() - T0) % 60)
        await self.until(lambda: self.scheduler.last_report is not runs and
                         self.scheduler._run is None, step=0.5)
        report = self.scheduler.last_report
        if settle:
            await self.settled()
        return report

    async def settled(self) -> None:
        await self.until(lambda: not self.dialer.attempts and all(
            peer.done.called for peers in self.sessions.values() for peer in peers))
        await self.factory.when_idle()

    # ------------------------------------------------------------------ a tenant

    async def tenant(self, phones: list[str], *, item: dict[str, Any] | None = None,
                     message: str = "system:demo-thanks", tariff: int = 1,
                     balance: int = 0, ext: dict[str, Any] | None = None,
                     **group: Any) -> int:
        acc, ivr = self.store.accounts, self.store.ivr
        group.setdefault("advanced_callblast", 0)
        gid = (await acc.create_group("g", tariff, server_id="FCC-NN",
                                      dialout_context="xvb-dialout", **group)).id
        user = await acc.create_user("613", "10001", gid, timezone="UTC")
        if balance:
            await acc.change_balance(user.id, balance, "top-up")
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        self.blast = await ivr.add_child(user.id, root.id, "5", "CallBlast", ext or {})
        await ivr.add_child(user.id, root.id, "7", "Callback", {"target": "2"})
        await ivr.add_child(user.id, root.id, "2", "DateTime", {"timezone": "UTC"})
        self.user_id = user.id
        self.group_id = gid
        self.item = await self.store.callblast.create_item(
            user.id, self.blast.id, name="promo", message=message,
            settings={"retries": 1, "retry_interval": 600, **(item or {})}, phones=phones)
        return user.id

    async def phones(self) -> dict[str, Any]:
        return {p.phone: p for p in await self.store.callblast.phones(self.user_id,
                                                                      self.item.id)}

    async def results(self) -> list[tuple[str, str]]:
        rows = await self.store.callblast.results(self.user_id, self.item.id)
        return sorted((r.phone, r.result) for r in rows)

    def dialed(self) -> list[str]:
        return [re.fullmatch(r"Local/([^@]+)@.*", r.channel)[1] for r in self.fake.originates]


class CallblastTests(OutboundCase):
    async def test_a_complete_run(self) -> None:
        self.fates.update({"101": ANSWER, "102": BUSY, "103": NOANSWER})
        await self.tenant(["101", "102", "103"])
        await self.start_outbound()
        report = await self.minute()
        self.assertEqual((report.placed, report.items), (3, 1), (report, self.logs))
        self.assertEqual(self.dialed(), ["101", "102", "103"])
        first = self.fake.originates[0]
        self.assertEqual((first.channel, first.context, first.exten, first.caller_id,
                          first.timeout_ms),
                         ("Local/101@xvb-dialout/n", "xvb-callblast", "s", "613", 30000))
        self.assertEqual(first.variables["__XVB_AC"], "10001")
        self.assertEqual(first.variables["XVB_CALL_TYPE"], "callblast")
        self.assertRegex(first.variables["XVB_CB_TOKEN"], r"^FCC-NN:[0-9a-f]{16}$")
        # one Originate action on the wire per phone, no more (the SLEEP between them is
        # measured in test_max_calls_sleep_and_the_nodes_load)
        sent = [r for r in self.fake.actions if dict(r[1]).get("Action") == "Originate"]
        self.assertEqual(len(sent), 3)
        # the person who answered heard the message, then the line went down
        (peer,) = self.sessions["101"]
        self.assertIn("STREAM FILE demo-thanks \"\"", peer.commands)
        self.assertEqual(peer.commands[-1], "HANGUP")
        self.assertEqual(await self.results(),
                         [("101", "answered"), ("102", "busy"), ("103", "noanswer")])
        phones = await self.phones()
        self.assertEqual((phones["101"].status, phones["102"].status, phones["103"].status),
                         ("done", "pending", "pending"))
        self.assertEqual(phones["102"].next_attempt_at - phones["102"].last_attempt_at, 600)
        (answered,) = [r for r in await self.store.callblast.results(self.user_id)
                       if r.result == "answered"]
        summary = [line for line in self.cdr_lines() if "TYPE=XVB" in line]
        self.assertEqual(len(summary), 1)
        self.assertIn(f"CALL_ID={answered.call_id}", summary[0])
        self.assertIn("CALLED_ID=101, CALLER_ID=613", summary[0])
        self.assertIn("CALL_TYPE=callblast", summary[0])
        step = next(line for line in self.cdr_lines() if "TYPE=CallBlast" in line)
        self.assertIn("EXT_NUMBER=5, ", step)
        self.assertTrue(step.endswith(f"DATA=ITEM={self.item.id}, PHONE=101, RESULT=answered"))
        start, stop = (int(re.search(rf"{k}_TIMESTAMP=(\d+)", summary[0])[1])
                       for k in ("START", "STOP"))
        self.assertEqual(answered.duration, stop - start)  # as long as the call
        self.assertGreaterEqual(answered.duration, 2)  # the message lasts 2 s
        # ten minutes later the busy and the unanswered phones are tried again, once
        self.fates.update({"102": ANSWER, "103": NOANSWER})
        for _ in range(9):
            await self.minute()
        self.assertEqual(len(self.dialed()), 3, "not before 600 s")
        for _ in range(3):
            await self.minute()
        self.assertEqual(self.dialed(), ["101", "102", "103", "102", "103"])
        phones = await self.phones()
        self.assertEqual([(p.status, p.attempts) for p in phones.values()],
                         [("done", 1), ("done", 2), ("failed", 2)])
        self.assertEqual((await self.store.callblast.get_item(self.user_id, self.item.id)
                          ).status, "done")
        report = await self.minute()
        self.assertEqual(report.placed, 0)

    async def test_a_forged_or_stale_callblast_request_is_put_down(self) -> None:
        await self.tenant(["101"])
        phone = (await self.phones())["101"]
        peer = await self.call(script="callblast", args=(str(phone.id), "FCC-NN:0123456789abcdef"))
        self.assertEqual(peer.commands, ["ANSWER", "HANGUP"])
        self.assertEqual(self.result, "NOUSER")
        self.assertEqual(await self.results(), [])
        peer = await self.call(script="callblast", args=("x",))
        self.assertEqual(peer.commands, ["ANSWER", "HANGUP"])
        self.assertEqual((await self.phones())["101"].status, "pending")

    async def test_max_calls_sleep_and_the_nodes_load(self) -> None:
        self.settings = replace(self.settings, callblast=replace(
            self.settings.callblast, max_calls=3, load_threshold=0.5))
        self.node_limit = 10
        phones = [str(200 + i) for i in range(12)]
        self.fates.update(dict.fromkeys(phones, RING))
        await self.tenant(phones, item={"ring_timeout": 150}, max_callblast_phones=20)
        await self.start_outbound()
        # When xvbd sent each Originate, on the reactor's clock, and how much of that clock
        # went by in the database and the node's counters meanwhile: the test clock moves on
        # while real sockets work, so a gap is SLEEP plus that work, to the step.
        times: list[float] = []
        busy = [0.0]
        originate = self.ami.originate

        async def timed(**kwargs: Any) -> Any:
            times.append(self.clock.seconds())
            busy.append(0.0)
            return await originate(**kwargs)

        def measured(fn: Callable[..., Any]) -> Callable[..., Any]:
            async def run(*args: Any, **kwargs: Any) -> Any:
                began = self.clock.seconds()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    busy[-1] += self.clock.seconds() - began
            return run
        self.ami.originate = timed  # type: ignore[method-assign]
        room, outbound = self.scheduler.room, self.store.outbound
        room.why_full = measured(room.why_full)  # type: ignore[method-assign]
        outbound.claim_phone = measured(outbound.claim_phone)  # type: ignore[method-assign]
        report = await self.minute(settle=False)
        del room.why_full, outbound.claim_phone
        self.assertEqual((report.placed, report.stopped), (3, "MAX_CALLS (3) placed"))
        gaps = [b - a - work for a, b, work in zip(times, times[1:], busy[1:], strict=False)]
        self.assertEqual(gaps, [2.0, 2.0])  # SLEEP apart, no more, no less
        # 3 still ringing; the node allows 10 × 0.5 = 5: two more, then it is full
        report = await self.minute(settle=False)
        self.assertEqual(report.placed, 2)
        self.assertIn("node load: 5 calls in progress; the node allows 10 × 0.5 = 5",
                      report.stopped)
        # the machine is busy: load average 4 where the node allows 8 × 0.5
        self.load = (4.0, 1.0, 1.0)
        await self.store.accounts.put_node("FCC-NN", limit_la_1=8.0)
        await self.settled()  # they ring out (no answer); the runs meanwhile call nobody
        report = await self.minute(settle=False)
        self.assertEqual(report.placed, 0)
        self.assertIn("load average (1 min) 4.00", report.stopped, report)
        self.assertEqual(len(self.fake.originates), 5)

    async def test_answering_machine_and_advanced_callblast(self) -> None:
        self.settings = replace(self.settings, callblast=replace(
            self.settings.callblast, check_amd=True))
        self.engine.settings = self.settings
        self.fates.update({"301": MACHINE, "302": ANSWER})
        self.callers["302"] = Caller(keys=["2"])
        await self.tenant(["301", "302"], advanced_callblast=1,
                          ext={"target": "", "repeat": 2})
        await self.start_outbound()
        await self.minute()
        self.assertEqual(await self.results(), [("301", "machine"), ("302", "answered")])
        machine, person = self.sessions["301"][0], self.sessions["302"][0]
        # the machine: AMD asked, the message (twice), the line down: no menu in spite of
        # the group's advanced callblast
        self.assertEqual([c for c in machine.commands if c.startswith(("STREAM", "GET VAR",
                                                                       "HANGUP"))],
                         ["GET VARIABLE AMDSTATUS", 'STREAM FILE demo-thanks ""',
                          'STREAM FILE demo-thanks ""', "HANGUP"])
        # the person: the message, then the tenant's menu, where 2 is the date and time
        self.assertTrue(any(c.startswith("STREAM FILE w ") for c in person.commands),
                        person.commands)
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in person.commands))
        lines = self.cdr_lines()
        self.assertTrue(any("AMD=MACHINE" in line and "RESULT=machine" in line
                            for line in lines))
        self.assertTrue(any("EXT_NUMBER=2, " in line and "TYPE=DateTime" in line
                            for line in lines))

    async def test_asterisk_restarts_mid_run(self) -> None:
        self.fates.update({"401": ANSWER, "402": RING, "403": ANSWER, "404": ANSWER})
        self.callers["401"] = Caller(hold_on=r"^STREAM FILE demo-thanks")
        await self.tenant(["401", "402", "403", "404"], item={"ring_timeout": 120})
        await self.start_outbound()
        self.clock.advance(60)  # the run starts: 401 answered, 402 rings, ...
        await self.until(lambda: len(self.fake.originates) >= 2 and "401" in self.sessions
                         and self.sessions["401"][0].holding.called, step=0.1)
        # Asterisk dies: the AMI session and the answered call's FastAGI session with it
        self.fake.crash()
        self.sessions["401"][0].transport.abortConnection()
        await self.until(lambda: self.scheduler._run is None, step=0.5)
        self.assertIn("AMI session lost", [r.stopped for r in self.scheduler.history])
        self.assertTrue(any("AMI connection to" in line and "lost" in line
                            for line in self.logs))
        await self.fake.restart()
        await self.until(lambda: self.ami.connected, step=1)
        # back: the phones not yet called go out in seconds, not at the next minute
        next_minute = T0 + 60 * (int(self.clock.seconds() - T0) // 60 + 1)
        await self.until(lambda: set(self.dialed()) == {"401", "402", "403", "404"}, step=0.1)
        self.assertLess(self.clock.seconds(), next_minute)
        await self.settled()  # 402's fate is not known: after its ring time it is given back
        phones = await self.phones()
        self.assertEqual((phones["401"].status, phones["401"].last_result), ("done", "answered"))
        self.assertEqual((phones["402"].status, phones["402"].attempts), ("pending", 0))
        self.fates["402"] = ANSWER
        await self.minute()
        self.assertEqual(sorted(self.dialed()), ["401", "402", "402", "403", "404"])
        phones = await self.phones()
        self.assertEqual({p.phone: p.status for p in phones.values()},
                         dict.fromkeys(["401", "402", "403", "404"], "done"))
        await self.minute()
        self.assertEqual(len(self.fake.originates), 5, "no phone is called twice")
        self.assertEqual(self.ami.sessions, 2)

    async def test_a_pause_holds_in_a_run_under_way_and_a_resume_calls_the_rest(self) -> None:
        self.fates.update({"101": BUSY, "102": ANSWER, "103": ANSWER})
        await self.tenant(["101", "102", "103"])
        await self.start_outbound()
        originate = self.ami.originate

        async def pause_then_ring(**kwargs: Any) -> Any:
            # the tenant presses Pause while the run's first call is being placed
            await self.store.callblast.set_paused(self.user_id, self.item.id, True)
            return await originate(**kwargs)
        self.ami.originate = pause_then_ring  # type: ignore[method-assign]
        report = await self.minute()
        del self.ami.originate
        self.assertEqual((report.placed, self.dialed()), (1, ["101"]))
        # the call that was ringing ends as it will, and is kept
        self.assertEqual(await self.results(), [("101", "busy")])
        item = await self.store.callblast.get_item(self.user_id, self.item.id)
        self.assertEqual(item.status, "paused")
        # paused: the busy phone's retry (due in 600 s) and the other two wait
        for _ in range(12):
            report = await self.minute()
            self.assertEqual(report.placed, 0)
        self.assertEqual(self.dialed(), ["101"])
        phones = await self.phones()
        self.assertEqual([p.status for p in phones.values()], ["pending"] * 3)
        item = await self.store.callblast.set_paused(self.user_id, self.item.id, False)
        self.assertEqual(item.status, "active")
        await self.minute()
        self.assertEqual(self.dialed(), ["101", "102", "103", "101"])
        self.assertEqual(await self.results(), [("101", "busy"), ("101", "busy"),
                                                ("102", "answered"), ("103", "answered")])
        item = await self.store.callblast.get_item(self.user_id, self.item.id)
        self.assertEqual(item.status, "done")

    async def test_a_refused_login_places_no_call(self) -> None:
        await self.tenant(["501"])
        await self.start_outbound(secret="wrong")
        await self.until(lambda: any("refused the AMI login" in line for line in self.logs))
        report = await self.minute()
        self.assertEqual((report.placed, report.stopped), (0, "no AMI session"))
        self.assertEqual(self.fake.originates, [])
        self.assertTrue(any(line.startswith("warn: callblast: no AMI session") for line in
                            self.logs))
        self.assertEqual((await self.phones())["501"].status, "pending")

    async def test_hours_money_and_limits_hold_calls_back(self) -> None:
        tariff = await self.store.accounts.create_tariff("priced", 1, callblast_call=UNIT,
                                                         callblast_minute=UNIT)
        await self.tenant(["601"], item={"start": "12:00", "end": "13:00"}, tariff=tariff.id)
        await self.start_outbound()
        report = await self.minute()
        self.assertEqual(report.skipped, {"outside its hours": 1})
        await self.store.callblast.update_item(self.user_id, self.item.id,
                                               settings={"start": "10:00", "end": "13:00"})
        report = await self.minute()
        self.assertEqual(report.skipped, {"no money": 1})
        await self.store.accounts.change_balance(self.user_id, 5 * UNIT, "top-up")
        await self.minute()
        self.assertEqual(self.dialed(), ["601"])
        summary = next(line for line in self.cdr_lines() if "TYPE=XVB" in line)
        self.assertIn("CALL_TYPE=callblast", summary)
        start, stop = (int(re.search(rf"{k}_TIMESTAMP=(\d+)", summary)[1])
                       for k in ("START", "STOP"))
        cost = round(float(re.search(r", COST=([\d.]+), ", summary)[1]) * UNIT)
        # 1 a call, 1 a minute by the second (the second rounded up)
        self.assertGreaterEqual(cost, UNIT + (stop - start - 1) * UNIT // 60)
        self.assertLessEqual(cost, UNIT + (stop - start + 1) * UNIT // 60 + 1)
        self.assertEqual((await self.store.accounts.get_user(self.user_id)).balance,
                         5 * UNIT - cost)
        await self.store.accounts.set_type_limit(
            (await self.store.accounts.get_user(self.user_id)).group_id, "CallBlast", 0)
        await self.store.callblast.add_phone(self.user_id, self.item.id, "602")
        self.directory.clear()
        report = await self.minute()
        self.assertEqual(report.skipped, {"CallBlast not allowed to the group": 1})


CallblastOnSQLite, CallblastOnMariaDB = on_both_backends(CallblastTests)


class CallbackTests(OutboundCase):
    async def test_a_caller_is_called_back_and_served(self) -> None:
        tariff = await self.store.accounts.create_tariff("cb", 1, callback_call=2 * UNIT)
        await self.tenant(["1"], tariff=tariff.id, balance=10 * UNIT)
        await self.store.callblast.update_item(self.user_id, self.item.id, status="paused")
        await self.store.accounts.assign_did("100", self.user_id)
        await self.start_outbound()
        self.fates["79005551234"] = BUSY
        await self.call(Caller(keys=["7"]), args=("100",), callerid="79005551234")
        (request,) = await self.store.features.callbacks(self.user_id)
        self.assertEqual((request.phone, request.target_path), ("79005551234", "2"))
        await self.until(lambda: len(self.fake.originates) == 1)  # a few seconds after
        placed = self.fake.originates[0]
        self.assertEqual((placed.channel, placed.context, placed.caller_id),
                         ("Local/79005551234@xvb-dialout/n", "xvb-callback", "613"))
        await self.settled()
        (request,) = await self.store.features.callbacks(self.user_id)
        self.assertEqual((request.status, request.attempts, request.last_result),
                         ("pending", 1, "busy"))
        said = f"callback {request.id} of user {self.user_id} to 79005551234: "
        self.assertEqual([line for line in self.logs if "callback " in line], [
            f"info: {said}busy (Asterisk reason 5); tried again in 120 s (1 of 3 attempts "
            "made)"])
        # two minutes on, the sweep calls again; this time they answer and land in 2
        self.fates["79005551234"] = ANSWER
        await self.until(lambda: len(self.fake.originates) == 2, step=5)
        await self.settled()
        (request,) = await self.store.features.callbacks(self.user_id)
        self.assertEqual((request.status, request.attempts), ("done", 2))
        self.assertEqual([line for line in self.logs if "callback " in line][1:], [
            f"info: {said}answered; served as call {request.call_id}"])
        (peer,) = self.sessions["79005551234"]
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))
        summary = [line for line in self.cdr_lines() if "CALL_TYPE=callback" in line]
        self.assertEqual(len(summary), 1)
        self.assertIn(f"CALL_ID={request.call_id}", summary[0])
        self.assertIn("CALLED_ID=79005551234, CALLER_ID=613", summary[0])
        self.assertIn(", COST=2, ", summary[0])


    async def test_every_outcome_is_logged_until_the_last_attempt(self) -> None:
        await self.tenant(["1"])
        await self.store.callblast.update_item(self.user_id, self.item.id, status="paused")
        await self.store.accounts.assign_did("100", self.user_id)
        await self.start_outbound()
        self.fates["79005551234"] = NOANSWER
        await self.call(Caller(keys=["7"]), args=("100",), callerid="79005551234")
        await self.until(lambda: len(self.fake.originates) == 1)
        await self.settled()
        self.fates["79005551234"] = FAIL
        await self.until(lambda: len(self.fake.originates) == 2, step=5)
        await self.settled()
        self.fates["79005551234"] = BUSY
        await self.until(lambda: len(self.fake.originates) == 3, step=5)
        await self.settled()
        (request,) = await self.store.features.callbacks(self.user_id)
        self.assertEqual((request.status, request.attempts), ("failed", 3))
        said = f"info: callback {request.id} of user {self.user_id} to 79005551234: "
        self.assertEqual([line for line in self.logs if "callback " in line], [
            f"{said}no answer (Asterisk reason 3); tried again in 120 s (1 of 3 attempts made)",
            f"{said}failed (Asterisk reason 0); tried again in 120 s (2 of 3 attempts made)",
            f"{said}busy (Asterisk reason 5); given up after 3 attempt(s)"])


CallbackOnSQLite, CallbackOnMariaDB = on_both_backends(CallbackTests)


class SharedTests(OutboundCase):
    async def test_two_xvbd_processes_dial_each_phone_once(self) -> None:
        redis = connect()
        prefix = new_prefix()
        self.addCleanup(redis.disconnect)
        self.addCleanup(lambda: Deferred.fromCoroutine(drop_prefix(redis, prefix)))
        phones = [str(700 + i) for i in range(8)]
        await self.tenant(phones)
        # The test clock runs a second per few real milliseconds: the Redis timeout is set
        # far past what a real Redis answer takes on it, or Redis would seem away.
        one = RedisCounters(redis, prefix=prefix, owner="xvbd-1", clock=self.clock,
                            timeout=3600)
        two = RedisCounters(redis, prefix=prefix, owner="xvbd-2", clock=self.clock,
                            timeout=3600)
        first = await self.start_outbound(counters=one)
        first_dialer = self.dialer
        second = await self.start_outbound(counters=two, fake=self.fake)
        # While the other process works the item, this one leaves it alone.
        key = f"callblast:item:{self.item.id}"
        lease = await two.acquire(key, 1)
        run = Deferred.fromCoroutine(first.run_once())
        await self.until(lambda: run.called)
        report = self.successResultOf(run)
        self.assertEqual((report.placed, report.skipped), (0, {"worked by another xvbd": 1}))
        await two.release(key, lease)
        # Both run the same minute: every phone is dialed once, by one of them.
        self.clock.advance(60)
        await self.until(lambda: first._run is None and second._run is None and
                         len(first.history) >= 2 and len(second.history) >= 1)
        await self.until(lambda: not first_dialer.attempts and not self.dialer.attempts)
        await self.settled()
        placed = [r.placed for r in (*first.history, *second.history)]
        self.assertEqual(sum(placed), 8)
        self.assertEqual(sorted(self.dialed()), phones)
        self.assertEqual(len(await self.results()), 8)


SharedOnMariaDB = on_both_backends(SharedTests)[1]
