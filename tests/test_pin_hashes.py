"""Phone PINs kept as hashes only, on both backends: the upgrade that hashes the PINs kept in
clear (and drops their column), a call through the FastAGI peer that gets in with its PIN
checked off the reactor thread, and the operator's pages that set, generate (shown once)
or remove a PIN and never show one."""

from __future__ import annotations

import re
import threading
from typing import Any

from tests.peers.agi import Caller
from tests.support.db import DatabaseCase, on_both_backends
from tests.support.engine import EngineCase
from tests.support.web import WebCase
from xvbd import passwords
from xvbd.demo import seed_demo
from xvbd.store import migrations
from xvbd.store.migrations import (
    _create_version_table,
    apply_file,
    current_version,
    open_connection,
    schema_files,
    with_transaction,
)


class PinUpgradeTests(DatabaseCase):
    migrate = False

    def _at(self, version: int, rows: list[tuple[str, str]]) -> None:
        """The database as an older xvbd left it: the files up to ``version``, and users
        (access code, PIN in clear)."""
        conn = open_connection(self.url, create=True)
        try:
            for schema in schema_files()[:version]:
                with_transaction(self.url, conn, _create_version_table)
                with_transaction(self.url, conn, lambda txn, s=schema: apply_file(txn, s))

            def users(txn: Any) -> None:
                for code, pin in rows:
                    txn.execute("INSERT INTO users (voice_number, access_code, pin, group_id, "
                                "created_at, updated_at) VALUES ('613', ?, ?, 1, 0, 0)",
                                (code, pin))
            with_transaction(self.url, conn, users)
        finally:
            conn.close()

    def _query(self, sql: str) -> list[Any]:
        conn = open_connection(self.url)
        try:
            return with_transaction(self.url, conn, lambda txn: txn.all(sql))
        finally:
            conn.close()

    async def test_the_upgrade_hashes_every_clear_pin_and_drops_the_column(self) -> None:
        before = next(f.version for f in schema_files() if f.name == "login_secrets") - 1
        self._at(before, [("10001", "911"), ("10002", ""), ("10003", "0042")])
        got, applied = migrations.upgrade(self.url)
        self.assertEqual(got, before)
        self.assertIn("login_secrets", [f.name for f in applied])
        conn = open_connection(self.url)
        try:
            self.assertEqual(with_transaction(self.url, conn, current_version), migrations.HEAD)
        finally:
            conn.close()
        columns = set(self._query("SELECT * FROM users")[0].keys())
        self.assertIn("pin_hash", columns)
        self.assertNotIn("pin", columns, "the clear column is gone")
        users = {u.access_code: u for u in await self.store.accounts.list_users()}
        self.assertTrue(passwords.verify_password("911", users["10001"].pin_hash))
        self.assertFalse(passwords.verify_password("912", users["10001"].pin_hash))
        self.assertTrue(passwords.verify_password("0042", users["10003"].pin_hash),
                        "leading zeros are kept")
        self.assertEqual(users["10002"].pin_hash, "", "no PIN stays no PIN")
        self.assertFalse(users["10002"].has_pin)
        self.assertTrue(users["10001"].pin_hash.startswith(f"scrypt${passwords.PIN_N}$"))
        dump = repr(self._query("SELECT * FROM users"))
        self.assertNotIn("'911'", dump)
        self.assertNotIn("'0042'", dump)
        # and again: nothing left to do
        self.assertEqual(migrations.upgrade(self.url), (migrations.HEAD, []))


