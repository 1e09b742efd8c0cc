"""The journal is kept by the storage layer: a change made on behalf of a person is
journaled field by field (old → new) in its own transaction; secrets never show; changes
made by xvbd itself (billing, calls) are not journaled as anybody's."""

from __future__ import annotations

from tests.support.db import on_both_backends
from xvbd.store.audit import Actor, acting


class AuditTests:
    async def test_changes_on_behalf_of_a_person_are_journaled(self) -> None:
        acc = self.store.accounts
        group = await acc.create_group("g", 1)
        user = await acc.create_user("613", "10001", group.id, pin="1234")
        self.assertEqual(await self.store.journal.all(), [], "xvbd's own changes: no journal")
        with acting(Actor("admin", "root", "10.0.0.9")):
            await acc.update_user(user.id, name="Ivan", pin="4321", status="active")
            await acc.change_balance(user.id, 50000, "top-up", actor_kind="admin",
                                     actor="root")
            await acc.assign_did("100", user.id)
            await acc.set_type_limit(group.id, "Queue", 2)
            await acc.update_group(group.id, max_phones=5)
            await acc.release_did("100", user.id)
        rows = [(e.actor_kind, e.actor, e.address, e.user_id, e.object_kind, e.object_id,
                 e.field, e.old_value, e.new_value)
                for e in reversed(await self.store.journal.all())]
        self.assertEqual(rows, [
            ("admin", "root", "10.0.0.9", user.id, "users", str(user.id), "name", "", "Ivan"),
            ("admin", "root", "10.0.0.9", user.id, "users", str(user.id), "pin_hash",
             "(changed)", "(changed)"),
            ("admin", "root", "10.0.0.9", user.id, "users", str(user.id), "balance", "0",
             "50000"),
            ("admin", "root", "10.0.0.9", user.id, "dids", "100", "", "", "(created)"),
            ("admin", "root", "10.0.0.9", None, "user_groups", str(group.id),
             "type limit Queue", "-1", "2"),
            ("admin", "root", "10.0.0.9", None, "user_groups", str(group.id), "max_phones",
             "10", "5"),
            ("admin", "root", "10.0.0.9", user.id, "dids", "100", "", "(deleted)", ""),
        ])
        self.assertEqual([e.field for e in await self.store.journal.for_user(user.id)],
                         ["", "", "balance", "pin_hash", "name"])

    async def test_a_failed_change_leaves_no_journal_row(self) -> None:
        acc = self.store.accounts
        group = await acc.create_group("g", 1)
        one = await acc.create_user("613", "10001", group.id)
        await acc.create_user("613", "10002", group.id)
        from xvbd.store.accounts import Conflict
        with acting(Actor("partner", "reseller")), self.assertRaises(Conflict):
            await acc.update_user(one.id, access_code="10002")
        self.assertEqual(await self.store.journal.all(), [])

    def test_actor_kinds_are_checked(self) -> None:
        with self.assertRaises(ValueError):
            Actor("root", "x")


AuditOnSQLite, AuditOnMariaDB = on_both_backends(AuditTests)
