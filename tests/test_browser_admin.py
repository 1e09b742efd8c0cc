"""The operator's web (``/ai``) in a real headless Chromium, as an operator uses it: logging
in, creating a group and a user, a form's errors, the balance and the journal, a partner held
to its group, pages on a phone's screen, and logging out.  Screenshots of each step are kept
in ``$XVBD_TEST_ARTIFACTS/browser/`` (``/tmp/xvbd-test-artifacts``)."""

from __future__ import annotations

from tests.support.browser import BrowserCase, Chromium
from tests.support.db import on_both_backends
from tests.support.web import ADMIN_HASH, PARTNER_HASH

XSS = "<script>alert(1)</script>"


class BrowserAdminTests(BrowserCase):
    reports_account = True  # MariaDB: reports run only through the report account

    async def login(self, login: str = "admin", password: str = "admin-secret") -> Chromium:
        """A browser logged in through the login form (the admin unless said)."""
        if login == "admin":
            await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)
        ui = await self.chromium()
        await ui.go("/ai/login")
        await ui.fill({"login": login, "password": password})
        await ui.press("Log in")
        self.assertNotEqual(await ui.cookie("xvbd_ai"), None, await ui.text())
        return ui

    async def sessions(self) -> int:
        return int(await self.db.run_interaction(
            lambda txn: txn.scalar("SELECT COUNT(*) FROM web_sessions")))

    async def test_admin_logs_in_and_a_wrong_password_is_refused(self) -> None:
        await self.store.accounts.set_admin_password_hash("admin", ADMIN_HASH)
        ui = await self.chromium()
        await ui.go("/ai/")
        self.assertEqual(await ui.path(), "/ai/login?next=%2Fai%2F")
        self.assertEqual(await ui.text("h1"), "Log in")
        await ui.fill({"login": "admin", "password": "not-the-password"})
        await ui.press("Log in")
        await ui.screenshot("wrong-password")
        self.assertEqual(await ui.text("p.error"), "Wrong login or password.")
        self.assertEqual((await ui.value("login"), await ui.value("password")), ("admin", ""))
        self.assertIsNone(await ui.cookie("xvbd_ai"))
        self.assertEqual(await self.sessions(), 0)
        await ui.fill({"password": "admin-secret"})
        await ui.press("Log in")
        await ui.screenshot("nodes")
        self.assertEqual(await ui.path(), "/ai/nodes")
        self.assertEqual(await ui.text("h1"), "Nodes")
        self.assertEqual(await ui.text("header a.here"), "Nodes")
        self.assertEqual([row[0] for row in await ui.rows()], ["DEFAULT_NODE"])
        self.assertIn("admin", await ui.text("header form"))
        self.assertIsNotNone(await ui.cookie("xvbd_ai"))
        self.assertEqual(await self.sessions(), 1)

    async def test_a_group_a_user_named_like_html_and_a_form_with_errors(self) -> None:
        ui = await self.login()
        await ui.follow("Groups")
        await ui.follow("New group")
        await ui.fill({"name": "Office"})
        await ui.press("Save")
        self.assertEqual(await ui.text(".notice"), "Group Office added.")
        self.assertIn("Office", [row[0] for row in await ui.rows()])
        await ui.screenshot("group-added")

        await ui.follow("Users")
        await ui.follow("New user")
        user = {"voice_number": "613", "access_code": "10001", "pin": "12ab", "name": XSS,
                "group_id": "Office"}
        await ui.fill(user)
        await ui.press("Save")
        await ui.screenshot("pin-error")
        self.assertEqual(await ui.path(), "/ai/users/new")
        self.assertEqual(await ui.text("p.errors"), "Please correct what is marked below.")
        self.assertEqual(await ui.field_error("pin"),
                         "PIN: up to 16 digits (empty: none)")
        self.assertEqual(await ui.field_error("access_code"), "")
        for name, typed in user.items():
            self.assertEqual(await ui.value(name), "" if name == "pin" else typed, name)
        # (what was typed comes back, but never a PIN)
        await ui.fill({"pin": "1234"})
        await ui.press("Save")
        self.assertEqual(await ui.text(".notice"), "User added.")
        self.assertEqual(await ui.text("h1"), "User 613#10001 active")

        await ui.follow("Users")
        await ui.screenshot("users-list")
        [row] = await ui.rows()
        self.assertEqual(row[1:5], ["613", "10001", XSS, "Office"])
        self.assertEqual(await ui.count("script"), 0)
        self.assertIsNone(await ui.alert(wait=0.5))
        # the check above sees an alert when there is one
        await ui.run(lambda d: d.execute_script("setTimeout(() => alert('probe'), 100)"))
        self.assertEqual(await ui.alert(wait=2), "probe")
        await ui.run(lambda d: d.switch_to.alert.accept())

        # the same phone number and access code again: said next to the field, typed
        # values kept
        await ui.follow("New user")
        again = {"voice_number": "613", "access_code": "10001", "name": "Second",
                 "email": "second@example.com", "group_id": "Office"}
        await ui.fill(again)
        await ui.press("Save")
        await ui.screenshot("duplicate-access-code")
        self.assertIn("already exists", await ui.field_error("access_code"))
        self.assertEqual(await ui.run(lambda d: d.find_element(
            "id", "f-access_code").get_attribute("aria-invalid")), "true")
        for name, typed in again.items():
            self.assertEqual(await ui.value(name), typed, name)
        self.assertEqual([u.name for u in await self.store.accounts.list_users()], [XSS])

    async def test_balance_top_up_and_debit_and_the_journal(self) -> None:
        group = await self.store.accounts.create_group("Office", 1)
        await self.store.accounts.create_user("613", "10001", group.id, name="Alice")
        ui = await self.login()
        await ui.follow("Users")
        await ui.follow("613")
        self.assertEqual(await ui.text("h1"), "User 613#10001 active")
        self.assertTrue((await ui.text(".card")).startswith("Balance\n0.00"))
        await ui.fill({"amount": "25.50", "reason": "paid by card"})
        await ui.press("Change balance")
        self.assertEqual(await ui.text(".notice"), "Balance changed; it is 25.50 now.")
        await ui.fill({"amount": "-5.25", "reason": "refund"})
        await ui.press("Change balance")
        await ui.screenshot("user-after-debit")
        self.assertEqual(await ui.text(".notice"), "Balance changed; it is 20.25 now.")
        self.assertTrue((await ui.text(".card")).startswith("Balance\n20.25"),
                        await ui.text(".card"))
        history = await ui.rows("main table")
        self.assertEqual([row[1:] for row in history],
                         [["-5.25", "20.25", "refund", "admin admin"],
                          ["25.50", "25.50", "paid by card", "admin admin"]])
        # a debit beyond the balance is refused and said on the page
        await ui.fill({"amount": "-100", "reason": "too much"})
        await ui.press("Change balance")
        self.assertIn("a debit of 100.00 would make it negative", await ui.text("p.error"))
        self.assertTrue((await ui.text(".card")).startswith("Balance\n20.25"))

        await ui.follow("Journal")
        await ui.screenshot("journal")
        changes = [(row[1], row[3], row[5], row[6], row[7]) for row in await ui.rows()
                   if row[5] == "balance"]
        # money is shown as the currency shows it (stored as 1/10000 units: 255000)
        self.assertEqual(changes, [
            ("admin admin", "1", "balance", "25.50", "20.25"),
            ("admin admin", "1", "balance", "0.00", "25.50")])

    async def test_tariff_group_user_did_top_up_and_a_report_with_its_csv(self) -> None:
        ui = await self.login()
        await ui.follow("Tariffs")
        await ui.follow("New tariff")
        await ui.fill({"name": "Basic", "monthly_fee": "100", "ivr_minute": "0.50"})
        await ui.press("Save")
        self.assertEqual(await ui.text(".notice"), "Tariff Basic added.")
        await ui.screenshot("tariffs")
        await ui.follow("Groups")
        await ui.follow("New group")
        await ui.fill({"name": "Office", "tariff_id": "Basic"})
        await ui.press("Save")
        self.assertEqual(await ui.text(".notice"), "Group Office added.")
        await ui.follow("Users")
        await ui.follow("New user")
        await ui.fill({"voice_number": "613", "access_code": "10001", "name": "Alice",
                       "group_id": "Office"})
        await ui.press("Save")
        self.assertEqual(await ui.text(".notice"), "User added.")
        await ui.fill({"did": "74951234567"})
        await ui.press("Assign")
        self.assertEqual(await ui.text(".notice"), "DID 74951234567 assigned.")
        await ui.fill({"amount": "300", "reason": "first payment"})
        await ui.press("Change balance")
        self.assertEqual(await ui.text(".notice"), "Balance changed; it is 300.00 now.")
        await ui.screenshot("user")
        user = await self.store.accounts.find_user_by_did("74951234567")
        assert user is not None
        self.assertEqual((user.name, user.balance), ("Alice", 3_000_000))
        # the seeded "Tariffs stat" report counts the new tariff's user; its CSV opens in a
        # spreadsheet (fetched by the page's own link, with the browser's session)
        await ui.follow("Reports")
        await ui.screenshot("reports")
        await ui.follow("Tariffs stat")
        await ui.screenshot("report-tariffs-stat")
        table = await ui.rows()
        self.assertIn("Basic", [row[0] for row in table])
        got = await ui.run(lambda d: d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const link = [...document.querySelectorAll('a')]"
            "  .find(a => a.textContent.includes('CSV'));"
            "fetch(link.href).then(async r => done({type: r.headers.get('content-type'),"
            "  saved: r.headers.get('content-disposition'),"
            "  bytes: [...new Uint8Array(await r.arrayBuffer())]}));"))
        self.assertTrue(got["type"].startswith("text/csv"), got["type"])
        self.assertTrue(got["saved"].startswith("attachment;"), got["saved"])
        body = bytes(got["bytes"])
        self.assertTrue(body.startswith(b"\xef\xbb\xbfTariff,"), body[:40])
        self.assertIn(b"Basic", body)
        # every main page, as the operator sees it
        for name in ("Nodes", "Tariffs", "Groups", "Users", "Private DIDs", "DIDs attr",
                     "CDRs", "Reports", "Partners", "Lockouts", "Mail", "Journal"):
            await ui.follow(name)
            self.assertEqual(await ui.text("header a.here"), name)
            await ui.screenshot(f"page-{name.lower().replace(' ', '-')}")

    async def test_a_partner_sees_only_the_users_of_its_group(self) -> None:
        acc = self.store.accounts
        mine = await acc.create_group("mine", 1)
        other = await acc.create_group("other", 1)
        await acc.create_user("613", "1", mine.id, name="Alice")
        bob = await acc.create_user("614", "2", other.id, name="Bob")
        await acc.create_partner("reseller", PARTNER_HASH, mine.id)
        ui = await self.login("reseller", "partner-secret")
        await ui.screenshot("partner-users")
        self.assertEqual(await ui.path(), "/ai/users")
        self.assertEqual(await ui.texts("header a"), ["Users"])
        self.assertEqual([row[3] for row in await ui.rows()], ["Alice"])
        self.assertNotIn("Bob", await ui.text("main"))
        await ui.go(f"/ai/users?group={other.id}")
        self.assertEqual([row[3] for row in await ui.rows()], ["Alice"])
        await ui.go(f"/ai/users/{bob.id}")
        await ui.screenshot("other-groups-user")
        self.assertEqual(await ui.text("h1"), "Not found")
        self.assertEqual(await ui.text("p.error"), f"There is no user {bob.id} in your group.")
        self.assertNotIn("Bob", await ui.text("main"))
        await ui.go("/ai/nodes")
        self.assertEqual(await ui.text("h1"), "Not allowed")
        self.assertIn("a partner manages the users of its group only",
                      await ui.text("p.error"))

    async def test_pages_fit_a_phone_screen(self) -> None:
        acc = self.store.accounts
        group = await acc.create_group("Office", 1)
        user = await acc.create_user(
            "4951234567", "1234567890123456", group.id, name="Alexandra Konstantinopolskaya",
            email="alexandra.konstantinopolskaya@example.com")
        await acc.change_balance(user.id, 1234567890, "a long reason " * 8,
                                 actor_kind="admin", actor="admin")
        await acc.assign_did("74951234567890", user.id)
        ui = await self.chromium()
        await ui.phone(390, 844)
        await ui.go("/ai/login")
        await ui.screenshot("phone-login")
        self.assertEqual(await ui.widths(), (390, 390))
        await self.login()
        wide = {}
        for step, path in (("users", "/ai/users"), ("user", f"/ai/users/{user.id}"),
                           ("new-user", "/ai/users/new"), ("nodes", "/ai/nodes"),
                           ("tariffs", "/ai/tariffs"), ("group", f"/ai/groups/{group.id}"),
                           ("dids", "/ai/dids"), ("partners", "/ai/partners"),
                           ("journal", "/ai/journal"), ("mail", "/ai/mail"),
                           ("not-found", "/ai/users/999999")):
            await ui.go(path)
            await ui.screenshot(f"phone-{step}")
            scroll_width, screen_width = await ui.widths()
            if scroll_width > screen_width:
                wide[path] = (scroll_width, screen_width, await ui.wider_than_screen())
        self.assertEqual(wide, {}, "pages wider than the phone's screen (page width, "
                         "screen width, what sticks out)")

    async def test_logout_ends_the_session(self) -> None:
        ui = await self.login()
        await ui.follow("Users")
        session = await ui.cookie("xvbd_ai")
        assert session is not None
        await ui.press("Log out")
        await ui.screenshot("logged-out")
        self.assertEqual((await ui.path(), await ui.text("h1")), ("/ai/login", "Log in"))
        self.assertIsNone(await ui.cookie("xvbd_ai"))
        self.assertEqual(await self.sessions(), 0)
        await ui.back()
        await ui.screenshot("back")
        self.assertEqual((await ui.path(), await ui.text("h1")),
                         ("/ai/login?next=%2Fai%2Fusers", "Log in"))
        await ui.go("/ai/nodes")
        self.assertEqual(await ui.path(), "/ai/login?next=%2Fai%2Fnodes")
        # the old session's cookie, put back, opens nothing: the server closed it
        await ui.run(lambda d: d.add_cookie({"name": "xvbd_ai", "value": session,
                                             "path": "/ai"}))
        await ui.go("/ai/users")
        self.assertEqual(await ui.path(), "/ai/login?next=%2Fai%2Fusers")
        self.assertEqual(await ui.text("h1"), "Log in")


BrowserAdminOnSQLite, BrowserAdminOnMariaDB = on_both_backends(BrowserAdminTests)
