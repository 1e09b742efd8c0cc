"""Guessing codes and PINs, counted by the call's source (the peer address, the trunk, the
channel), whatever the caller id says: lockouts per source and per (account, source), that
grow longer, never lock the owner calling from elsewhere, and are logged once, journaled,
listed on /ai/lockouts (and the API) and lifted there.  Through the real FastAGI protocol,
on both backends; the shared case with the real Redis."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.peers.agi import AsteriskAGI, Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from tests.support.redis import connect, drop_prefix, new_prefix
from tests.support.web import ADMIN_HASH, PAGES, Browser
from xvbd.agi.server import FastAGIFactory
from xvbd.counters import RedisCounters
from xvbd.demo import seed_demo
from xvbd.engine.directory import Directory
from xvbd.engine.engine import Engine
from xvbd.engine.guard import address_source, channel_source
from xvbd.store.lockouts import Lockouts, lockout_seconds
from xvbd.web.admin import AdminApp
from xvbd.web.root import WebRoot, web_site

ATTACKER, OWNER, STRANGER = "203.0.113.9", "198.51.100.4", "192.0.2.50"
WRONG_CODES = ["1111", "2222", "3333"]


def code_prompts(peer: AsteriskAGI) -> int:
    return sum(c.startswith(("GET DATA agent-user", "GET DATA pbx-invalid"))
               for c in peer.commands)


def pin_prompts(peer: AsteriskAGI) -> int:
    return sum(c.startswith(("GET DATA agent-pass", "GET DATA auth-incorrect"))
               for c in peer.commands)


class GuardCase(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        # The web reads the lockouts in force on the test's clock, as the engine writes them.
        self.store.lockouts = Lockouts(self.db, self.clock.seconds)
        self.logs: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if str(event.get("log_namespace", "")).startswith("xvbd."):
                self.logs.append(f"{event['log_level'].name}: {formatEvent(event)}")
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def warnings(self) -> list[str]:
        return [line for line in self.logs if line.startswith("warn: ")]

    async def from_(self, peer: str, keys: list[str | None], number: str = "613",
                    callerid: str = "6135550123") -> AsteriskAGI:
        """A call to ``number`` from the SIP peer ``peer`` (its address, with a port)."""
        return await self.call(Caller(keys=keys), args=(number, peer), callerid=callerid)


class SourceTests(GuardCase):
    async def test_spoofed_caller_ids_from_one_source_are_refused(self) -> None:
        """The issue's case: 18 guesses from 6 caller ids (and 6 source ports) of one
        address.  The 10th wrong code locks the address out, whatever it says it is."""
        await seed_demo(self.store)
        results, prompts = [], []
        for n in range(6):
            peer = await self.from_(f"{ATTACKER}:{5060 + n}", WRONG_CODES,
                                    callerid=f"7916000000{n}")
            results.append(self.result)
            prompts.append(code_prompts(peer))
        self.assertEqual(results, ["NOUSER"] * 3 + ["THROTTLED"] * 3)
        self.assertEqual(prompts, [3, 3, 3, 1, 0, 0], "10 guesses, not 18")
        self.assertIn('STREAM FILE please-try-call-later ""', peer.commands)
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual((lockout.source, lockout.target, lockout.failures, lockout.called_id,
                          lockout.caller_id), (ATTACKER, "", 10, "613", "79160000003"))
        # The owner, calling from elsewhere, is not touched.
        await self.from_(f"{OWNER}:5060", ["10001", "911", "*"])
        self.assertEqual(self.result, "OK")
        # Nor is the attacker's right code: the source is refused before it is asked.
        peer = await self.from_(f"{ATTACKER}:5099", ["10001", "911"])
        self.assertEqual((self.result, code_prompts(peer)), ("THROTTLED", 0))

    async def test_guesses_spread_over_called_numbers_from_one_source(self) -> None:
        await seed_demo(self.store)
        prompts = []
        for number in ("613", "614", "615", "616", "617"):
            peer = await self.from_(f"{ATTACKER}:5060", WRONG_CODES, number=number)
            prompts.append(code_prompts(peer))
        self.assertEqual(prompts, [3, 3, 3, 1, 0])
        self.assertEqual(self.result, "THROTTLED")
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual((lockout.source, lockout.called_id), (ATTACKER, "616"))

    async def test_the_owner_calling_from_elsewhere_gets_in_while_the_attacker_is_locked(
            self) -> None:
        await seed_demo(self.store)
        await self.from_(f"{ATTACKER}:5060", ["10001", "0", "1", "2"])
        self.assertEqual(self.result, "BADPIN")
        peer = await self.from_(f"{ATTACKER}:5060", ["10001", "3", "4", "5"])
        self.assertEqual((self.result, pin_prompts(peer)), ("THROTTLED", 2),
                         "the 5th wrong PIN of 613#10001 from this source ends the call")
        peer = await self.from_(f"{ATTACKER}:5061", ["10001", "911"], callerid="6135550123")
        self.assertEqual((self.result, pin_prompts(peer)), ("THROTTLED", 0),
                         "not even the right PIN is asked for, whatever the caller id")
        peer = await self.from_(f"{OWNER}:5060", ["10001", "911", "*"])
        self.assertEqual(self.result, "OK", "the owner from another source gets in")
        # The lockout is of that source at that account: its other guesses still count
        # towards its own limit, not locked yet.
        peer = await self.from_(f"{ATTACKER}:5060", ["1234", None, None])
        self.assertEqual((self.result, code_prompts(peer)), ("NOUSER", 3))
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual((lockout.source, lockout.target, lockout.user_id, lockout.what),
                         (ATTACKER, "613#10001", 1, "the PIN of 613#10001"))

    async def test_codes_guessed_in_the_sip_to_header_count_too(self) -> None:
        await seed_demo(self.store)
        for code in range(20001, 20011):  # 10 users of 613 that do not exist
            await self.call(Caller(), script="sip", args=(f"sip:{code}@613.comp.ru",
                                                          f"{ATTACKER}:5060"))
        self.assertEqual(self.result, "THROTTLED", "the 10th locks the source out")
        peer = await self.call(Caller(keys=["*"]), script="sip",
                               args=("sip:10001@613.comp.ru", f"{ATTACKER}:5060"))
        self.assertEqual((self.result, pin_prompts(peer)), ("THROTTLED", 0))
        await self.call(Caller(keys=["911", "*"]), script="sip",
                        args=("sip:10001@613.comp.ru", f"{OWNER}:5060"))
        self.assertEqual(self.result, "OK")

    async def test_a_pstn_gateway_vouches_for_its_callers(self) -> None:
        """10.0.0.1 is this test's [COMMON] PSTN_GW: everyone on the telephone network comes
        through it, so its callers are told apart by the caller id it passes on."""
        await seed_demo(self.store)
        for _ in range(4):
            await self.from_("10.0.0.1:5060", WRONG_CODES, callerid="79161112233")
        self.assertEqual(self.result, "THROTTLED")
        await self.from_("10.0.0.1:5060", ["10001", "911", "*"], callerid="6135550123")
        self.assertEqual(self.result, "OK")
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual(lockout.source, "10.0.0.1 caller 79161112233")

    async def test_without_an_address_the_channel_is_the_source(self) -> None:
        await seed_demo(self.store)
        for n in range(4):  # Local channels of one context, caller ids all different
            await self.call(Caller(keys=WRONG_CODES), args=("613",), callerid=f"1{n}",
                            channel=f"Local/613@from-provider-0000000{n};2")
        self.assertEqual(self.result, "THROTTLED")
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual(lockout.source, "Local/613@from-provider")
        await self.call(Caller(keys=["10001", "911", "*"]), args=("613",),
                        channel="PJSIP/trunk-0000001a")
        self.assertEqual(self.result, "OK", "another trunk")

    def test_sources_from_channels_and_addresses(self) -> None:
        self.assertEqual([channel_source(c) for c in (
            "PJSIP/trunk-0000001", "Local/613@from-provider-00000001;2", "DAHDI/1-1",
            "IAX2/peer-1234", "", "PJSIP/trunk")],
            ["PJSIP/trunk", "Local/613@from-provider", "DAHDI/1", "IAX2/peer",
             "unknown channel", "PJSIP/trunk"])
        self.assertEqual([address_source(p) for p in (
            "192.0.2.7:5060", "192.0.2.7", "[2001:db8:1:2:aaaa::1]:5060", "2001:db8:1:2::9",
            "[::ffff:192.0.2.7]:5060", "", "pbx.example.com")],
            ["192.0.2.7", "192.0.2.7", "2001:db8:1:2::/64", "2001:db8:1:2::/64",
             "192.0.2.7", "", ""])


SourceOnSQLite, SourceOnMariaDB = on_both_backends(SourceTests)


class EscalationTests(GuardCase):
    extra_config = "[ATTEMPTS]\nSOURCE_FAILURES = 3\nLOCKOUT_MAX = 20000\n"

    async def _lock(self) -> None:
        await self.from_(f"{ATTACKER}:5060", WRONG_CODES)
        self.assertEqual(self.result, "THROTTLED")

    async def test_a_source_that_keeps_failing_is_locked_out_longer_each_time(self) -> None:
        await seed_demo(self.store)
        lengths = []
        for _ in range(4):
            await self._lock()
            (lockout,) = await self.store.lockouts.current()
            lengths.append((lockout.level, lockout.ends_at - lockout.started_at))
            self.clock.advance(lockout.ends_at - self.clock.seconds() - 2)
            peer = await self.from_(f"{ATTACKER}:5060", ["10001", "911"])
            self.assertEqual((self.result, code_prompts(peer)), ("THROTTLED", 0),
                             "2 s before the end")
            self.clock.advance(max(0, lockout.ends_at - self.clock.seconds()))
        self.assertEqual(lengths, [(1, 900), (2, 3600), (3, 14400), (4, 20000)],
                         "4 times longer each time, never past LOCKOUT_MAX")
        # Quiet for LOCKOUT_MAX: it starts again from the first.
        self.clock.advance(20001)
        await self._lock()
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual((lockout.level, lockout.ends_at - lockout.started_at), (1, 900))
        # A lockout the operator lifted was a mistake: it does not count.
        await self.store.lockouts.lift(lockout.id, "admin")
        await self._lock()
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual(lockout.level, 1)

    def test_lockout_lengths_are_bounded(self) -> None:
        self.assertEqual([lockout_seconds(n, 900, 86400) for n in (0, 1, 2, 3, 4, 5, 99)],
                         [900, 900, 3600, 14400, 57600, 86400, 86400])


EscalationOnSQLite, EscalationOnMariaDB = on_both_backends(EscalationTests)


class GuardTests(GuardCase):
    """Many sources at one account or one number: a slow-down for strangers, never a
    lockout of the account."""

    extra_config = "[ATTEMPTS]\nGUARD_FAILURES = 4\n"

    async def test_an_account_guessed_at_from_many_sources_slows_strangers_only(self) -> None:
        await seed_demo(self.store)
        await self.from_(f"{OWNER}:5060", ["10001", "911", "*"])
        self.assertEqual(self.result, "OK", "the owner's phone: known from now on")
        for source in ("203.0.113.1", "203.0.113.2"):
            peer = await self.from_(f"{source}:5060", ["10001", "1", "2", None])
            self.assertEqual((self.result, pin_prompts(peer)), ("BADPIN", 3))
        self.assertEqual([line for line in self.warnings() if "all sources" in line], [
            "warn: account:1: 4 failures from all sources within 15 min; callers from sources "
            "that never got in there now get one try per call (those that did are not "
            "touched). Nothing to do; the lockouts of single sources are on /ai/lockouts."])
        peer = await self.from_(f"{STRANGER}:5060", ["10001", "3", "911"])
        self.assertEqual((self.result, pin_prompts(peer)), ("BADPIN", 1), "one try a call")
        peer = await self.from_(f"{STRANGER}:5060", ["10001", "911", "*"])
        self.assertEqual(self.result, "OK", "a slow-down, not a lockout")
        peer = await self.from_(f"{OWNER}:5070", ["10001", "4", "5", "911", "*"])
        self.assertEqual((self.result, pin_prompts(peer)), ("OK", 3),
                         "the owner's known source keeps its three tries")
        self.assertEqual(await self.store.lockouts.current(), [])

    async def test_a_number_guessed_at_from_many_sources_slows_strangers_only(self) -> None:
        await seed_demo(self.store)
        await self.from_(f"{OWNER}:5060", ["10001", "911", "*"])
        for source in ("203.0.113.1", "203.0.113.2"):
            await self.from_(f"{source}:5060", ["1111", "2222", None])
        peer = await self.from_(f"{STRANGER}:5060", WRONG_CODES)
        self.assertEqual((self.result, code_prompts(peer)), ("NOUSER", 1))
        peer = await self.from_(f"{OWNER}:5060", ["5555", "10001", "911", "*"])
        self.assertEqual((self.result, code_prompts(peer)), ("OK", 2))
        self.assertEqual(await self.store.lockouts.current(), [])


GuardOnSQLite, GuardOnMariaDB = on_both_backends(GuardTests)


class OperatorTests(GuardCase):
    """What the operator sees of a lockout: one WARN, a journal row, /ai/lockouts and the
    API, and lifting it there."""

    def setUp(self) -> None:
        super().setUp()
        admin = AdminApp(self.settings, self.store, self.counters, PAGES)
        root = WebRoot(self.db, "FCC-NN", clock=reactor, admin=admin)
        listener = reactor.listenTCP(0, web_site(root.app.resource(), ()),
                                     interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        self.base = f"http://127.0.0.1:{listener.getHost().port}"

    async def lock_attacker(self) -> str:
        await seed_demo(self.store)
        await self.from_(f"{ATTACKER}:5060", ["10001", "0", "1", "2"], callerid="7000001")
        await self.from_(f"{ATTACKER}:5060", ["10001", "3", "4"], callerid="7000002")
        self.assertEqual(self.result, "THROTTLED")
        return str(self.calls[-1].call_id)

    async def api(self, method: str, path: str) -> tuple[int, Any]:
        auth = "Basic " + base64.b64encode(b"admin:admin-secret").decode()
        response = await Agent(reactor).request(method.encode(), (self.base + path).encode(),
                                                Headers({"Authorization": [auth]}))
        return response.code, json.loads(await readBody(response))

    async def test_a_lockout_is_logged_once_journaled_listed_and_lifted(self) -> None:
        call_id = await self.lock_attacker()
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual(self.warnings(), [
            f"warn: lockout {lockout.id}: the PIN of 613#10001 refused from {ATTACKER} until "
            "2010-09-29 11:09:55 UTC (lockout 1 in a row, after 5 wrong), 15 min; the last "
            f"try was call {call_id} to 613 (caller id 7000002). A source that keeps failing "
            "is locked out longer each time. If it is a customer's own phone system, lift it "
            "on the operator's web (Lockouts, /ai/lockouts); otherwise nothing to do."])
        await self.from_(f"{ATTACKER}:5060", ["10001", "911"])
        self.assertEqual(self.result, "THROTTLED")
        self.assertEqual(len(self.warnings()), 1, "once per lockout, not once per call")
        entry = (await self.store.journal.all(limit=1))[0]
        self.assertEqual((entry.actor_kind, entry.actor, entry.address, entry.user_id,
                          entry.object_kind, entry.object_id, entry.field, entry.new_value),
                         ("system", "xvbd", ATTACKER, 1, "lockouts", str(lockout.id),
                          "lockout", f"the PIN of 613#10001 refused from {ATTACKER} until "
                          "2010-09-29 11:09:55 UTC (lockout 1 in a row, after 5 wrong)"))
        # The operator's page lists it, with a button to lift it.
        await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)
        browser = Browser(self.base)
        await browser.log_in("/ai/login", {"login": "admin", "password": "admin-secret"})
        page = await browser.get("/ai/lockouts")
        self.assertEqual(page.code, 200)
        row = re.search(rf"<tr><td class=\"num\">{lockout.id}</td>.*?</tr>", page.text, re.S)
        assert row is not None, page.text
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row[0], re.S)
        self.assertEqual(cells[:9], [str(lockout.id), ATTACKER, "the PIN of 613#10001", "613",
                                     "7000002", "2010-09-29 10:54:55", "2010-09-29 11:09:55", "5",
                                     "1"])
        self.assertIn(f'action="/ai/lockouts/{lockout.id}/lift"', row[0])
        # The API says the same.
        code, body = await self.api("GET", "/ai/api/lockouts")
        self.assertEqual(code, 200)
        self.assertEqual([(lo["id"], lo["source"], lo["target"], lo["what"], lo["failures"])
                          for lo in body["lockouts"]],
                         [(lockout.id, ATTACKER, "613#10001", "the PIN of 613#10001", 5)])
        # Lifting needs the page's CSRF token.
        refused = await browser.post(f"/ai/lockouts/{lockout.id}/lift", csrf="forged")
        self.assertEqual(refused.code, 403)
        self.assertEqual(len(await self.store.lockouts.current()), 1)
        lifted = await browser.post(f"/ai/lockouts/{lockout.id}/lift", csrf=page.csrf)
        self.assertEqual(lifted.code, 200)
        self.assertIn(f"Lockout {lockout.id} lifted: {ATTACKER} may try again.", lifted.text)
        self.assertIn("No source is locked out.", lifted.text)
        again = await browser.post(f"/ai/lockouts/{lockout.id}/lift", csrf=page.csrf)
        self.assertEqual(again.code, 404)
        self.assertIn("is not in force", again.text)
        journal = await self.store.journal.all(limit=2)
        self.assertEqual(sorted((e.actor_kind, e.actor, e.field, e.new_value, e.user_id)
                                for e in journal),
                         [("admin", "admin", "lifted_at", str(int(self.clock.seconds())), 1),
                          ("admin", "admin", "lifted_by", "admin", 1)])
        await self.from_(f"{ATTACKER}:5060", ["10001", "911", "*"])
        self.assertEqual(self.result, "OK", "the source may try again")

    async def test_lifting_through_the_api(self) -> None:
        await self.lock_attacker()
        await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)
        (lockout,) = await self.store.lockouts.current()
        code, body = await self.api("POST", f"/ai/api/lockouts/{lockout.id}/lift")
        self.assertEqual((code, body["lifted_by"], body["id"]), (200, "admin", lockout.id))
        code, body = await self.api("POST", f"/ai/api/lockouts/{lockout.id}/lift")
        self.assertEqual(code, 404)
        self.assertIn("not in force", json.dumps(body))
        self.assertEqual(await self.store.lockouts.current(), [])


OperatorOnSQLite, OperatorOnMariaDB = on_both_backends(OperatorTests)


class SharedTests(GuardCase):
    """Two xvbd processes (engines on two ports) sharing one Redis and one database."""

    async def test_two_xvbd_count_one_source_together_and_both_refuse_it(self) -> None:
        redis = connect()
        prefix = new_prefix()
        self.addCleanup(redis.disconnect)
        self.addCleanup(lambda: Deferred.fromCoroutine(drop_prefix(redis, prefix)))
        # The test clock runs far ahead of real time: a Redis timeout it cannot reach.
        one = RedisCounters(redis, prefix=prefix, owner="xvbd-1", clock=self.clock,
                            timeout=3600)
        two = RedisCounters(redis, prefix=prefix, owner="xvbd-2", clock=self.clock,
                            timeout=3600)
        self.engine.counters = one
        other = Engine(self.settings, self.store, Directory(self.store, self.clock), two,
                       self.emitter, self.clock, media=self.media, tts=self.engine.tts)
        make_call = other.new_call

        def recorded(*args: Any) -> Any:
            self.calls.append(make_call(*args))
            return self.calls[-1]
        other.new_call = recorded  # type: ignore[method-assign]
        factory = FastAGIFactory(other, clock=reactor, env_timeout=5)
        listener = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        ports = (self.port, listener.getHost().port)
        await seed_demo(self.store)
        results, prompts = [], []
        for n in range(6):  # 3 wrong codes a call, to either xvbd in turn
            self.port = ports[n % 2]
            peer = await self.from_(f"{ATTACKER}:{5060 + n}", WRONG_CODES, callerid=f"9{n}")
            await factory.when_idle()
            results.append(self.result)
            prompts.append(code_prompts(peer))
        self.assertEqual(results, ["NOUSER"] * 3 + ["THROTTLED"] * 3)
        self.assertEqual(prompts, [3, 3, 3, 1, 0, 0], "10 guesses in all, counted together")
        self.assertEqual(len([w for w in self.warnings() if "lockout" in w]), 1)
        (lockout,) = await self.store.lockouts.current()
        self.assertEqual(lockout.source, ATTACKER)
        # The owner is known on both once it got in on one.
        self.port = ports[0]
        await self.from_(f"{OWNER}:5060", ["10001", "911", "*"])
        self.assertEqual(self.result, "OK")
        self.assertTrue(await two.marked(f"known:user:1@{OWNER}"))


SharedOnSQLite, SharedOnMariaDB = on_both_backends(SharedTests)