class PinCallTests(EngineCase):
    async def test_a_call_gets_in_with_its_pin_checked_off_the_reactor_thread(self) -> None:
        await seed_demo(self.store)
        user = await self.store.accounts.find_user("613", "10001")
        assert user is not None
        self.assertNotIn("911", user.pin_hash)
        threads: list[str] = []
        real = passwords.verify_password

        def watched(secret: str, stored: str) -> bool:
            threads.append(threading.current_thread().name)
            return real(secret, stored)
        self.patch(passwords, "verify_password", watched)  # type: ignore[attr-defined]
        await self.call(Caller(keys=["10001", "912", "911", "*"]), args=("613",))
        self.assertEqual(self.result, "OK")
        self.assertEqual(len(threads), 2, "one check per PIN typed")
        self.assertNotIn(threading.main_thread().name, threads)
        # the PIN set later (by the operator's API, the web) is hashed too
        await self.store.accounts.update_user(user.id, pin="2468")
        fresh = await self.store.accounts.get_user(user.id)
        assert fresh is not None
        self.assertTrue(passwords.verify_password("2468", fresh.pin_hash))
        with self.assertRaises(ValueError):
            await self.store.accounts.update_user(user.id, pin_hash="2468")
        with self.assertRaises(ValueError):
            await self.store.accounts.update_user(user.id, pin="12ab")


class PinPageTests(WebCase):
    async def test_the_operator_sets_generates_and_removes_a_pin_never_seeing_one(self) -> None:
        acc = self.store.accounts
        gid = (await acc.create_group("g", 1)).id
        user = await acc.create_user("613", "10001", gid, pin="4321")
        browser = await self.admin_browser()
        page = await browser.get(f"/ai/users/{user.id}")
        self.assertIn("This user has a PIN (it is kept as a hash and never shown).", page.text)
        self.assertNotIn("4321", page.text)
        self.assertNotIn(user.pin_hash, page.text)
        # generated: shown on the answer to the POST, once
        page = await browser.post(f"/ai/users/{user.id}/pin", {"action": "generate"})
        self.assertEqual(page.code, 200)
        shown = re.search(r"The new PIN is <strong>(\d{6})</strong>", page.text)
        assert shown, page.text[:2000]
        self.assertEqual(page.header("Cache-Control"), "no-store")
        fresh = await acc.get_user(user.id)
        assert fresh is not None
        self.assertTrue(passwords.verify_password(shown[1], fresh.pin_hash))
        page = await browser.get(f"/ai/users/{user.id}")
        self.assertNotIn(shown[1], page.text, "never shown again")
        # the tenant can log in to /ui with it (no web password yet)
        await self.tenant_browser("613", "10001", shown[1])
        # typed digits, a refusal, the removal
        page = await browser.post(f"/ai/users/{user.id}/pin", {"action": "set", "pin": "12ab"})
        self.assertEqual(page.code, 400)
        self.assertIn("PIN: type up to 16 digits", page.text)
        self.assertNotIn("12ab", page.text)
        page = await browser.post(f"/ai/users/{user.id}/pin", {"action": "set", "pin": "0007"})
        self.assertIn("PIN set.", page.text)
        self.assertNotIn("0007", page.text)
        fresh = await acc.get_user(user.id)
        assert fresh is not None
        self.assertTrue(passwords.verify_password("0007", fresh.pin_hash))
        page = await browser.post(f"/ai/users/{user.id}/pin", {"action": "remove"})
        self.assertIn("PIN removed.", page.text)
        self.assertIn("This user has no PIN", page.text)
        self.assertEqual((await acc.get_user(user.id)).pin_hash, "")  # type: ignore[union-attr]
        journal = [(e.field, e.old_value, e.new_value)
                   for e in await self.store.journal.for_user(user.id)]
        self.assertEqual(journal.count(("pin_hash", "(changed)", "(changed)")), 3, journal)
        # a new user's form keeps no PIN typed when it is sent back with an error
        page = await browser.post("/ai/users/new", {"voice_number": "613", "access_code": "",
                                                    "pin": "97531", "group_id": gid})
        self.assertEqual(page.code, 400)
        self.assertNotIn("97531", page.text)


PinUpgradeOnSQLite, PinUpgradeOnMariaDB = on_both_backends(PinUpgradeTests)
PinCallOnSQLite, PinCallOnMariaDB = on_both_backends(PinCallTests)
PinPagesOnSQLite, PinPagesOnMariaDB = on_both_backends(PinPageTests)
