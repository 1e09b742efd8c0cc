"""The mail pages over real HTTP: the operator's dead letters (/ai/mail: the reason, a
Resend button that needs the CSRF token, journaled), and the tenant's mail settings on the
account page (several addresses checked, a local one where [EMAIL] ALLOW_LOCAL allows,
WAV or MP3, the daily statistics).  On SQLite and on MariaDB."""

from __future__ import annotations

import re

from tests.support.db import on_both_backends
from tests.support.web import WebCase
from xvbd.mail.compose import MailSetup, TextDraft


class MailWebTests(WebCase):
    web_config = "[EMAIL]\nALLOW_LOCAL = no\n"

    async def dead_letter(self, user_id: int, why: str) -> int:
        mail_id = await self.store.outbox.queue(TextDraft(
            MailSetup.of(self.settings), user_id, "ann@example.com", "stats", "Calls <b>x</b>",
            "body", 1000))
        assert mail_id is not None
        (claimed,) = await self.store.outbox.claim("w", 2000, 2600, 8)
        await self.store.outbox.failed(claimed, "w", why, None)
        return mail_id

    async def test_dead_letters_are_listed_and_resent(self) -> None:
        user = await self.store.accounts.create_user("613", "10001", 1, email="ann@example.com")
        mail_id = await self.dead_letter(user.id, "554 5.7.1 Message rejected as spam")
        kicked = []
        self.admin_app.mail_queued = lambda: kicked.append(1)
        browser = await self.admin_browser()
        page = await browser.get("/ai/mail")
        self.assertEqual(page.code, 200)
        row = re.findall(r"<tr><td class=\"num\">\d+</td>.*?</tr>", page.text, re.S)
        self.assertEqual(len(row), 1)
        self.assertIn("554 5.7.1 Message rejected as spam", row[0])
        self.assertIn("Calls &lt;b&gt;x&lt;/b&gt;", row[0], "the subject shown as text")
        self.assertIn(f'action="/ai/mail/{mail_id}/resend"', row[0])
        self.assertIn('href="/ai/mail"', page.text, "in the navigation")
        refused = await browser.post(f"/ai/mail/{mail_id}/resend", csrf="forged")
        self.assertEqual(refused.code, 403)
        self.assertEqual((await self.store.outbox.get(mail_id, owner=user.id)).status, "dead")
        done = await browser.post(f"/ai/mail/{mail_id}/resend", csrf=page.csrf)
        self.assertEqual(done.code, 200)
        self.assertIn(f"Mail {mail_id} queued again", done.text)
        self.assertIn("No dead letters.", done.text)
        again = await self.store.outbox.get(mail_id, owner=user.id)
        self.assertEqual((again.status, again.tries), ("queued", 0))
        self.assertEqual(kicked, [1], "the sender is told")
        journal = await self.store.journal.for_user(user.id)
        changes = {(e.actor, e.object_kind, e.field, e.old_value, e.new_value)
                   for e in journal if e.object_kind == "mail_outbox"}
        self.assertIn(("admin", "mail_outbox", "status", "dead", "queued"), changes)
        gone = await browser.post(f"/ai/mail/{mail_id}/resend", csrf=page.csrf)
        self.assertEqual(gone.code, 404)
        self.assertIn("is not a dead letter", gone.text)

    async def test_only_the_admin_sees_dead_letters(self) -> None:
        group = await self.store.accounts.create_group("resold", 1)
        partner = await self.partner_browser(group.id)
        page = await partner.get("/ai/mail")
        self.assertIn(page.code, (403, 404))
        anonymous = await self.browser().get("/ai/mail")
        self.assertIn("/ai/login", anonymous.url)

    async def test_the_tenant_sets_addresses_format_and_statistics(self) -> None:
        user = await self.store.accounts.create_user("613", "10001", 1, pin="911")
        browser = await self.tenant_browser("613", "10001", "911")
        page = await browser.get("/ui/messages")
        self.assertIn("New messages are not mailed: no e-mail address is set", page.text)
        page = await browser.get("/ui/account")
        self.assertIn("The recording is attached when it is at most 1000000 bytes", page.text)
        fields = {"name": "Ann", "timezone": "UTC", "attach_as": "mp3", "daily_stats": "1"}
        page = await browser.post("/ui/account", {**fields, "email": "demo@localhost"})
        self.assertEqual(page.code, 400)
        self.assertIn("this server sends only to addresses with a full domain", page.text)
        page = await browser.post("/ui/account", {**fields, "email": "a@x.example, b@@y"})
        self.assertEqual(page.code, 400)
        page = await browser.post("/ui/account", {**fields, "attach_as": "ogg",
                                                  "email": "a@x.example"})
        self.assertIn("Recording in the mail: choose WAV or MP3.", page.text)
        page = await browser.post("/ui/account", {**fields,
                                                  "email": "a@x.example; B@Y.example a@x.example"})
        self.assertIn("Saved.", page.text)
        fresh = await self.store.accounts.get_user(user.id)
        self.assertEqual(fresh.email, "a@x.example, B@y.example")
        prefs = await self.store.outbox.prefs(user.id)
        self.assertEqual((prefs.attach_as, prefs.daily_stats), ("mp3", True))
        self.assertIn('<option value="mp3" selected>', page.text)
        self.assertIn('name="daily_stats" value="1" checked', page.text)
        page = await browser.get("/ui/messages")
        self.assertIn("New messages are mailed to a@x.example, B@y.example", page.text)
        await browser.get("/ui/account")
        await browser.post("/ui/account", {**fields, "attach_as": "wav", "daily_stats": "",
                                           "email": ""})
        prefs = await self.store.outbox.prefs(user.id)
        self.assertEqual((prefs.attach_as, prefs.daily_stats), ("wav", False))

    async def test_a_local_address_where_the_operator_allows_it(self) -> None:
        import dataclasses

        self.tenant_app.settings = dataclasses.replace(
            self.settings, email=dataclasses.replace(self.settings.email, allow_local=True))
        user = await self.store.accounts.create_user("613", "10001", 1, pin="911")
        browser = await self.tenant_browser("613", "10001", "911")
        await browser.get("/ui/account")
        page = await browser.post("/ui/account", {"name": "", "timezone": "UTC",
                                                  "attach_as": "wav",
                                                  "email": "demo@localhost"})
        self.assertIn("Saved.", page.text)
        self.assertEqual((await self.store.accounts.get_user(user.id)).email, "demo@localhost")


MailWebOnSQLite, MailWebOnMariaDB = on_both_backends(MailWebTests)
