"""The tenant's web password apart from the phone PIN, through real HTTP on both backends:
the PIN logs in to /ui only until a web password is set; the operator issues a one-time,
expiring reset link (shown once, journaled) with which the tenant sets a new password."""

from __future__ import annotations

import re

from tests.support.db import on_both_backends
from tests.support.web import Browser, WebCase
from xvbd.passwords import verify_password
from xvbd.store.sessions import PasswordResets

PIN_LOGIN = {"voice_number": "613", "access_code": "10001", "secret": "4321"}


class WebPasswordTests(WebCase):
    async def _user(self) -> int:
        gid = (await self.store.accounts.create_group("g", 1)).id
        return (await self.store.accounts.create_user("613", "10001", gid, pin="4321")).id

    async def _logs_in(self, secret: str) -> bool:
        page = await self.browser().log_in("/ui/login", {**PIN_LOGIN, "secret": secret})
        return page.code == 200 and "/ui/login" not in page.url

    async def test_the_pin_logs_in_only_until_a_web_password_is_set(self) -> None:
        user_id = await self._user()
        browser = await self.tenant_browser("613", "10001", "4321")
        page = await browser.get("/ui/account")
        self.assertIn("Until you set a web password, your phone PIN logs in", page.text)
        page = await browser.post("/ui/account/password", {
            "current": "4321", "password": "long-secret-1", "again": "long-secret-1"})
        self.assertIn("Password set.", page.text)
        self.assertTrue(await self._logs_in("long-secret-1"))
        self.assertFalse(await self._logs_in("4321"), "the PIN no longer logs in to /ui")
        page = await self.browser().log_in("/ui/login", PIN_LOGIN)
        self.assertEqual(page.code, 401)
        self.assertIn("once you have set one, only the web password does", page.text)
        # changing it needs the web password, not the PIN
        browser = await self.tenant_browser("613", "10001", "long-secret-1")
        page = await browser.get("/ui/account")
        self.assertIn("You log in to these pages with your web password", page.text)
        page = await browser.post("/ui/account/password", {
            "current": "4321", "password": "long-secret-2", "again": "long-secret-2"})
        self.assertEqual(page.code, 400)
        self.assertIn("Your current web password is not right.", page.text)
        user = await self.store.accounts.get_user(user_id)
        assert user is not None
        self.assertTrue(verify_password("long-secret-1", user.web_password_hash))
        self.assertTrue(verify_password("4321", user.pin_hash), "the phone PIN is untouched")

    async def test_the_operator_issues_a_one_time_reset_link(self) -> None:
        user_id = await self._user()
        tenant = await self.tenant_browser("613", "10001", "4321")
        admin = await self.admin_browser()
        page = await admin.get(f"/ai/users/{user_id}")
        self.assertIn("This user has no web password yet", page.text)
        page = await admin.post(f"/ai/users/{user_id}/password-reset")
        self.assertEqual(page.code, 200)
        found = re.search(r"<code>http://[^/]+(/ui/login/reset/([A-Za-z0-9_-]+))</code>",
                          page.text)
        assert found, page.text[:3000]
        path, token = found[1], found[2]
        page = await admin.get(f"/ai/users/{user_id}")
        self.assertNotIn(token, page.text, "the link is shown once")
        journal = [(e.actor, e.field, e.new_value)
                   for e in await self.store.journal.for_user(user_id)]
        self.assertTrue(any(actor == "admin" and field == "web password reset link" and
                            value.startswith("(issued, good until ")
                            for actor, field, value in journal), journal)
        self.assertFalse(any(token in v for _, _, v in journal))
        # the tenant opens it: a POST without the page's token is refused
        person = Browser(self.base)
        page = await person.post(path, {"password": "fresh-pass-1", "again": "fresh-pass-1"})
        self.assertEqual(page.code, 403)
        self.assertIn("Reload the login page", page.text)
        page = await person.get(path)
        self.assertIn("Set your web password", page.text)
        page = await person.post(path, {"password": "fresh-pass-1", "again": "fresh-pass-2"})
        self.assertEqual(page.code, 400)
        self.assertIn("The two new passwords differ", page.text)
        page = await person.post(path, {"password": "fresh-pass-1", "again": "fresh-pass-1"})
        self.assertIn("Password set. Log in with it.", page.text)
        self.assertTrue(page.url.startswith(f"{self.base}/ui/login"))
        # the new password logs in, the PIN no longer does, the old session ended
        self.assertTrue(await self._logs_in("fresh-pass-1"))
        self.assertFalse(await self._logs_in("4321"))
        self.assertEqual((await tenant.get("/ui/", follow=False)).code, 303)
        journal = [(e.actor_kind, e.field) for e in await self.store.journal.for_user(user_id)]
        self.assertIn(("user", "web_password_hash"), journal)
        # used once: the link is over
        page = await Browser(self.base).get(path)
        self.assertEqual(page.code, 410)
        self.assertIn("This reset link has expired or was used already", page.text)
        # a new link replaces the one before it
        first = re.search(r"/ui/login/reset/([A-Za-z0-9_-]+)</code>",
                          (await admin.post(f"/ai/users/{user_id}/password-reset")).text)
        second = re.search(r"/ui/login/reset/([A-Za-z0-9_-]+)</code>",
                           (await admin.post(f"/ai/users/{user_id}/password-reset")).text)
        assert first and second
        self.assertEqual((await Browser(self.base).get(f"/ui/login/reset/{first[1]}")).code, 410)
        self.assertEqual((await Browser(self.base).get(f"/ui/login/reset/{second[1]}")).code,
                         200)
        # a partner of another group cannot issue one for this user
        other = (await self.store.accounts.create_group("other", 1)).id
        partner = await self.partner_browser(other)
        page = await partner.post(f"/ai/users/{user_id}/password-reset")
        self.assertEqual(page.code, 404)

    async def test_a_link_expires(self) -> None:
        user_id = await self._user()
        now = [1_000_000.0]
        resets = PasswordResets(self.db, clock=lambda: now[0])
        token, until = await resets.issue(user_id, "admin", lifetime=3600)
        self.assertEqual(until, 1_000_000 + 3600)
        self.assertEqual(await resets.valid(token), user_id)
        self.assertIsNone(await resets.valid(token + "x"))
        now[0] += 3600
        self.assertIsNone(await resets.valid(token))
        self.assertIsNone(await resets.spend(token), "an expired link sets nothing")
        token, _ = await resets.issue(user_id, "admin", lifetime=3600)
        self.assertEqual(await resets.spend(token), user_id)
        self.assertIsNone(await resets.spend(token), "once only")
        token, _ = await resets.issue(user_id, "admin")
        self.assertTrue(await self.store.accounts.delete_user(user_id))
        self.assertIsNone(await resets.valid(token), "gone with its user")


WebPasswordOnSQLite, WebPasswordOnMariaDB = on_both_backends(WebPasswordTests)
