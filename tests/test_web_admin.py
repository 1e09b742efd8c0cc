"""The operator's web through real HTTP on both backends: logging in (and being refused),
the screens and their forms, validation, escaping, CSRF, the journal of every change, and
partners held to the users of their group."""

from __future__ import annotations

import re

from tests.support.db import on_both_backends
from tests.support.web import WebCase
from xvbd.passwords import verify_password

UNIT = 10000


class AdminWebTests(WebCase):
    async def test_the_pages_have_an_icon(self) -> None:
        browser = self.browser()
        page = await browser.get("/ai/login")
        self.assertIn('<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">',
                      page.text)
        for path in ("/static/favicon.svg", "/favicon.ico"):
            icon = await browser.get(path)
            self.assertEqual((icon.code, icon.header("Content-Type")), (200, "image/svg+xml"))
            self.assertTrue(icon.text.startswith("<svg "), icon.text[:40])

    async def test_login_refusals_and_logout(self) -> None:
        browser = self.browser()
        page = await browser.get("/ai/users?phone=613", follow=False)
        self.assertEqual((page.code, page.header("Location")),
                         (303, "/ai/login?next=%2Fai%2Fusers%3Fphone%3D613"))
        await self.store.accounts.set_admin_password_hash("admin", _hash("admin-secret"))
        for _ in range(5):
            page = await browser.log_in("/ai/login", {"login": "admin", "password": "nope"})
            self.assertEqual(page.code, 401)
            self.assertIn("Wrong login or password.", page.text)
        page = await browser.log_in("/ai/login", {"login": "admin", "password": "admin-secret"})
        self.assertEqual(page.code, 401)
        self.assertIn("Too many failed logins. Wait 15 minutes", page.text)
        await self.counters.reset("weblogin:ai:name:admin")
        page = await browser.log_in("/ai/login", {"login": "admin", "password": "admin-secret",
                                                "next": "/ai/users?phone=613"})
        self.assertEqual((page.code, page.url), (200, f"{self.base}/ai/users?phone=613"))
        self.assertIn("No users match.", page.text)
        cookie = next(c for c in browser.jar if c.name == "xvbd_ai")
        self.assertEqual((cookie.path, cookie.secure), ("/ai", False))
        self.assertTrue(cookie.has_nonstandard_attr("HttpOnly"))
        # an outside address is never where a login sends you
        page = await browser.log_in("/ai/login", {"login": "admin", "password": "admin-secret",
                                                "next": "//evil.example/"}, follow=False)
        self.assertEqual(page.header("Location"), "/ai/")
        await browser.get("/ai/users")
        page = await browser.post("/ai/logout")
        self.assertEqual(page.url, f"{self.base}/ai/login", page.text[:800])
        page = await browser.get("/ai/nodes", follow=False)
        self.assertEqual(page.code, 303)

    async def test_a_form_without_its_token_is_refused(self) -> None:
        browser = await self.admin_browser()
        page = await browser.post("/ai/tariffs/new", {"name": "x", "currency_id": 1},
                                  csrf="forged")
        self.assertEqual(page.code, 403)
        self.assertIn("This form has expired or did not come from this site", page.text)
        self.assertEqual([t.name for t in await self.store.accounts.list_tariffs()], ["Free"])

    async def test_tariff_group_user_did_balance_and_the_journal(self) -> None:
        browser = await self.admin_browser()
        await browser.get("/ai/tariffs/new")
        page = await browser.post("/ai/tariffs/new", {
            "name": "Basic", "currency_id": 1, "monthly_fee": "100", "daily_fee": "0",
            "ivr_minute": "0.5", "ivr_call": "abc", "callblast_minute": "0",
            "callblast_call": "0", "callback_minute": "0", "callback_call": "0.12345"})
        self.assertEqual(page.code, 400)
        self.assertIn("IVR: a call: an amount like 12.50, got &#39;abc&#39;", page.text)
        self.assertIn("CallBack: a call: at most 4 digits after the point", page.text)
        page = await browser.post("/ai/tariffs/new", {
            "name": "Basic", "currency_id": 1, "monthly_fee": "100", "daily_fee": "0",
            "ivr_minute": "0.5", "ivr_call": "0.05", "callblast_minute": "0",
            "callblast_call": "0", "callback_minute": "0", "callback_call": "0"})
        self.assertIn("Tariff Basic added.", page.text)
        tariff = next(t for t in await self.store.accounts.list_tariffs() if t.name == "Basic")
        self.assertEqual((tariff.ivr_minute, tariff.ivr_call, tariff.monthly_fee),
                         (5000, 500, 100 * UNIT))
        self.assertIn("<td class=\"num\">0.50 / 0.05</td>", page.text)
        # a group: its limits, a per-type limit, a feature
        page = await browser.get("/ai/groups/new")
        fields = _form_values(page.text)
        fields.update(name="Office", tariff_id=str(tariff.id), max_phones="3",
                      **{"type:Queue": "0", "type:VoiceMail": "2"})
        fields.pop("allow_tts", None)  # the box left clear
        too_big = {**fields, "type:Queue": str(10**20), "max_phones": str(2**31)}
        page = await browser.post("/ai/groups/new", too_big)
        self.assertEqual(page.code, 400, "more than the columns hold: a message, not a 500")
        self.assertIn("Queue: -1 (no limit), 0 (not allowed) or a number up to 2147483647",
                      page.text)
        self.assertNotIn("Office", [g.name for g in await self.store.accounts.list_groups()])
        page = await browser.post("/ai/groups/new", fields)
        self.assertIn("Group Office added.", page.text)
        group = next(g for g in await self.store.accounts.list_groups() if g.name == "Office")
        self.assertEqual((group.max_phones, group.allow_tts), (3, False))
        self.assertEqual(await self.store.accounts.type_limits(group.id),
                         {"Queue": 0, "VoiceMail": 2})
        # a user with a name that is HTML, a DID, a top-up and a debit too big
        await browser.get("/ai/users/new")
        page = await browser.post("/ai/users/new", {
            "voice_number": "613", "access_code": "10001", "pin": "12ab",
            "name": "<script>alert(1)</script>", "email": "x@example.com",
            "language": "xvb.EN-Female", "timezone": "UTC", "group_id": group.id,
            "status": "active", "max_inbound_calls": "0"})
        self.assertEqual(page.code, 400)
        self.assertIn("PIN: up to 16 digits", page.text)
        page = await browser.post("/ai/users/new", {
            "voice_number": "613", "access_code": "10001", "pin": "1234",
            "name": "<script>alert(1)</script>", "email": "x@example.com",
            "language": "xvb.EN-Female", "timezone": "UTC", "group_id": group.id,
            "status": "active", "max_inbound_calls": "0"})
        self.assertIn("User added.", page.text)
        self.assertNotIn("<script>alert(1)</script>", page.text)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page.text)
        user_id = int(re.search(r"/ai/users/(\d+)", page.url)[1])
        page = await browser.post(f"/ai/users/{user_id}/dids", {"did": "3500"})
        self.assertIn("DID 3500 assigned.", page.text)
        page = await browser.post(f"/ai/users/{user_id}/balance",
                                  {"amount": "25.50", "reason": "paid by card"})
        self.assertIn("Balance changed; it is 25.50 now.", page.text)
        page = await browser.post(f"/ai/users/{user_id}/balance",
                                  {"amount": "-30", "reason": "refund"})
        self.assertEqual(page.code, 400)
        self.assertIn("a debit of 30.00 would make it negative", page.text)
        self.assertEqual((await self.store.accounts.get_user(user_id)).balance, 255000)
        self.assertEqual((await self.store.accounts.find_user_by_did("3500")).id, user_id)
        # lock the user and change the PIN: the changes, the journal with who did them and
        # from where, the PIN said to be changed but never shown
        values = _form_values(page.text)
        self.assertNotIn('name="pin" value=', page.text, "an existing user's PIN is never shown")
        values.pop("pin", None)  # (the PIN's own form, below the settings)
        values.update(status="locked")
        page = await browser.post(f"/ai/users/{user_id}", values)
        self.assertIn("User saved.", page.text)
        page = await browser.post(f"/ai/users/{user_id}/pin", {"pin": "4321", "action": "set"})
        self.assertIn("PIN set.", page.text)
        self.assertNotIn("4321", page.text)
        locked = await self.store.accounts.get_user(user_id)
        self.assertEqual(locked.status, "locked")
        self.assertTrue(verify_password("4321", locked.pin_hash))
        journal = await browser.get("/ai/journal")
        self.assertIn("admin admin", journal.text)
        entries = await self.store.journal.all(limit=200)
        self.assertEqual({(e.actor_kind, e.actor, e.address) for e in entries},
                         {("admin", "admin", "127.0.0.1")})
        changed = {(e.object_kind, e.field, e.old_value, e.new_value) for e in entries}
        self.assertIn(("users", "status", "active", "locked"), changed)
        self.assertIn(("users", "balance", "0", "255000"), changed)
        self.assertIn(("user_groups", "type limit Queue", "-1", "0"), changed)
        self.assertIn(("tariffs", "", "", "(created)"), changed)
        self.assertIn(("users", "pin_hash", "(changed)", "(changed)"), changed)
        self.assertFalse([e for e in entries if {"1234", "4321"} & {e.old_value, e.new_value}])

    async def test_every_screen_answers(self) -> None:
        browser = await self.admin_browser()
        group = (await self.store.accounts.list_groups())[0]
        user = await self.store.accounts.create_user("613", "10001", group.id)
        for path in ("/ai/", "/ai/nodes", "/ai/nodes/new", "/ai/nodes/DEFAULT_NODE",
                     "/ai/tariffs", "/ai/tariffs/new", "/ai/tariffs/1", "/ai/groups",
                     "/ai/groups/new", f"/ai/groups/{group.id}", "/ai/users",
                     "/ai/users/new", f"/ai/users/{user.id}", "/ai/dids", "/ai/didattrs",
                     "/ai/partners", "/ai/partners/new", "/ai/journal"):
            page = await browser.get(path)
            self.assertEqual(page.code, 200, (path, page.text[:500]))
            self.assertIn("</html>", page.text)
            self.assertEqual(page.header("X-Frame-Options"), "DENY")
        for path in ("/ai/users/999999", "/ai/tariffs/x", "/ai/groups/42", "/ai/nope"):
            page = await browser.get(path)
            self.assertEqual(page.code, 404, path)

    async def test_nodes_and_dids_attr(self) -> None:
        browser = await self.admin_browser()
        await browser.get("/ai/nodes/new")
        page = await browser.post("/ai/nodes/new", {
            "id": "N2", "download_ip": "10.0.0.2", "asterisk_ip": "10.0.0.3", "comment": "",
            "limit_calls": "100", "limit_la_1": "4", "limit_la_5": "x", "limit_la_10": "0",
            "stat_url": ""})
        self.assertEqual(page.code, 400)
        self.assertIn("Limit: load average 5 min: a number, got &#39;x&#39;", page.text)
        page = await browser.post("/ai/nodes/new", {
            "id": "N2", "download_ip": "10.0.0.2", "asterisk_ip": "10.0.0.3", "comment": "",
            "limit_calls": "100", "limit_la_1": "4", "limit_la_5": "3", "limit_la_10": "0",
            "stat_url": ""})
        self.assertIn("Node N2 added.", page.text)
        node = await self.store.accounts.get_node("N2")
        self.assertEqual((node.limit_calls, node.limit_la_1), (100, 4.0))
        page = await browser.post("/ai/nodes/DEFAULT_NODE/delete")
        self.assertEqual(page.code, 409)
        self.assertIn("serves the groups default", page.text)
        await browser.get("/ai/didattrs")
        page = await browser.post("/ai/didattrs", {"did": "613", "language": "xvb.RU-Female"})
        self.assertIn("613 speaks xvb.RU-Female.", page.text)
        self.assertEqual(await self.store.accounts.did_language("613"), "xvb.RU-Female")


