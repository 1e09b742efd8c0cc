"""Tenant data on both backends: CRUD of every object, and tenant A never reaches tenant B's
rows through any repository function (reads return nothing, changes change nothing)."""

from __future__ import annotations

from tests.support.db import on_both_backends
from xvbd.store.accounts import Conflict, NotFound
from xvbd.store.callblast import NotPausable
from xvbd.store.cdr import CDRFilter
from xvbd.store.sip import apply_template


class TenantDataTests:
    async def _tenants(self) -> tuple[int, int]:
        acc = self.store.accounts
        alice = await acc.create_user("613", "10001", 1)
        bob = await acc.create_user("613", "10010", 1)
        return alice.id, bob.id

    async def test_extension_tree_crud(self) -> None:
        alice, _ = await self._tenants()
        ivr = self.store.ivr
        root = await ivr.create_root(alice, "Playback", {"greeting": "welcome"}, name="Main")
        self.assertEqual((root.path, root.cdr_number, root.parent_id), ("", "0", None))
        nine = await ivr.add_child(alice, root.id, "9", "Playback", {"greeting": "sub"})
        three = await ivr.add_child(alice, nine.id, "3", "VoiceMail", {"max": 10})
        one = await ivr.add_child(alice, root.id, "1", "VoiceMail", {})
        self.assertEqual((nine.path, three.path, three.cdr_number), ("9", "9*3", "9*3"))
        self.assertEqual(three.settings_dict(), {"max": 10})
        with self.assertRaises(Conflict):
            await ivr.add_child(alice, root.id, "9", "Playback", {})
        with self.assertRaises(ValueError):
            await ivr.add_child(alice, root.id, "9a", "Playback", {})
        self.assertEqual((await ivr.by_path(alice, "9*3")).id, three.id)
        self.assertEqual([e.path for e in await ivr.children(alice, root.id)], ["1", "9"])
        self.assertEqual([e.path for e in await ivr.tree(alice)], ["", "1", "9", "9*3"])
        self.assertEqual(await ivr.count(alice), 4)
        self.assertEqual(await ivr.count(alice, "VoiceMail"), 2)
        self.assertTrue(await ivr.update(alice, three.id, name="Sales box",
                                         settings={"max": 20}))
        three = await ivr.get(alice, three.id)
        self.assertEqual((three.name, three.settings_dict()), ("Sales box", {"max": 20}))
        moved = await ivr.renumber(alice, nine.id, "7")
        self.assertEqual(moved.path, "7")
        self.assertEqual((await ivr.get(alice, three.id)).path, "7*3")
        with self.assertRaises(Conflict):
            await ivr.renumber(alice, moved.id, "1")
        self.assertTrue(await ivr.delete(alice, moved.id))
        self.assertEqual([e.path for e in await ivr.tree(alice)], ["", "1"])
        self.assertIsNone(await ivr.get(alice, three.id), "the subtree goes with its parent")
        self.assertEqual((await ivr.get(alice, one.id)).path, "1")

    async def test_extensions_are_isolated(self) -> None:
        alice, bob = await self._tenants()
        ivr = self.store.ivr
        root = await ivr.create_root(alice, "Playback", {})
        child = await ivr.add_child(alice, root.id, "1", "VoiceMail", {})
        self.assertIsNone(await ivr.get(bob, child.id))
        self.assertIsNone(await ivr.by_path(bob, "1"))
        self.assertIsNone(await ivr.root(bob))
        self.assertEqual(await ivr.children(bob, root.id), [])
        self.assertEqual(await ivr.tree(bob), [])
        self.assertFalse(await ivr.update(bob, child.id, name="hijacked"))
        self.assertFalse(await ivr.delete(bob, child.id))
        with self.assertRaises(NotFound):
            await ivr.add_child(bob, root.id, "2", "Playback", {})
        with self.assertRaises(NotFound):
            await ivr.renumber(bob, child.id, "5")
        self.assertEqual((await ivr.get(alice, child.id)).name, "")
        self.assertEqual(len(await ivr.tree(alice)), 2)

    async def test_messages_crud_and_isolation(self) -> None:
        alice, bob = await self._tenants()
        root = await self.store.ivr.create_root(alice, "VoiceMail", {})
        msgs = self.store.messages
        first = await msgs.add(alice, extension_id=root.id, file_name="m1", file_format="wav",
                               duration=12, size_bytes=192000, caller_id="6135550123",
                               called_id="2500", call_id="c1")
        second = await msgs.add(alice, extension_id=root.id, file_name="m2", file_format="wav",
                                duration=3)
        self.assertEqual([m.id for m in await msgs.list(alice)], [second.id, first.id])
        self.assertEqual(await msgs.count(alice, root.id), 2)
        self.assertTrue(await msgs.mark_read(alice, first.id))
        self.assertEqual([m.id for m in await msgs.list(alice, unread_only=True)], [second.id])
        self.assertEqual([m.id for m in await msgs.list(alice, before_id=second.id)], [first.id])
        self.assertTrue(await msgs.mark_emailed(alice, first.id))
        self.assertGreater((await msgs.get(alice, first.id)).emailed_at, 0)
        # Bob sees, changes and deletes nothing of Alice's.
        self.assertIsNone(await msgs.get(bob, first.id))
        self.assertEqual(await msgs.list(bob), [])
        self.assertEqual(await msgs.count(bob), 0)
        self.assertFalse(await msgs.mark_read(bob, second.id))
        self.assertFalse(await msgs.delete(bob, second.id))
        self.assertFalse((await msgs.get(alice, second.id)).is_read)
        self.assertTrue(await msgs.delete(alice, second.id))
        self.assertIsNone(await msgs.get(alice, second.id))
        await self.store.ivr.delete(alice, root.id)
        self.assertIsNone((await msgs.get(alice, first.id)).extension_id,
                          "a message outlives its extension")

    async def test_cdrs_insert_once_filter_and_isolation(self) -> None:
        alice, bob = await self._tenants()
        cdrs = self.store.cdrs

        def rec(n: int, user: int, **kw: object) -> dict[str, object]:
            return {"record_id": f"call{n}:0", "call_id": f"call{n}", "subscr_id": user,
                    "access_code": "10001", "caller_id": "2501@10.1.5.22", "called_id": "2500",
                    "ext_number": "9*3", "type": "Playback", "create_timestamp": 1285757690 + n,
                    "start_timestamp": 1285757688 + n, "stop_timestamp": 1285757690 + n, **kw}
        batch = [rec(1, alice), rec(2, alice, type="XVB", call_type="incoming",
                                    data="DTMF=9w2"), rec(3, bob, access_code="10010")]
        self.assertEqual(await cdrs.insert_many(batch), 3)
        self.assertEqual(await cdrs.insert_many(batch), 0, "a replayed batch adds nothing")
        mine = await cdrs.for_user(alice)
        self.assertEqual([c.call_id for c in mine], ["call2", "call1"])
        self.assertEqual(mine[0].data, "DTMF=9w2")
        self.assertEqual(mine[1].duration, 2)
        self.assertEqual([c.call_id for c in await cdrs.for_user(alice, CDRFilter(type="XVB"))],
                         ["call2"])
        self.assertEqual([c.call_id for c in await cdrs.for_user(bob)], ["call3"])
        self.assertEqual(len(await cdrs.all()), 3)
        self.assertEqual([c.call_id for c in await cdrs.all(CDRFilter(access_code="10010"))],
                         ["call3"])
        window = CDRFilter(start_from=1285757690, start_to=1285757691)
        self.assertEqual([c.call_id for c in await cdrs.all(window)], ["call2"])
        self.assertEqual(await cdrs.purge_older_than(1), 3)

    async def test_journal(self) -> None:
        alice, bob = await self._tenants()
        journal = self.store.journal
        await journal.record(actor_kind="admin", actor="admin", object_kind="user",
                             object_id=alice, field="status", old_value="active",
                             new_value="locked", user_id=alice, address="127.0.0.1")
        await journal.record(actor_kind="user", actor="613#10010", object_kind="extension",
                             object_id="5", field="name", new_value="x", user_id=bob)
        with self.assertRaises(ValueError):
            await journal.record(actor_kind="robot", actor="?", object_kind="user")
        entries = await journal.for_user(alice)
        self.assertEqual([(e.field, e.old_value, e.new_value) for e in entries],
                         [("status", "active", "locked")])
        self.assertEqual(len(await journal.all()), 2)
        self.assertEqual(await journal.purge_older_than(0), 0)

    async def test_reports_crud(self) -> None:
        reports = self.store.reports
        report = await reports.create("My summary", "SELECT 1", cache_ttl=3600,
                                      default_start="yesterday", access="all")
        self.assertEqual((await reports.get(report.id)).access, "all")
        with self.assertRaises(ValueError):
            await reports.create("bad", "SELECT 1", access="everyone")
        self.assertTrue(await reports.update(report.id, sql_text="SELECT 2"))
        self.assertEqual((await reports.get(report.id)).sql_text, "SELECT 2")
        self.assertEqual((await reports.list())[0].name, "My summary", "newest first")
        self.assertTrue(await reports.delete(report.id))
        self.assertIsNone(await reports.get(report.id))

    async def test_sip_peers_realtime_columns_and_isolation(self) -> None:
        alice, bob = await self._tenants()
        sip = self.store.sip
        peer = await sip.create_peer(alice, "phone", {
            "name": "u10001_1", "type": "friend", "host": "dynamic", "secret": "s3cret",
            "context": "xvb-phones", "call-limit": 2, "session-timers": "accept"})
        self.assertEqual((peer.values["call-limit"], peer.values["session-timers"]),
                         (2, "accept"))
        with self.assertRaises(ValueError):
            await sip.create_peer(alice, "phone", {"name": "x", "DROP TABLE": 1})
        with self.assertRaises(Conflict):
            await sip.create_peer(bob, "phone", {"name": "u10001_1"})
        self.assertIsNone(await sip.get_peer(bob, peer.id))
        self.assertEqual(await sip.list_peers(bob), [])
        self.assertFalse(await sip.update_peer(bob, peer.id, {"secret": "stolen"}))
        self.assertFalse(await sip.delete_peer(bob, peer.id))
        self.assertTrue(await sip.update_peer(alice, peer.id, {"secret": "n3w", "call-limit": 4}))
        got = await sip.get_peer(alice, peer.id)
        self.assertEqual((got.values["secret"], got.values["call-limit"]), ("n3w", 4))
        self.assertEqual([p.name for p in await sip.list_peers(alice, "phone")], ["u10001_1"])
        self.assertTrue(await sip.delete_peer(alice, peer.id))
        self.assertIsNone(await sip.get_peer(alice, peer.id))

    async def test_sip_templates_are_data(self) -> None:
        sip = self.store.sip
        template = await sip.create_template("SIPNET.RU", "SipNet", {
            "fromdomain": "sipnet.ru", "dtmfmode": "rfc2833", "allow": "alaw,ulaw"})
        with self.assertRaises(ValueError):
            await sip.create_template("evil.example", "Evil", {"__import__('os')": 1})
        found = await sip.template_for_host("sipnet.ru")
        self.assertEqual(found.id, template.id)
        merged = apply_template({"name": "p1", "host": "sipnet.ru", "dtmfmode": "info"}, found)
        self.assertEqual((merged["dtmfmode"], merged["fromdomain"], merged["name"]),
                         ("rfc2833", "sipnet.ru", "p1"))
        self.assertTrue(await sip.update_template(template.id, overrides={"port": 5060}))
        self.assertEqual((await sip.template_for_host("sipnet.ru")).override_values(),
                         {"port": 5060})
        self.assertEqual(len(await sip.list_templates()), 1)
        self.assertTrue(await sip.delete_template(template.id))

    async def test_music_on_hold_system_and_tenant_classes(self) -> None:
        alice, bob = await self._tenants()
        sip = self.store.sip
        await sip.create_moh("default", mode="files", directory="/var/lib/asterisk/moh")
        await sip.create_moh("u10001_jazz", user_id=alice, mode="files", directory="/x/jazz",
                             description="Jazz")
        await sip.set_moh_entries("u10001_jazz", ["/x/jazz/1", "/x/jazz/2"], user_id=alice)
        self.assertEqual(await sip.moh_entries("u10001_jazz"), ["/x/jazz/1", "/x/jazz/2"])
        self.assertEqual([m.name for m in await sip.list_moh(alice)], ["default", "u10001_jazz"])
        self.assertEqual([m.name for m in await sip.list_moh(bob)], ["default"])
        self.assertEqual([m.name for m in await sip.list_moh()], ["default"])
        with self.assertRaises(NotFound):
            await sip.set_moh_entries("u10001_jazz", ["/evil"], user_id=bob)
        self.assertFalse(await sip.delete_moh("u10001_jazz", user_id=bob))
        self.assertFalse(await sip.delete_moh("default", user_id=bob))
        self.assertTrue(await sip.delete_moh("u10001_jazz", user_id=alice))
        self.assertEqual(await sip.moh_entries("u10001_jazz"), [])

    async def test_callblast_lists_and_results(self) -> None:
        alice, bob = await self._tenants()
        root = await self.store.ivr.create_root(alice, "CallBlast", {})
        cb = self.store.callblast
        with self.assertRaises(NotFound):
            await cb.create_item(bob, root.id, name="not bob's extension")
        item = await cb.create_item(alice, root.id, name="promo", message="greet1",
                                    settings={"retries": 2}, phones=["79001", "79002"])
        self.assertEqual([p.phone for p in await cb.phones(alice, item.id)], ["79001", "79002"])
        with self.assertRaises(Conflict):
            await cb.add_phone(alice, item.id, "79001")
        extra = await cb.add_phone(alice, item.id, "79003")
        first, second = (await cb.phones(alice, item.id))[:2]
        await cb.record_result(alice, first.id, "answered", call_id="c1", duration=20)
        await cb.record_result(alice, second.id, "busy", next_attempt_at=1_900_000_000)
        phones = {p.phone: p for p in await cb.phones(alice, item.id)}
        self.assertEqual((phones["79001"].status, phones["79001"].attempts), ("done", 1))
        self.assertEqual((phones["79002"].status, phones["79002"].last_result),
                         ("pending", "busy"))
        self.assertEqual([r.result for r in await cb.results(alice, item.id)],
                         ["busy", "answered"])
        with self.assertRaises(ValueError):
            await cb.record_result(alice, extra.id, "exploded")
        # isolation
        self.assertIsNone(await cb.get_item(bob, item.id))
        self.assertEqual(await cb.list_items(bob), [])
        self.assertEqual(await cb.phones(bob, item.id), [])
        self.assertEqual(await cb.results(bob), [])
        with self.assertRaises(NotFound):
            await cb.add_phone(bob, item.id, "666")
        with self.assertRaises(NotFound):
            await cb.record_result(bob, extra.id, "answered")
        self.assertFalse(await cb.delete_phone(bob, extra.id))
        self.assertFalse(await cb.update_item(bob, item.id, name="mine now"))
        with self.assertRaises(NotFound):
            await cb.set_paused(bob, item.id, True)
        self.assertEqual((await cb.get_item(alice, item.id)).status, "active")
        # paused twice is paused; resumed with phones still due it is active again
        self.assertEqual((await cb.set_paused(alice, item.id, True)).status, "paused")
        self.assertEqual((await cb.set_paused(alice, item.id, True)).status, "paused")
        self.assertEqual((await cb.set_paused(alice, item.id, False)).status, "active")
        self.assertEqual((await cb.set_paused(alice, item.id, False)).status, "active")
        self.assertFalse(await cb.delete_item(bob, item.id))
        self.assertTrue(await cb.update_item(alice, item.id, settings={"retries": 5}))
        self.assertEqual((await cb.get_item(alice, item.id)).settings, '{"retries": 5}')
        self.assertTrue(await cb.delete_phone(alice, extra.id))
        # a list paused, then finished meanwhile, resumes as done; a done one cannot pause
        await cb.set_paused(alice, item.id, True)
        await cb.record_result(alice, second.id, "answered")
        self.assertEqual((await cb.set_paused(alice, item.id, False)).status, "done")
        with self.assertRaises(NotPausable):
            await cb.set_paused(alice, item.id, True)
        self.assertTrue(await cb.delete_item(alice, item.id))
        self.assertEqual(await cb.list_items(alice), [])

    async def test_directory_votes_vars_callbacks_dtmf(self) -> None:
        alice, bob = await self._tenants()
        root = await self.store.ivr.create_root(alice, "Directory", {})
        f = self.store.features
        entry = await f.add_directory_entry(alice, root.id, "12", "Ivanov", ["79001", "SIP/1"])
        self.assertEqual((entry.name_keys, entry.phone_list()), ("482668", ["79001", "SIP/1"]))
        with self.assertRaises(NotFound):
            await f.add_directory_entry(bob, root.id, "13", "Petrov", [])
        self.assertEqual(await f.directory(bob, root.id), [])
        self.assertFalse(await f.update_directory_entry(bob, entry.id, name="Bob"))
        self.assertTrue(await f.update_directory_entry(alice, entry.id, name="Sidorov",
                                                       phones=["1"]))
        self.assertEqual([(e.name, e.name_keys) for e in await f.directory(alice, root.id)],
                         [("Sidorov", "7436768")])
        self.assertFalse(await f.delete_directory_entry(bob, entry.id))
        self.assertTrue(await f.delete_directory_entry(alice, entry.id))

        first, new = await f.vote(alice, root.id, "6135550123", "1")
        self.assertTrue(new)
        self.assertEqual(await f.vote_of(alice, root.id, "6135550123"), first)
        vote, new = await f.vote(alice, root.id, "6135550123", "2")
        self.assertEqual((vote.choice, new), ("1", False))
        self.assertEqual(vote, first)
        await f.vote(alice, root.id, "6135550124", "2")
        self.assertEqual(await f.vote_results(alice, root.id), {"1": 1, "2": 1})
        self.assertEqual(await f.vote_results(bob, root.id), {})
        with self.assertRaises(NotFound):
            await f.vote(bob, root.id, "x", "1")
        self.assertEqual(await f.clear_votes(bob, root.id), 0)
        self.assertEqual(await f.clear_votes(alice, root.id), 2)

        await f.set_var(alice, "mode", "day")
        await f.set_var(alice, "mode", "night")
        await f.set_var(bob, "mode", "bob's")
        self.assertEqual(await f.get_var(alice, "mode"), "night")
        self.assertEqual(await f.all_vars(bob), {"mode": "bob's"})
        self.assertTrue(await f.delete_var(alice, "mode"))
        self.assertEqual(await f.get_var(bob, "mode"), "bob's")

        req = await f.request_callback(alice, "79001", "9*3", extension_id=root.id)
        self.assertEqual([r.id for r in await f.callbacks(alice, "pending")], [req.id])
        self.assertEqual(await f.callbacks(alice), [req], "what the call was told is stored")
        self.assertEqual(await f.callbacks(bob), [])
        self.assertFalse(await f.update_callback(bob, req.id, status="done"))
        self.assertTrue(await f.update_callback(alice, req.id, status="done", attempts=1))
        self.assertEqual(await f.callbacks(alice, "pending"), [])
        self.assertFalse(await f.delete_callback(bob, req.id))
        self.assertTrue(await f.delete_callback(alice, req.id))

        msg = await f.add_dtmf(alice, "12345#", caller_id="6135550123", extension_id=root.id)
        self.assertEqual([m.digits for m in await f.dtmf_messages(alice)], ["12345#"])
        self.assertEqual(await f.dtmf_messages(alice), [msg])
        self.assertEqual(await f.dtmf_messages(bob), [])
        self.assertFalse(await f.mark_dtmf_emailed(bob, msg.id))
        self.assertTrue(await f.mark_dtmf_emailed(alice, msg.id))
        self.assertFalse(await f.delete_dtmf(bob, msg.id))
        self.assertTrue(await f.delete_dtmf(alice, msg.id))

    async def test_queues_belong_to_their_extension(self) -> None:
        alice, bob = await self._tenants()
        root = await self.store.ivr.create_root(alice, "Queue", {})
        queues = self.store.queues
        name = await queues.put(alice, root.id, {"musiconhold": "jazz", "timeout": 15},
                                ["Local/1@ctx/n", "Local/2@ctx/n"])
        self.assertEqual(name, f"xvb_q_{root.id}")
        await queues.put(alice, root.id, {"musiconhold": "rock"}, ["Local/3@ctx/n"])
        self.assertEqual(await queues.members(alice, root.id), ["Local/3@ctx/n"])
        self.assertEqual((await queues.options(alice, root.id))["musiconhold"], "rock")
        with self.assertRaises(NotFound):
            await queues.put(bob, root.id, {}, ["Local/666@ctx/n"])
        self.assertEqual(await queues.members(bob, root.id), [])
        self.assertIsNone(await queues.options(bob, root.id))
        with self.assertRaises(ValueError):
            await queues.put(alice, root.id, {"name; DROP": 1}, [])
        await self.store.ivr.delete(alice, root.id)
        self.assertEqual(await queues.members(alice, root.id), [])

    async def test_deleting_a_user_takes_all_their_data(self) -> None:
        alice, bob = await self._tenants()
        root = await self.store.ivr.create_root(alice, "Playback", {})
        await self.store.messages.add(alice, extension_id=root.id, file_name="m",
                                      file_format="wav", duration=1)
        await self.store.features.set_var(alice, "x", "1")
        await self.store.sip.create_peer(alice, "phone", {"name": "p1"})
        await self.store.sip.create_moh("u1_moh", user_id=alice, mode="files")
        await self.store.accounts.delete_user(alice)
        left = await self.db.run_interaction(lambda txn: (
            txn.scalar("SELECT COUNT(*) FROM sippeers"),
            txn.scalar("SELECT COUNT(*) FROM musiconhold")))
        self.assertEqual(left, (0, 0), "Asterisk's realtime tables keep nothing of alice")
        self.assertEqual(await self.store.ivr.tree(alice), [])
        self.assertEqual(await self.store.messages.list(alice), [])
        self.assertEqual(await self.store.features.all_vars(alice), {})
        self.assertEqual(await self.store.sip.list_peers(alice), [])
        self.assertIsNotNone(await self.store.accounts.get_user(bob))


TenantDataOnSQLite, TenantDataOnMariaDB = on_both_backends(TenantDataTests)
