"""The rules of outbound calls that need no Asterisk: an item's calling hours, what may be
dialed, the node's room (LOAD_THRESHOLD × limits), and the claims and outcomes of attempts
in the store (one claim per phone, outcomes once, retries, tenants apart)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.support.db import on_both_backends
from xvbd.counters import LocalCounters
from xvbd.engine.types import SettingsError, read_settings
from xvbd.nodestats import node_key
from xvbd.outbound.callblast import ItemSettings
from xvbd.outbound.dialer import NodeRoom, caller_id, local_channel, new_token
from xvbd.store.callblast import LimitReached
from xvbd.store.outbound import _due


def at(text: str, tz: str = "Europe/Moscow") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


class ItemRulesTests(TestCase):
    def test_calling_hours_in_the_tenants_timezone(self) -> None:
        item = ItemSettings(days="12345", start="09:00", end="18:00")
        # 2026-11-26 is a Thursday.
        self.assertTrue(item.window_open(at("2026-11-26T09:00"), "Europe/Moscow"))
        self.assertTrue(item.window_open(at("2026-11-26T18:00"), "Europe/Moscow"))
        self.assertFalse(item.window_open(at("2026-11-26T08:59"), "Europe/Moscow"))
        self.assertFalse(item.window_open(at("2026-11-28T12:00"), "Europe/Moscow"))  # Sat
        # 09:00 in Moscow is 06:00 UTC: the same moment, another tenant's clock.
        self.assertFalse(item.window_open(at("2026-11-26T07:00"), "UTC"))

    def test_hours_past_midnight_and_a_start_moment(self) -> None:
        night = ItemSettings(days="5", start="22:00", end="02:00")
        self.assertTrue(night.window_open(at("2026-11-27T23:30"), "Europe/Moscow"))  # Fri
        self.assertTrue(night.window_open(at("2026-11-28T01:30"), "Europe/Moscow"))  # Sat am
        self.assertFalse(night.window_open(at("2026-11-28T23:30"), "Europe/Moscow"))
        later = ItemSettings(start="00:00", end="23:59", start_at=int(at("2026-12-01T10:00")))
        self.assertFalse(later.window_open(at("2026-11-30T10:00"), "Europe/Moscow"))
        self.assertTrue(later.window_open(at("2026-12-01T10:00"), "Europe/Moscow"))

    def test_settings_are_checked_by_name(self) -> None:
        for bad, words in (({"retries": 11}, "retries is 0 to 10"),
                           ({"ring_timeout": 1}, "ring_timeout"),
                           ({"retry_interval": 5}, "retry_interval"),
                           ({"days": "8"}, "days are digits"),
                           ({"start": "25:00"}, "start is a time of day"),
                           ({"volume": 3}, "unknown setting volume"),
                           ({"retries": "2"}, "retries must be a whole number")):
            with self.assertRaises(SettingsError) as caught:
                read_settings(ItemSettings, bad)
            self.assertIn(words, str(caught.exception))

    def test_what_may_be_dialed(self) -> None:
        self.assertEqual(local_channel("+79001234567", "xvb-dialout"),
                         "Local/+79001234567@xvb-dialout/n")
        for phone, context in (("7900/1", "ctx"), ("1@evil", "ctx"), ("", "ctx"),
                               ("123", "ctx,1"), ("123", "a b"), ("123", "")):
            with self.assertRaises(ValueError):
                local_channel(phone, context)
        self.assertEqual(caller_id("613"), "613")
        self.assertEqual(caller_id("+7 (495) 123", 'Shop "Best" <x>'), '"Shop Best x" <+7495123>')
        token = new_token("FCC-NN")
        self.assertRegex(token, r"^FCC-NN:[0-9a-f]{16}$")
        self.assertNotEqual(token, new_token("FCC-NN"))


class RoomTests:
    async def test_load_threshold_times_the_node_limits(self) -> None:
        clock = Clock()
        counters = LocalCounters(clock)
        await self.store.accounts.put_node("N1", limit_calls=100, limit_la_1=4.0)
        load = [0.5, 0.5, 0.5]
        room = NodeRoom("N1", self.store.accounts.get_node, counters, 0.9, lambda: tuple(load))
        for _ in range(85):
            await counters.acquire(node_key("N1"), 0)
        self.assertEqual(await room.why_full(ringing=4), "")  # 89 busy: one more is 90
        full = await room.why_full(ringing=5)  # 90 busy
        self.assertIn("90 calls in progress; the node allows 100 × 0.9 = 90", full)
        load[0] = 3.6  # 0.9 × 4.0
        self.assertIn("load average (1 min) 3.60", await room.why_full(ringing=0))
        await self.store.accounts.put_node("N1", limit_calls=0, limit_la_1=0)
        self.assertEqual(await room.why_full(ringing=1000), "")  # no limits, no stop


RoomOnSQLite, RoomOnMariaDB = on_both_backends(RoomTests)


class AttemptTests:
    async def tenant(self, name: str, voice: str, server_id: str = "N1", **group: object) -> tuple[int, int]:
        acc = self.store.accounts
        gid = (await acc.create_group(name, 1, server_id=server_id,
                                      dialout_context="xvb-dialout", **group)).id
        user = await acc.create_user(voice, "10001", gid)
        root = await self.store.ivr.create_root(user.id, "CallBlast", {})
        return user.id, root.id

    async def test_a_phone_is_claimed_once_and_settled_once(self) -> None:
        alice, ext = await self.tenant("a", "613")
        cb, out = self.store.callblast, self.store.outbound
        item = await cb.create_item(alice, ext, message="m", phones=["101", "102"])
        (due,) = await out.due_items("N1", 1000)
        self.assertEqual((due.item.id, due.access_code, due.dialout_context, due.item_rank),
                         (item.id, "10001", "xvb-dialout", 0))
        self.assertEqual(await out.due_items("OTHER-NODE", 1000), [])
        first = await out.claim_phone(item.id, "t1", 1000, 1150)
        second = await out.claim_phone(item.id, "t2", 1000, 5000)
        self.assertEqual((first.phone, second.phone), ("101", "102"))
        self.assertIsNone(await out.claim_phone(item.id, "t3", 1000, 1150))
        # busy: due again in 600 s while attempts remain
        kept = await out.finish_attempt(first.id, "t1", "busy", 1010, max_attempts=2,
                                        retry_in=600, detail="Asterisk reason 5")
        self.assertEqual((kept.result, kept.detail), ("busy", "Asterisk reason 5"))
        # the same report again, or with another token: nothing changes
        self.assertIsNone(await out.finish_attempt(first.id, "t1", "busy", 1011))
        self.assertIsNone(await out.finish_attempt(second.id, "t1", "answered", 1011))
        self.assertIsNone(await out.claim_phone(item.id, "t4", 1609, 1800))
        again = await out.claim_phone(item.id, "t4", 1610, 1800)
        self.assertEqual(again.id, first.id)
        answered = await out.answer_attempt(again.id, "t4", "answered", 1620, "CALL1")
        self.assertEqual((answered.phone.status, answered.phone.attempts,
                          answered.result.call_id), ("done", 2, "CALL1"))
        await out.set_duration(answered.result.id, 42)
        # the other: no answer twice, then failed for good; the item is done
        await out.finish_attempt(second.id, "t2", "noanswer", 1030, max_attempts=2,
                                 retry_in=600)
        self.assertIsNotNone(await out.claim_phone(item.id, "t5", 1630, 1800))
        await out.finish_attempt(second.id, "t5", "noanswer", 1660, max_attempts=2,
                                 retry_in=600)
        phones = {p.phone: p for p in await cb.phones(alice, item.id)}
        self.assertEqual([(p.status, p.attempts, p.last_result) for p in phones.values()],
                         [("done", 2, "answered"), ("failed", 2, "noanswer")])
        self.assertEqual((await cb.get_item(alice, item.id)).status, "done")
        results = await cb.results(alice, item.id)
        self.assertEqual([(r.phone, r.result, r.duration) for r in results],
                         [("102", "noanswer", 0), ("102", "noanswer", 0),
                          ("101", "answered", 42), ("101", "busy", 0)])

    async def test_an_attempt_that_does_not_count_and_a_lapsed_claim(self) -> None:
        alice, ext = await self.tenant("a", "613")
        out = self.store.outbound
        item = await self.store.callblast.create_item(alice, ext, phones=["101"])
        phone = await out.claim_phone(item.id, "t1", 1000, 1150)
        await out.finish_attempt(phone.id, "t1", "failed", 1100, max_attempts=1,
                                 counted=False, detail="not known")
        again = await out.claim_phone(item.id, "t2", 1100, 1250)
        self.assertEqual((again.attempts, again.status), (0, "calling"))
        # t2's process dies: after locked_until the phone is due for another process
        self.assertIsNone(await out.claim_phone(item.id, "t3", 1250, 1400))
        taken = await out.claim_phone(item.id, "t3", 1251, 1400)
        self.assertEqual(taken.locked_by, "t3")
        self.assertIsNone(await out.finish_attempt(phone.id, "t2", "answered", 1260))

    async def test_group_limits_on_items_and_phones(self) -> None:
        alice, ext = await self.tenant("a", "613", max_callblast_items=2,
                                       max_callblast_phones=2)
        cb, out = self.store.callblast, self.store.outbound
        one = await cb.create_item(alice, ext, phones=["101", "102"])
        two = await cb.create_item(alice, ext, phones=["201"])
        self.assertEqual([(d.item.id, d.item_rank) for d in await out.due_items("N1", 1000)],
                         [(one.id, 0), (two.id, 1)])
        with self.assertRaises(LimitReached) as caught:
            await cb.create_item(alice, ext, phones=["301"])
        self.assertIn("at most 2 item(s)", str(caught.exception))
        with self.assertRaises(LimitReached):
            await cb.add_phone(alice, one.id, "103")
        # the limit lowered afterwards: only the first N phones are ever called
        await self.store.accounts.update_group(
            (await self.store.accounts.get_user(alice)).group_id, max_callblast_phones=1)
        self.assertEqual((await out.claim_phone(one.id, "t1", 1000, 1100, 1)).phone, "101")
        self.assertIsNone(await out.claim_phone(one.id, "t2", 1000, 1100, 1))
        self.assertIsNone(await out.claim_phone(one.id, "t2", 1000, 1100, 0))

    async def test_an_item_belongs_to_a_callblast_extension_of_its_tenant(self) -> None:
        alice, ext = await self.tenant("a", "613")
        _, bob_ext = await self.tenant("b", "614")
        from xvbd.store.accounts import Conflict, NotFound
        with self.assertRaises(NotFound):
            await self.store.callblast.create_item(alice, bob_ext, phones=["1"])
        menu = await self.store.ivr.add_child(alice, ext, "1", "Playback", {})
        with self.assertRaises(Conflict):
            await self.store.callblast.create_item(alice, menu.id, phones=["1"])

    async def test_callback_requests_are_claimed_and_settled_once(self) -> None:
        alice, ext = await self.tenant("a", "613")
        f, out = self.store.features, self.store.outbound
        request = await f.request_callback(alice, "79001", "1", extension_id=ext)
        (due,) = await out.due_callbacks("N1", 1000, 10)
        self.assertEqual((due.request.id, due.request.phone, due.dialout_context),
                         (request.id, "79001", "xvb-dialout"))
        self.assertTrue(await out.claim_callback(request.id, "t1", 1000, 1150))
        self.assertFalse(await out.claim_callback(request.id, "t2", 1000, 1150))
        self.assertEqual(await out.due_callbacks("N1", 1000, 10), [])
        await out.finish_callback(request.id, "t1", "busy", 1010, max_attempts=2,
                                  retry_in=120)
        self.assertEqual(await out.due_callbacks("N1", 1129, 10), [])
        self.assertTrue(await out.claim_callback(request.id, "t3", 1130, 1250))
        done = await out.finish_callback(request.id, "t3", "answered", 1140, call_id="C9")
        self.assertEqual((done.status, done.attempts, done.call_id), ("done", 2, "C9"))
        self.assertIsNone(await out.finish_callback(request.id, "t3", "answered", 1141))

    def test_due_sql_is_the_same_rule_everywhere(self) -> None:
        self.assertEqual(_due("p.").count("p."), 4)


AttemptsOnSQLite, AttemptsOnMariaDB = on_both_backends(AttemptTests)