AdminWebOnSQLite, AdminWebOnMariaDB = on_both_backends(AdminWebTests)


class PartnerWebTests(WebCase):
    async def test_a_partner_sees_and_manages_only_its_group(self) -> None:
        acc = self.store.accounts
        mine = await acc.create_group("mine", 1)
        other = await acc.create_group("other", 1)
        alice = await acc.create_user("613", "1", mine.id)
        bob = await acc.create_user("613", "2", other.id)
        await acc.assign_did("3500", bob.id)
        partner = await self.partner_browser(mine.id, can_change_balance=1,
                                             balance_limit=10 * UNIT)
        page = await partner.get("/ai/")
        self.assertEqual(page.url, f"{self.base}/ai/users")
        self.assertIn(f"/ai/users/{alice.id}", page.text)
        self.assertNotIn(f"/ai/users/{bob.id}\"", page.text)
        page = await partner.get("/ai/users?phone=3500")  # bob's DID
        self.assertIn("No users match.", page.text)
        page = await partner.get(f"/ai/users?group={other.id}")
        self.assertNotIn(f"/ai/users/{bob.id}\"", page.text)
        csrf = (await partner.get(f"/ai/users/{alice.id}")).csrf
        refusals = [
            ("GET", f"/ai/users/{bob.id}", {}, 404),
            ("POST", f"/ai/users/{bob.id}", {"voice_number": "613", "access_code": "2",
                                             "name": "taken"}, 404),
            ("POST", f"/ai/users/{bob.id}/balance", {"amount": "1", "reason": "x"}, 404),
            ("POST", f"/ai/users/{bob.id}/dids", {"did": "777"}, 404),
            ("POST", f"/ai/users/{bob.id}/dids/3500/delete", {}, 404),
            ("POST", f"/ai/users/{bob.id}/delete", {}, 404),
        ]
        for path in ("/ai/nodes", "/ai/tariffs", "/ai/tariffs/new", "/ai/groups",
                     f"/ai/groups/{mine.id}", "/ai/partners", "/ai/partners/new",
                     "/ai/dids", "/ai/didattrs", "/ai/journal"):
            refusals.append(("GET", path, {}, 403))
        for path in ("/ai/nodes/new", "/ai/tariffs/new", "/ai/groups/new",
                     f"/ai/groups/{mine.id}", "/ai/partners/new", "/ai/didattrs",
                     "/ai/nodes/DEFAULT_NODE/delete", f"/ai/groups/{other.id}/delete"):
            refusals.append(("POST", path, {"name": "x"}, 403))
        for method, path, fields, code in refusals:
            if method == "GET":
                page = await partner.get(path)
            else:
                page = await partner.post(path, fields, csrf=csrf)
            self.assertEqual(page.code, code, (method, path, page.text[:300]))
        self.assertEqual(await acc.get_user(bob.id), bob)
        self.assertEqual((await acc.find_user_by_did("3500")).id, bob.id)
        # within its group: create (always in its group), edit, balance within its limit
        await partner.get("/ai/users/new")
        page = await partner.post("/ai/users/new", {
            "voice_number": "613", "access_code": "3", "pin": "", "name": "Carol",
            "email": "", "language": "xvb.EN-Female", "timezone": "UTC", "status": "active",
            "max_inbound_calls": "0", "group_id": str(other.id)})
        self.assertIn("User added.", page.text)
        carol = await acc.find_user("613", "3")
        self.assertEqual(carol.group_id, mine.id)
        page = await partner.post(f"/ai/users/{alice.id}/balance",
                                  {"amount": "11", "reason": "too much"})
        self.assertIn("at most 10.00 at a time for your partner account", page.text)
        page = await partner.post(f"/ai/users/{alice.id}/balance",
                                  {"amount": "0", "reason": ""})
        self.assertIn("Amount: not zero. Reason is required", page.text)
        page = await partner.post(f"/ai/users/{alice.id}/balance",
                                  {"amount": "10", "reason": "top-up"})
        self.assertIn("Balance changed; it is 10.00 now.", page.text)
        entry = (await self.store.journal.for_user(alice.id))[0]
        self.assertEqual((entry.actor_kind, entry.actor, entry.field),
                         ("partner", "reseller", "balance"))

    async def test_a_partner_without_balance_rights(self) -> None:
        mine = await self.store.accounts.create_group("mine", 1)
        alice = await self.store.accounts.create_user("613", "1", mine.id)
        partner = await self.partner_browser(mine.id)
        page = await partner.get(f"/ai/users/{alice.id}")
        self.assertNotIn("Top up or debit", page.text)
        page = await partner.post(f"/ai/users/{alice.id}/balance",
                                  {"amount": "1", "reason": "x"})
        self.assertEqual(page.code, 403)
        self.assertEqual((await self.store.accounts.get_user(alice.id)).balance, 0)


PartnerWebOnSQLite, PartnerWebOnMariaDB = on_both_backends(PartnerWebTests)


def _hash(password: str) -> str:
    from tests.support.web import ADMIN_HASH

    assert password == "admin-secret"
    return ADMIN_HASH


def _form_values(html: str) -> dict[str, str]:
    """What a browser would send back of the form on the page (text, checked boxes,
    selected options)."""
    values: dict[str, str] = {}
    for match in re.finditer(r'<input type="(text|password|hidden)"[^>]*? name="([^"]+)"'
                             r'(?: value="([^"]*)")?', html):
        values.setdefault(match[2], _unescape(match[3] or ""))
    for match in re.finditer(r'<input type="checkbox"[^>]*? name="([^"]+)" value="1"'
                             r'( checked)?', html):
        if match[2]:
            values[match[1]] = "1"
    for match in re.finditer(r'<select[^>]*? name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', match[2]) or re.search(
            r'<option value="([^"]*)"', match[2])
        if chosen:
            values[match[1]] = _unescape(chosen[1])
    for match in re.finditer(r'name="(type:[^"]+)"\s+value="([^"]*)"', html):
        values[match[1]] = match[2]
    return values


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)
