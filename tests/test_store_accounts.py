"""The operator's objects on both backends: create, read, update, delete; the balance."""

from __future__ import annotations

import asyncio

from tests.support.db import on_both_backends
from xvbd.store import migrations
from xvbd.store.accounts import Conflict, InsufficientBalance, NotFound
from xvbd.store.migrations import current_version, open_connection, with_transaction


class AccountsTests:
    async def test_schema_is_at_head_with_first_rows(self) -> None:
        conn = open_connection(self.url)
        try:
            self.assertEqual(with_transaction(self.url, conn, current_version), migrations.HEAD)
        finally:
            conn.close()
        self.assertEqual([n.id for n in await self.store.accounts.list_nodes()], ["DEFAULT_NODE"])
        self.assertEqual([g.name for g in await self.store.accounts.list_groups()], ["default"])
        self.assertEqual({c.code for c in await self.store.accounts.list_currencies()},
                         {"RUB", "USD", "EUR"})

    async def test_upgrade_twice_applies_nothing(self) -> None:
        before, applied = migrations.upgrade(self.url)
        self.assertEqual((before, applied), (migrations.HEAD, []))

    async def test_node_crud(self) -> None:
        acc = self.store.accounts
        node = await acc.put_node("FCC-NN", download_ip="10.1.1.1", asterisk_ip="10.1.1.2",
                                  comment="FCC NN", limit_calls=100, limit_la_1=0.9)
        self.assertEqual((node.asterisk_ip, node.limit_calls, node.limit_la_1),
                         ("10.1.1.2", 100, 0.9))
        await acc.put_node("FCC-NN", comment="changed")
        self.assertTrue(await acc.record_node_stats("FCC-NN", 7, 0.5, 0.25, 0.125))
        node = await acc.get_node("FCC-NN")
        self.assertEqual((node.comment, node.stat_calls, node.stat_la_10), ("changed", 7, 0.125))
        self.assertGreater(node.stat_at, 0)
        self.assertTrue(await acc.delete_node("FCC-NN"))
        self.assertIsNone(await acc.get_node("FCC-NN"))

    async def test_tariff_crud_money_is_exact(self) -> None:
        acc = self.store.accounts
        tariff = await acc.create_tariff("All by 0.10", 2, ivr_minute=1000, ivr_call=1000,
                                         monthly_fee=1_000_000_000_001)
        got = await acc.get_tariff(tariff.id)
        self.assertEqual((got.ivr_minute, got.monthly_fee), (1000, 1_000_000_000_001))
        self.assertIsInstance(got.monthly_fee, int)
        with self.assertRaises(Conflict):
            await acc.create_tariff("All by 0.10", 1)
        self.assertTrue(await acc.update_tariff(tariff.id, callback_call=55))
        self.assertEqual((await acc.get_tariff(tariff.id)).callback_call, 55)
        self.assertTrue(await acc.delete_tariff(tariff.id))
        self.assertIsNone(await acc.get_tariff(tariff.id))
        self.assertFalse(await acc.update_tariff(tariff.id, callback_call=1))

    async def test_group_crud_limits_and_flags(self) -> None:
        acc = self.store.accounts
        group = await acc.create_group("SVB", 1, max_inbound_calls=5, allow_tts=0,
                                       dialout_context="xvb-dialout-svb")
        self.assertEqual((group.max_inbound_calls, group.allow_tts, group.max_messages_per_ext),
                         (5, False, 100))
        self.assertIs(group.advanced_callblast, True)
        await acc.set_type_limit(group.id, "VoiceMail", 3)
        await acc.set_type_limit(group.id, "Queue", 0)
        await acc.set_type_limit(group.id, "VoiceMail", -1)
        self.assertEqual(await acc.type_limits(group.id), {"VoiceMail": -1, "Queue": 0})
        with self.assertRaises(ValueError):
            await acc.set_type_limit(group.id, "Queue", -2)
        self.assertTrue(await acc.update_group(group.id, max_call_duration=600, allow_api=0))
        group = await acc.get_group(group.id)
        self.assertEqual((group.max_call_duration, group.allow_api), (600, False))
        self.assertTrue(await acc.delete_group(group.id))
        self.assertEqual(await acc.type_limits(group.id), {})

    async def test_a_rename_onto_another_name_is_a_conflict(self) -> None:
        acc = self.store.accounts
        basic = await acc.create_tariff("Basic", 1)
        await acc.create_tariff("Gold", 1)
        office = await acc.create_group("Office", basic.id)
        await acc.create_group("Shop", basic.id)
        first = await acc.create_partner("one", "x", office.id)
        await acc.create_partner("two", "x", office.id)
        for rename in (lambda: acc.update_tariff(basic.id, name="Gold"),
                       lambda: acc.update_group(office.id, name="Shop"),
                       lambda: acc.update_partner(first.id, login="two")):
            with self.assertRaises(Conflict):
                await rename()
        self.assertEqual((await acc.get_tariff(basic.id)).name, "Basic")

    async def test_user_crud_and_lookup(self) -> None:
        acc = self.store.accounts
        user = await acc.create_user("613", "10001", 1, pin="911", name="Igor Okunev (RU)",
                                     email="io@example.com", language="xvb.RU-Female",
                                     timezone="Europe/Moscow")
        self.assertEqual((user.status, user.read_only, user.balance), ("active", False, 0))
        self.assertEqual((await acc.find_user("613", "10001")).id, user.id)
        self.assertIsNone(await acc.find_user("613", "10002"))
        with self.assertRaises(Conflict):
            await acc.create_user("613", "10001", 1)
        with self.assertRaises(ValueError):
            await acc.create_user("613", "", 1)
        with self.assertRaises(ValueError):
            await acc.update_user(user.id, status="deleted")
        self.assertTrue(await acc.update_user(user.id, status="locked", read_only=1))
        user = await acc.get_user(user.id)
        self.assertTrue(user.locked and user.read_only)
        with self.assertRaises(ValueError):
            await acc.update_user(user.id, balance=100)
        self.assertTrue(await acc.delete_user(user.id))
        self.assertIsNone(await acc.get_user(user.id))

    async def test_list_users_filters_and_keyset_pages(self) -> None:
        acc = self.store.accounts
        other = await acc.create_group("IO-13", 1)
        for n in range(5):
            await acc.create_user("613", f"1000{n}", 1)
        await acc.create_user("614", "20000", other.id)
        page1 = await acc.list_users(voice_number="613", limit=3)
        page2 = await acc.list_users(voice_number="613", limit=3, after_id=page1[-1].id)
        self.assertEqual([u.access_code for u in page1 + page2],
                         ["10000", "10001", "10002", "10003", "10004"])
        self.assertEqual([u.voice_number for u in await acc.list_users(group_id=other.id)],
                         ["614"])
        self.assertEqual(len(await acc.list_users(access_code="10003")), 1)

    async def test_balance_is_changed_atomically_and_journaled(self) -> None:
        acc = self.store.accounts
        user = await acc.create_user("613", "10001", 1)
        self.assertEqual(await acc.change_balance(user.id, 5_640_000, "top-up",
                                                  actor_kind="admin", actor="admin"), 5_640_000)
        self.assertEqual(await acc.change_balance(user.id, -640_000, "call"), 5_000_000)
        with self.assertRaises(InsufficientBalance):
            await acc.change_balance(user.id, -5_000_001, "too much")
        self.assertEqual((await acc.get_user(user.id)).balance, 5_000_000)
        with self.assertRaises(NotFound):
            await acc.change_balance(user.id + 100, 1, "nobody")
        with self.assertRaises(TypeError):
            await acc.change_balance(user.id, 1.5, "float money")  # type: ignore[arg-type]
        history = await acc.balance_history(user.id)
        self.assertEqual([(h.amount, h.balance_after, h.reason) for h in history],
                         [(-640_000, 5_000_000, "call"), (5_640_000, 5_640_000, "top-up")])

    async def test_concurrent_debits_never_overdraw(self) -> None:
        acc = self.store.accounts
        user = await acc.create_user("613", "10001", 1)
        await acc.change_balance(user.id, 10, "top-up")

        async def debit() -> bool:
            try:
                await acc.change_balance(user.id, -1, "call")
                return True
            except InsufficientBalance:
                return False
        from twisted.internet.defer import Deferred, gatherResults
        results = await gatherResults([Deferred.fromCoroutine(debit()) for _ in range(25)])
        self.assertEqual(sum(results), 10)
        self.assertEqual((await acc.get_user(user.id)).balance, 0)

    async def test_dids_and_their_languages(self) -> None:
        acc = self.store.accounts
        alice = await acc.create_user("613", "10001", 1)
        bob = await acc.create_user("613", "10010", 1)
        await acc.assign_did("100", alice.id)
        await acc.assign_did("101", bob.id)
        with self.assertRaises(Conflict):
            await acc.assign_did("100", bob.id)
        with self.assertRaises(NotFound):
            await acc.assign_did("102", bob.id + 1000)
        self.assertEqual((await acc.find_user_by_did("100")).id, alice.id)
        self.assertIsNone(await acc.find_user_by_did("999"))
        self.assertEqual([d.did for d in await acc.user_dids(alice.id)], ["100"])
        self.assertEqual([d.did for d in await acc.list_dids("10")], ["100", "101"])
        self.assertFalse(await acc.release_did("100", bob.id), "bob cannot release alice's DID")
        self.assertTrue(await acc.release_did("100", alice.id))
        self.assertIsNone(await acc.find_user_by_did("100"))
        await acc.set_did_language("613", "xvb.RU-Male")
        await acc.set_did_language("613", "xvb.RU-Female")
        self.assertEqual(await acc.did_language("613"), "xvb.RU-Female")
        self.assertEqual([a.did for a in await acc.list_did_attrs()], ["613"])
        self.assertTrue(await acc.delete_did_attr("613"))
        self.assertIsNone(await acc.did_language("613"))

    async def test_deleting_a_user_takes_their_dids(self) -> None:
        acc = self.store.accounts
        user = await acc.create_user("613", "10001", 1)
        await acc.assign_did("100", user.id)
        await acc.delete_user(user.id)
        self.assertIsNone(await acc.find_user_by_did("100"))

    async def test_partners_and_admins(self) -> None:
        acc = self.store.accounts
        partner = await acc.create_partner("io123", "scrypt$hash", 1, description="Some partner")
        self.assertEqual((await acc.find_partner("io123")).id, partner.id)
        with self.assertRaises(Conflict):
            await acc.create_partner("io123", "x", 1)
        self.assertTrue(await acc.update_partner(partner.id, can_change_balance=1,
                                                 balance_limit=1_000_000))
        self.assertTrue((await acc.get_partner(partner.id)).can_change_balance)
        self.assertEqual([p.login for p in await acc.list_partners()], ["io123"])
        self.assertTrue(await acc.delete_partner(partner.id))
        self.assertIsNone(await acc.get_partner(partner.id))
        await acc.set_admin_password_hash("admin", "h1")
        await acc.set_admin_password_hash("admin", "h2")
        self.assertEqual((await acc.get_admin("admin")).password_hash, "h2")


AccountsOnSQLite, AccountsOnMariaDB = on_both_backends(AccountsTests)
del asyncio
