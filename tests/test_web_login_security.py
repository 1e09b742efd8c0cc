"""The login forms of both webs through real HTTP on both backends: a login POST needs the
CSRF token of a form this browser was given (bound to its pre-login cookie), a session id
set before the login (fixation) is never the one logged in, and logging out ends the
session for whoever holds its id."""

from __future__ import annotations

import copy
from http.cookiejar import Cookie

from tests.support.db import on_both_backends
from tests.support.web import ADMIN_HASH, Browser, WebCase

RELOAD = "This login form has expired or did not come from this site. Reload the login page"


def _cookie(browser: Browser, name: str) -> Cookie | None:
    return next((c for c in browser.jar if c.name == name), None)


def _plant(browser: Browser, cookie: Cookie, value: str | None = None) -> None:
    """Put ``cookie`` (another browser's, or a made-up value) into ``browser``'s jar, as a
    cookie set for the victim by someone else would be."""
    planted = copy.copy(cookie)
    if value is not None:
        planted.value = value
    browser.jar.set_cookie(planted)


class LoginSecurityTests(WebCase):
    async def _accounts(self) -> None:
        acc = self.store.accounts
        await acc.set_admin_password_hash("admin", ADMIN_HASH)
        gid = (await acc.create_group("g", 1)).id
        await acc.create_user("613", "10001", gid, pin="4321")
        await acc.create_user("613", "10002", gid, pin="8765")

    async def test_a_login_post_without_the_forms_token_is_refused(self) -> None:
        await self._accounts()
        for path, fields, cookie in (
                ("/ai/login", {"login": "admin", "password": "admin-secret"}, "xvbd_ai"),
                ("/ui/login", {"voice_number": "613", "access_code": "10001",
                               "secret": "4321"}, "xvbd_ui")):
            # right credentials, but no login form was ever fetched (another site's POST)
            browser = self.browser()
            page = await browser.post(path, fields)
            self.assertEqual(page.code, 403, page.text[:500])
            self.assertIn(RELOAD, page.text)
            self.assertIsNone(_cookie(browser, cookie), "no session for a forged POST")
            # a forged token, with a pre-login cookie of the browser's own: refused too
            page = await browser.post(path, fields, csrf="forged-token")
            self.assertEqual(page.code, 403)
            self.assertIsNone(_cookie(browser, cookie))
            # another browser's token does not fit this browser's cookie
            other = self.browser()
            await other.get(path)
            assert other.last is not None
            page = await browser.post(path, fields, csrf=other.last.csrf)
            self.assertEqual(page.code, 403)
            # the refusal page is a fresh form: sent from it, the login works
            page = await browser.post(path, fields)
            self.assertEqual(page.code, 200, page.text[:500])
            self.assertNotIn("/login", page.url)
            self.assertIsNotNone(_cookie(browser, cookie))
            self.assertIsNone(_cookie(browser, cookie + "_login"),
                              "the login form's cookie is spent by the login")

    async def test_a_token_of_one_web_does_not_log_in_to_the_other(self) -> None:
        await self._accounts()
        browser = self.browser()
        await browser.get("/ai/login")
        assert browser.last is not None
        admin_token = browser.last.csrf
        await browser.get("/ui/login")
        page = await browser.post("/ui/login", {"voice_number": "613", "access_code": "10001",
                                                "secret": "4321"}, csrf=admin_token)
        self.assertEqual(page.code, 403)

    async def test_a_fixated_session_id_is_never_the_one_logged_in(self) -> None:
        await self._accounts()
        # the attacker logs in as themselves and plants their session id in the victim's
        # browser; the victim then logs in as 10001
        attacker = self.browser()
        page = await attacker.log_in("/ui/login", {"voice_number": "613",
                                                   "access_code": "10002", "secret": "8765"})
        self.assertEqual(page.code, 200)
        planted = _cookie(attacker, "xvbd_ui")
        assert planted is not None
        victim = self.browser()
        _plant(victim, planted)
        page = await victim.log_in("/ui/login", {"voice_number": "613", "access_code": "10001",
                                                 "secret": "4321"})
        self.assertIn("access code <strong>10001</strong>", page.text)
        mine = _cookie(victim, "xvbd_ui")
        assert mine is not None
        self.assertNotEqual(mine.value, planted.value, "a fresh session id at login")
        # the planted id is not logged in as the victim: it ended at the victim's login
        page = await attacker.get("/ui/", follow=False)
        self.assertEqual((page.code, page.header("Location")), (303, "/ui/login?next=%2Fui%2F"))
        # a made-up id set beforehand is not the one logged in either (operator's web)
        victim = self.browser()
        await victim.get("/ai/login")
        pre = _cookie(victim, "xvbd_ai_login")
        assert pre is not None
        made_up = "A" * 43
        fake = copy.copy(pre)
        fake.name, fake.path, fake.value = "xvbd_ai", "/ai", made_up
        victim.jar.set_cookie(fake)
        page = await victim.post("/ai/login", {"login": "admin", "password": "admin-secret"})
        self.assertEqual(page.code, 200)
        session = _cookie(victim, "xvbd_ai")
        assert session is not None
        self.assertNotEqual(session.value, made_up)
        self.assertIsNone(await self.store.sessions.get(made_up, 3600))
        self.assertIsNotNone(await self.store.sessions.get(session.value, 3600))
        # nor is the pre-login cookie ever the session: it is spent, not promoted
        self.assertNotEqual(session.value, pre.value)
        self.assertIsNone(await self.store.sessions.get(pre.value, 3600))

    async def test_logout_ends_the_session_for_whoever_holds_its_id(self) -> None:
        await self._accounts()
        for path, fields, cookie, home in (
                ("/ai/login", {"login": "admin", "password": "admin-secret"}, "xvbd_ai",
                 "/ai/nodes"),
                ("/ui/login", {"voice_number": "613", "access_code": "10001",
                               "secret": "4321"}, "xvbd_ui", "/ui/")):
            browser = self.browser()
            await browser.log_in(path, fields)
            held = _cookie(browser, cookie)
            assert held is not None
            copy_holder = self.browser()
            _plant(copy_holder, held)
            self.assertEqual((await copy_holder.get(home, follow=False)).code, 200)
            await browser.get(home)
            page = await browser.post(path.replace("login", "logout"))
            self.assertTrue(page.url.endswith(path), page.url)
            self.assertEqual((await copy_holder.get(home, follow=False)).code, 303,
                             "the id is no good after the logout, wherever it was kept")
            self.assertIsNone(await self.store.sessions.get(held.value, 3600))


LoginSecurityOnSQLite, LoginSecurityOnMariaDB = on_both_backends(LoginSecurityTests)
