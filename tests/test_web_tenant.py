"""The tenant's web (/ui) through real HTTP on both backends: logging in by PIN or web
password, the IVR tree built with each type's form and the group's limits, read-only
accounts, messages played and deleted, greetings uploaded from real audio, the journal —
and a second tenant who can reach none of it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.support.db import on_both_backends
from tests.support.web import Browser, WebCase
from xvbd.passwords import verify_password
from xvbd.store.accounts import User

UNIT = 10000


def _sound(path: Path, seconds: float, *args: str) -> bytes:
    """A real sound file made by sox (a tone), in the format of ``path``'s suffix."""
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", *args, str(path), "synth",
                    str(seconds), "sine", "440"], check=True, capture_output=True)
    return path.read_bytes()


class TenantWebTests(WebCase):
    def setUp(self) -> None:
        super().setUp()
        self.media = self.tenant_media()

    async def _tenant(self, code: str = "10001", pin: str = "4321", **group: Any
                      ) -> tuple[User, Browser]:
        acc = self.store.accounts
        gid = (await acc.create_group(f"g{code}", 1, **group)).id
        user = await acc.create_user("613", code, gid, pin=pin, name=f"Tenant {code}")
        return user, await self.tenant_browser("613", code, pin)

    # ------------------------------------------------------------------ login

    async def test_login_by_pin_or_web_password_and_the_refusals(self) -> None:
        acc = self.store.accounts
        gid = (await acc.create_group("g", 1)).id
        await acc.create_user("613", "10001", gid, pin="4321")
        browser = self.browser()
        page = await browser.get("/ui/ivr", follow=False)
        self.assertEqual((page.code, page.header("Location")), (303, "/ui/login?next=%2Fui%2Fivr"))
        page = await browser.log_in("/ui/login", {"voice_number": "613", "access_code": "10001",
                                                "secret": "1111"})
        self.assertEqual(page.code, 401)
        self.assertIn("Wrong phone number, access code or password.", page.text)
        self.assertIn('value="10001"', page.text, "what was typed stays in the form")
        page = await browser.log_in("/ui/login", {"voice_number": "613", "access_code": "10001",
                                                "secret": "4321", "next": "/ui/ivr"})
        self.assertEqual((page.code, page.url), (200, f"{self.base}/ui/ivr"))
        self.assertIn("You have no menu yet.", page.text)
        cookie = next(c for c in browser.jar if c.name == "xvbd_ui")
        self.assertEqual(cookie.path, "/ui")
        self.assertTrue(cookie.has_nonstandard_attr("HttpOnly"))
        # a web password, set with the PIN, then works; the sessions open before end
        await browser.get("/ui/account")
        page = await browser.post("/ui/account/password", {
            "current": "4321", "password": "long-secret-1", "again": "long-secret-1"})
        self.assertIn("/ui/login", page.url)
        self.assertIn("Password set.", page.text)
        self.assertEqual((await browser.get("/ui/", follow=False)).code, 303)
        other = await self.tenant_browser("613", "10001", "long-secret-1")
        self.assertIn("access code <strong>10001</strong>", (await other.get("/ui/")).text)
        user = await acc.find_user("613", "10001")
        assert user is not None
        self.assertTrue(verify_password("long-secret-1", user.web_password_hash))
        self.assertNotIn("long-secret-1", json.dumps(
            [e.new_value for e in await self.store.journal.for_user(user.id)]),
            "the journal never shows a password")
        # a locked account cannot log in (and its open sessions stop working)
        await acc.update_user(user.id, status="locked")
        self.assertEqual((await other.get("/ui/", follow=False)).code, 303)
        page = await self.browser().log_in("/ui/login", {
            "voice_number": "613", "access_code": "10001", "secret": "long-secret-1"})
        self.assertEqual(page.code, 401)
        self.assertIn("Your account is locked", page.text)
        # guessing is throttled per account
        guesser = self.browser()
        for _ in range(5):
            await guesser.log_in("/ui/login", {"voice_number": "613", "access_code": "10002",
                                             "secret": "0000"})
        page = await guesser.log_in("/ui/login", {"voice_number": "613",
                                                "access_code": "10002", "secret": "0000"})
        self.assertIn("Too many failed logins", page.text)

    async def test_home_shows_balance_plan_and_numbers(self) -> None:
        user, browser = await self._tenant(max_extensions=12)
        await self.store.accounts.change_balance(user.id, 125 * UNIT, "top-up",
                                                 actor_kind="admin", actor="admin")
        await self.store.accounts.assign_did("74951234567", user.id)
        page = await browser.get("/ui/")
        self.assertEqual(page.code, 200)
        self.assertRegex(page.text, r'id="balance">125\.00')
        self.assertIn("74951234567", page.text)
        self.assertIn("top-up", page.text)
        self.assertRegex(page.text, r"Extensions</td><td class=\"num\">12<")

    # ------------------------------------------------------------------ the IVR tree

    async def test_build_a_two_level_menu_with_each_types_form(self) -> None:
        user, browser = await self._tenant()
        page = await browser.get("/ui/ivr/new")
        self.assertIn("1. Playback", page.text)
        page = await browser.get("/ui/ivr/new?type=Playback")
        # a field of a few words is a list to pick from (Date/Time: what is said)
        form = await browser.get("/ui/ivr/new?type=DateTime")
        self.assertRegex(form.text, r'<select id="say" name="say">\s*<option selected>both'
                                    r'</option><option>date</option><option>time</option>')
        page = await browser.post("/ui/ivr/new", {"type": "Playback", "name": "Main",
                                                  "greeting": "system:demo-instruct",
                                                  "timeout": "5"})
        self.assertIn("Extension 0 (Playback) added.", page.text)
        root = await self.store.ivr.root(user.id)
        assert root is not None
        self.assertEqual(json.loads(root.settings)["greeting"], "system:demo-instruct")
        # a second root is refused; a child gets its number
        page = await browser.post("/ui/ivr/new", {"type": "Playback", "name": "Again"})
        self.assertEqual(page.code, 400)
        self.assertIn("You have a main menu already", page.text)
        await browser.get(f"/ui/ivr/new?parent={root.id}&type=VoiceMail")
        page = await browser.post("/ui/ivr/new", {
            "type": "VoiceMail", "parent": root.id, "number": "1", "name": "Mailbox",
            "after": "hangup", "max_messages": "10"})
        self.assertIn("Extension 1 (VoiceMail) added.", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Playback", "parent": root.id, "number": "2", "name": "Sales"})
        sales = await self.store.ivr.by_path(user.id, "2")
        assert sales is not None
        # a schedule with rows: the filled ones kept, the blank ones (defaults only) not
        page = await browser.post("/ui/ivr/new", {
            "type": "Schedule", "parent": sales.id, "number": "1", "name": "Hours",
            "rules.0.target": "1", "rules.0.days": "12345", "rules.0.start": "09:00",
            "rules.0.end": "18:00", "rules.1.target": "", "rules.1.days": "1234567",
            "rules.1.start": "00:00", "rules.1.end": "23:59", "holidays": "01-01\n05-09",
            "holiday_target": "1", "default": "2"})
        self.assertIn("Extension 2*1 (Schedule) added.", page.text, page.text[-1500:])
        hours = await self.store.ivr.by_path(user.id, "2*1")
        assert hours is not None
        self.assertEqual(json.loads(hours.settings)["rules"],
                         [{"days": "12345", "end": "18:00", "start": "09:00", "target": "1"}])
        self.assertEqual(json.loads(hours.settings)["holidays"], ["01-01", "05-09"])
        # the tree at a glance: numbers, types, one-line summaries, nested
        page = await browser.get("/ui/ivr")
        self.assertRegex(page.text, r"(?s)pill\">0<.*Main.*pill\">1<.*Mailbox.*"
                                    r"pill\">2<.*Sales.*<ul class=\"tree\">.*pill\">2\*1<.*Hours")
        self.assertIn("1 rules", page.text)
        # the edit form shows what is stored and saves a change
        page = await browser.get(f"/ui/ivr/{hours.id}")
        self.assertIn('value="12345"', page.text)
        self.assertIn("01-01\n05-09", page.text)
        page = await browser.post(f"/ui/ivr/{hours.id}", {
            "name": "Office hours", "number": "1", "rules.0.target": "1",
            "rules.0.days": "123456", "rules.0.start": "09:00", "rules.0.end": "18:00",
            "default": "2"})
        self.assertIn("Extension 2*1 saved.", page.text)
        hours = await self.store.ivr.get(user.id, hours.id)
        assert hours is not None
        self.assertEqual((hours.name, json.loads(hours.settings)["rules"][0]["days"]),
                         ("Office hours", "123456"))

    async def test_the_web_request_and_web_variable_forms(self) -> None:
        user, browser = await self._tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        form = await browser.get(f"/ui/ivr/new?parent={root.id}&type=WebRequest")
        self.assertRegex(form.text, r'<select id="method" name="method">\s*'
                                    r'<option selected>GET</option><option>POST</option>')
        self.assertIn("%CALLERID%, %DID%, %AC%, %VAR:name%", form.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "WebRequest", "parent": root.id, "number": "1", "name": "Notify",
            "url": "https://example.com/n?c=%CALLERID%", "method": "POST",
            "body": "did=%DID%", "answer": "json", "json_path": "data.0.name",
            "variable": "who", "success": "", "failure": "2"})
        self.assertIn("Extension 1 (WebRequest) added.", page.text, page.text[-1500:])
        made = await self.store.ivr.by_path(user.id, "1")
        assert made is not None
        settings = json.loads(made.settings)
        self.assertEqual((settings["url"], settings["method"], settings["json_path"],
                          settings["failure"]),
                         ("https://example.com/n?c=%CALLERID%", "POST", "data.0.name", "2"))
        page = await browser.post("/ui/ivr/new", {
            "type": "WebRequest", "parent": root.id, "number": "2",
            "url": "ftp://example.com/"})
        self.assertEqual(page.code, 400)
        self.assertIn("url starts with http:// or https://", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "WebVar", "parent": root.id, "number": "3", "name": "Rate",
            "url": "https://example.com/rate", "json_path": "rate", "ttl": "300",
            "fallback": "0"})
        self.assertIn("Extension 3 (WebVar) added.", page.text, page.text[-1500:])
        page = await browser.post("/ui/ivr/new", {
            "type": "WebVar", "parent": root.id, "number": "4", "name": "Rate",
            "url": "https://example.com/rate", "ttl": "100000"})
        self.assertEqual(page.code, 400)
        self.assertIn("ttl is 0 to 86400", page.text)

    async def test_the_calendar_form(self) -> None:
        user, browser = await self._tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        form = await browser.get(f"/ui/ivr/new?parent={root.id}&type=Calendar")
        self.assertIn("iCalendar (.ics) address", form.text)
        self.assertIn('name="events.0.keyword"', form.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Calendar", "parent": root.id, "number": "1", "name": "Hours",
            "url": "https://example.com/office.ics", "on": "2", "off": "3",
            "events.0.keyword": "Holiday", "events.0.target": "4", "fallback": "3",
            "cache_seconds": "600", "timezone": "Europe/Berlin"})
        self.assertIn("Extension 1 (Calendar) added.", page.text, page.text[-1500:])
        made = await self.store.ivr.by_path(user.id, "1")
        assert made is not None
        self.assertEqual(json.loads(made.settings), {
            "url": "https://example.com/office.ics", "greeting": "", "on": "2", "off": "3",
            "events": [{"keyword": "Holiday", "target": "4"}], "fallback": "3",
            "cache_seconds": 600, "timezone": "Europe/Berlin"})
        page = await browser.post("/ui/ivr/new", {
            "type": "Calendar", "parent": root.id, "number": "2",
            "url": "https://example.com/office.ics", "timezone": "Berlin"})
        self.assertEqual(page.code, 400)
        self.assertIn("timezone is a zone name like Europe/Moscow", page.text)

    async def test_bad_settings_and_group_limits_are_refused_with_a_message(self) -> None:
        user, browser = await self._tenant(max_extensions=3, max_followme_phones=2,
                                           allow_tts=False)
        await self.store.accounts.set_type_limit(user.group_id, "Queue", 0)
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        await browser.get(f"/ui/ivr/new?parent={root.id}&type=FollowMe")
        page = await browser.post("/ui/ivr/new", {
            "type": "FollowMe", "parent": root.id, "number": "1", "phones": "100\n200\n300",
            "mode": "sequential"})
        self.assertEqual(page.code, 400)
        self.assertIn("Your plan allows at most 2 phones here; this has 3.", page.text)
        self.assertIn("100\n200\n300", page.text, "what was typed stays in the form")
        page = await browser.post("/ui/ivr/new", {
            "type": "FollowMe", "parent": root.id, "number": "1", "phones": "100",
            "mode": "diagonal"})
        self.assertIn("Mode is one of sequential, parallel", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Pause", "parent": root.id, "number": "x1", "seconds": "2"})
        self.assertIn("An extension number is 1-8 digits", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Voting", "parent": root.id, "number": "4"})
        self.assertIn("Question is required", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Queue", "parent": root.id, "number": "5"})
        self.assertIn("Your plan does not include Queue extensions.", page.text)
        page = await browser.get(f"/ui/ivr/new?parent={root.id}")
        self.assertIn("13. Queue — not in your plan or at its limit", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Playback", "parent": root.id, "number": "2", "tts": "Hello"})
        self.assertIn("Your plan does not include spoken text (TTS)", page.text)
        for number in ("1", "2"):
            page = await browser.post("/ui/ivr/new", {
                "type": "Pause", "parent": root.id, "number": number, "seconds": "1"})
            self.assertIn("added", page.text)
        page = await browser.post("/ui/ivr/new", {
            "type": "Pause", "parent": root.id, "number": "1", "seconds": "1"})
        self.assertIn("Your plan allows 3 extensions and you have 3", page.text)
        self.assertEqual(await self.store.ivr.count(user.id), 3)
        # a taken number while there is room
        await self.store.accounts.update_group(user.group_id, max_extensions=10)
        page = await browser.post("/ui/ivr/new", {
            "type": "Pause", "parent": root.id, "number": "1", "seconds": "1"})
        self.assertIn("There is an extension 1 in this menu already", page.text)

    async def test_move_renumber_and_delete_a_subtree(self) -> None:
        user, browser = await self._tenant()
        ivr = self.store.ivr
        root = await ivr.create_root(user.id, "Playback", {})
        one = await ivr.add_child(user.id, root.id, "1", "Playback", {}, name="One")
        two = await ivr.add_child(user.id, root.id, "2", "Playback", {}, name="Two")
        leaf = await ivr.add_child(user.id, one.id, "5", "Pause", {"seconds": 1})
        await browser.get(f"/ui/ivr/{one.id}")
        page = await browser.post(f"/ui/ivr/{one.id}", {"name": "Renamed", "number": "2"})
        self.assertEqual(page.code, 400)
        self.assertIn("There is an extension 2 in this menu already", page.text)
        kept = await ivr.get(user.id, one.id)
        assert kept is not None
        self.assertEqual((kept.path, kept.name), ("1", "One"), "a refused save changes nothing")
        page = await browser.post(f"/ui/ivr/{one.id}/move", {"parent": two.id, "number": "3"})
        self.assertIn("Extension 1 is 2*3 now.", page.text)
        moved = await ivr.get(user.id, leaf.id)
        assert moved is not None
        self.assertEqual(moved.path, "2*3*5")
        page = await browser.post(f"/ui/ivr/{two.id}/move", {"parent": one.id, "number": "1"})
        self.assertEqual(page.code, 400)
        self.assertIn("cannot go under itself", page.text)
        await browser.get("/ui/ivr")  # the refusal page has no form to take a token from
        page = await browser.post(f"/ui/ivr/{two.id}/delete")
        self.assertIn("Extension 2 deleted with everything under it.", page.text)
        self.assertEqual([e.path for e in await ivr.tree(user.id)], [""])
        journal = await self.store.journal.for_user(user.id)
        self.assertTrue(any(e.actor == "613#10001" and e.actor_kind == "user"
                            for e in journal))

    async def test_a_read_only_account_looks_but_cannot_change(self) -> None:
        user, browser = await self._tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {})
        await self.store.accounts.update_user(user.id, read_only=True)
        page = await browser.get(f"/ui/ivr/{root.id}")
        self.assertEqual(page.code, 200)
        self.assertNotIn(">Save<", page.text)
        csrf = page.csrf or (await browser.get("/ui/")).csrf
        for path, fields in ((f"/ui/ivr/{root.id}", {"name": "x"}),
                             (f"/ui/ivr/{root.id}/delete", {}),
                             ("/ui/ivr/new", {"type": "Pause", "parent": root.id,
                                              "number": "1"}),
                             ("/ui/account", {"name": "x", "email": "", "timezone": "UTC"})):
            page = await browser.post(path, fields, csrf=csrf)
            self.assertEqual(page.code, 403, path)
            self.assertIn("Your account is read-only", page.text)
        self.assertEqual(await self.store.ivr.count(user.id), 1)

    async def test_a_form_without_its_token_is_refused(self) -> None:
        user, browser = await self._tenant()
        page = await browser.post("/ui/ivr/new", {"type": "Playback"}, csrf="forged")
        self.assertEqual(page.code, 403)
        self.assertEqual(await self.store.ivr.count(user.id), 0)

    async def test_names_are_shown_as_text(self) -> None:
        user, browser = await self._tenant()
        await self.store.ivr.create_root(user.id, "Playback", {"greeting": "<b>x</b>"},
                                         name="<script>alert(1)</script>")
        page = await browser.get("/ui/ivr")
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page.text)
        self.assertNotIn("<script>alert", page.text)

    # ------------------------------------------------------------------ account

    async def test_account_email_and_timezone(self) -> None:
        user, browser = await self._tenant()
        await browser.get("/ui/account")
        page = await browser.post("/ui/account", {"name": "Acme", "email": "not-an-address",
                                                  "timezone": "Mars/Olympus"})
        self.assertEqual(page.code, 400)
        self.assertIn("E-mail: &#39;not-an-address&#39; is not a mail address; write it like "
                      "name@example.com", page.text)
        page = await browser.post("/ui/account", {"name": "Acme", "email": "vm@acme.example",
                                                  "timezone": "Mars/Olympus"})
        self.assertIn("is not one this server knows", page.text)
        page = await browser.post("/ui/account", {"name": "Acme", "email": "vm@acme.example",
                                                  "timezone": "Europe/Moscow"})
        self.assertIn("Saved.", page.text)
        fresh = await self.store.accounts.get_user(user.id)
        assert fresh is not None
        self.assertEqual((fresh.name, fresh.email, fresh.timezone),
                         ("Acme", "vm@acme.example", "Europe/Moscow"))
        page = await browser.get("/ui/journal")
        self.assertIn("vm@acme.example", page.text)

    # ------------------------------------------------------------------ messages

    async def _message(self, user: User, fmt: str = "wav", seconds: float = 1.0) -> Any:
        directory = self.media / "u" / str(user.id) / "messages"
        directory.mkdir(parents=True, exist_ok=True)
        key = f"m{seconds}".replace(".", "_")
        args = ("-t", "ul") if fmt == "ul" else ()
        _sound(directory / f"{key}.{fmt}", seconds, *args)
        return await self.store.messages.add(
            user.id, extension_id=None, file_name=str(directory / key), file_format=fmt,
            duration=int(seconds), caller_id="79001234567", called_id="613")

    async def test_messages_play_download_mark_and_delete(self) -> None:
        user, browser = await self._tenant()
        wav = await self._message(user, "wav", 1.0)
        raw = await self._message(user, "ul", 2.0)
        page = await browser.get("/ui/messages")
        self.assertIn("79001234567", page.text)
        self.assertEqual(page.text.count('class="pill">new<'), 2)
        self.assertIn("2 messages</a> (2 new)", (await browser.get("/ui/")).text)
        audio = await browser.get(f"/ui/messages/{wav.id}/audio")
        self.assertEqual((audio.code, audio.header("Content-Type")), (200, "audio/wav"))
        body = await browser.request("GET", f"/ui/messages/{raw.id}/audio?download=1")
        self.assertIn("attachment;", body.header("Content-Disposition"))
        self.assertTrue(body.text.startswith("RIFF"), "a u-law recording is played as WAV")
        self.assertTrue((await self.store.messages.get(user.id, wav.id)).is_read)  # type: ignore[union-attr]
        await browser.get("/ui/messages")
        page = await browser.post(f"/ui/messages/{wav.id}/read", {"read": "0"})
        self.assertIn("Marked unread.", page.text)
        page = await browser.post(f"/ui/messages/{wav.id}/delete")
        self.assertIn("Message deleted.", page.text)
        self.assertIsNone(await self.store.messages.get(user.id, wav.id))
        self.assertFalse(Path(wav.file_name + ".wav").exists())

    # ------------------------------------------------------------------ greetings

    async def test_greetings_from_real_audio_and_refusals(self) -> None:
        user, browser = await self._tenant(max_greeting_duration=3)
        ogg = _sound(self.tmp / "hello.ogg", 1.5)
        long_wav = _sound(self.tmp / "long.wav", 5)
        await browser.get("/ui/greetings")
        page = await browser.upload("/ui/greetings", {"name": "welcome"},
                                    {"file": ("hello.ogg", ogg)})
        self.assertIn("Greeting welcome (1.5 s) saved; use it as user:welcome.", page.text)
        stored = self.media / "u" / str(user.id) / "welcome.wav"
        info = subprocess.run(["soxi", str(stored)], capture_output=True, text=True).stdout
        self.assertRegex(info, r"Channels\s*: 1")
        self.assertRegex(info, r"Sample Rate\s*: 8000")
        page = await browser.upload("/ui/greetings", {"name": "long"},
                                    {"file": ("long.wav", long_wav)})
        self.assertEqual(page.code, 400)
        self.assertIn("plays longer than your plan&#39;s 3 seconds", page.text)
        # two hours of silence in 190 KB: decoding stops at the plan's limit
        bomb = self.tmp / "bomb.flac"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(bomb), "trim", "0", "7200"],
                       check=True, capture_output=True)
        self.assertLess(bomb.stat().st_size, 400_000)
        page = await browser.upload("/ui/greetings", {"name": "bomb"},
                                    {"file": ("bomb.flac", bomb.read_bytes())})
        self.assertIn("plays longer than your plan&#39;s 3 seconds", page.text)
        page = await browser.upload("/ui/greetings", {"name": "notes"},
                                    {"file": ("notes.mp3", b"%PDF-1.4 this is no sound" * 40)})
        self.assertIn("This file is not a sound this server can read", page.text)
        page = await browser.upload("/ui/greetings", {"name": "../../etc/x"},
                                    {"file": ("a.ogg", ogg)})
        self.assertIn("Give the greeting a name of letters", page.text)
        self.assertEqual(sorted(p.name for p in (self.media / "u" / str(user.id)).iterdir()),
                         ["welcome.wav"], "nothing else was written")
        page = await browser.post("/ui/greetings/spoken", {"name": "hours",
                                                          "text": "We open at nine."})
        self.assertIn("Greeting hours (", page.text)
        self.assertIn("made from your text; use it as user:hours.", page.text)
        page = await browser.post("/ui/greetings/spoken", {"name": "long",
                                                          "text": "Blah blah. " * 40})
        self.assertIn("plays longer than your plan&#39;s 3 seconds", page.text)
        await self.store.accounts.update_group(user.group_id, allow_tts=False)
        await browser.get("/ui/greetings")
        page = await browser.post("/ui/greetings/spoken", {"name": "x", "text": "Hi"})
        self.assertIn("Your plan does not include spoken text", page.text)
        (self.media / "u" / str(user.id) / "hours.wav").unlink()
        audio = await browser.get("/ui/greetings/welcome/audio")
        self.assertEqual(audio.header("Content-Type"), "audio/wav")
        # offered in the extension forms, refused for delete while used
        root = await self.store.ivr.create_root(user.id, "Playback",
                                                {"greeting": "user:welcome"})
        page = await browser.get(f"/ui/ivr/{root.id}")
        self.assertIn('<option value="user:welcome">', page.text)
        await browser.get("/ui/greetings")
        page = await browser.post("/ui/greetings/welcome/delete")
        self.assertEqual(page.code, 409)
        self.assertIn("used by extension 0", page.text)
        await self.store.ivr.update(user.id, root.id, settings={})
        await browser.get("/ui/greetings")
        page = await browser.post("/ui/greetings/welcome/delete")
        self.assertIn("Greeting welcome deleted.", page.text)
        self.assertFalse(stored.exists())

    # ------------------------------------------------------------------ calls

    async def test_calls_in_the_tenants_time_zone_with_filters_and_pages(self) -> None:
        user, browser = await self._tenant()
        other, _ = await self._tenant("10002", pin="9999")
        await self.store.accounts.update_user(user.id, timezone="Europe/Moscow")
        day = 1767225600  # 2026-01-01 00:00 UTC, 03:00 in Moscow

        def record(n: int, owner: int, start: int, **fields: Any) -> dict[str, Any]:
            return {"record_id": f"r{n}", "call_id": f"c{n}", "server_id": "N1",
                    "subscr_id": owner, "access_code": "", "caller_id": "79001",
                    "called_id": "613", "ext_number": f"x{n}", "type": "Playback",
                    "call_type": "", "create_timestamp": start, "start_timestamp": start,
                    "stop_timestamp": start + 65, **fields}
        rows = [record(n, user.id, day + 3600 * (n // 2)) for n in range(120)]
        rows += [record(500, user.id, day - 4 * 3600, caller_id="<b>x</b>", type="VoiceMail"),
                 record(900, other.id, day, caller_id="bob-secret")]
        await self.store.cdrs.insert_many(rows)
        page = await browser.get("/ui/calls")
        self.assertIn("Times are in your time zone (Europe/Moscow).", page.text)
        self.assertIn("2026-01-03 14:00:00", page.text)  # the newest: day + 59 h, +3 h
        self.assertNotIn("bob-secret", page.text)
        seen: list[str] = []
        path = "/ui/calls"
        while True:
            page = await browser.get(path)
            seen += re.findall(r"<td>(x\d+)</td>", page.text)
            found = re.search(r'href="(/ui/calls\?[^"]*before=[^"]+)"', page.text)
            if not found:
                break
            path = found[1].replace("&amp;", "&")
        self.assertEqual(sorted(seen), sorted(f"x{n}" for n in (*range(120), 500)))
        page = await browser.get("/ui/calls?type=VoiceMail")
        self.assertEqual(re.findall(r"<td>(x\d+)</td>", page.text), ["x500"])
        self.assertIn("&lt;b&gt;x&lt;/b&gt;", page.text)
        # the day of 2025-12-31 in Moscow ends at 21:00 UTC: x500 (20:00 UTC) is in it
        page = await browser.get("/ui/calls?from=2025-12-31&to=2025-12-31")
        self.assertEqual(re.findall(r"<td>(x\d+)</td>", page.text), ["x500"])
        page = await browser.get("/ui/calls?from=2026-13-01")
        self.assertEqual(page.code, 400)
        self.assertIn("From date: a day as YYYY-MM-DD (like 2026-03-01)", page.text)
        page = await browser.get("/ui/calls?to=9999-12-31")
        self.assertEqual(page.code, 400, "the day after is past the calendar: refused")
        self.assertIn("To date: a day as YYYY-MM-DD", page.text)
        page = await browser.get("/ui/calls?before=1_2_3")
        self.assertIn("This page link is damaged", page.text)

    # ------------------------------------------------------------------ isolation

    async def test_another_tenant_reaches_nothing_of_ours(self) -> None:
        alice, _ = await self._tenant("10001")
        bob, mallory = await self._tenant("10002", pin="9999")
        root = await self.store.ivr.create_root(alice.id, "Playback", {}, name="Alice main")
        child = await self.store.ivr.add_child(alice.id, root.id, "1", "Pause",
                                               {"seconds": 1})
        message = await self._message(alice)
        greeting_dir = self.media / "u" / str(alice.id)
        _sound(greeting_dir / "secret.wav", 1)
        await self.store.journal.record(actor_kind="user", actor="613#10001",
                                        user_id=alice.id, object_kind="extension",
                                        new_value="alice-only-entry")
        bob_root = await self.store.ivr.create_root(bob.id, "Playback", {})
        page = await mallory.get("/ui/")
        csrf = page.csrf
        for path in (f"/ui/ivr/{root.id}", f"/ui/ivr/{child.id}",
                     f"/ui/ivr/new?parent={root.id}",
                     f"/ui/messages/{message.id}/audio",
                     f"/ui/messages/{message.id}/audio?download=1",
                     "/ui/greetings/secret/audio", "/ui/greetings/..%2F..%2Fetc%2Fpasswd/audio"):
            page = await mallory.get(path)
            self.assertEqual(page.code, 404, path)
        for path, fields in ((f"/ui/ivr/{root.id}", {"name": "pwned"}),
                             (f"/ui/ivr/{child.id}/delete", {}),
                             (f"/ui/ivr/{child.id}/move", {"parent": bob_root.id,
                                                           "number": "1"}),
                             (f"/ui/ivr/{bob_root.id}/move", {"parent": root.id,
                                                              "number": "9"}),
                             ("/ui/ivr/new", {"type": "Pause", "parent": root.id,
                                              "number": "7", "seconds": "1"}),
                             (f"/ui/messages/{message.id}/read", {"read": "1"}),
                             (f"/ui/messages/{message.id}/delete", {}),
                             ("/ui/greetings/secret/delete", {})):
            page = await mallory.post(path, fields, csrf=csrf)
            self.assertIn(page.code, (400, 404), path)
        self.assertFalse((await self.store.messages.get(alice.id, message.id)).is_read,
                         "another tenant's read mark did not reach it")
        page = await mallory.get("/ui/ivr")
        self.assertNotIn("Alice main", page.text)
        page = await mallory.get("/ui/journal")
        self.assertNotIn("alice-only-entry", page.text)
        page = await mallory.get("/ui/messages")
        self.assertNotIn("79001234567", page.text)
        page = await mallory.get("/ui/greetings")
        self.assertNotIn("secret", page.text)
        # all of Alice's things are as they were
        self.assertEqual([(e.path, e.name) for e in await self.store.ivr.tree(alice.id)],
                         [("", "Alice main"), ("1", "")])
        self.assertIsNotNone(await self.store.messages.get(alice.id, message.id))
        self.assertTrue((greeting_dir / "secret.wav").exists())
        self.assertTrue(Path(message.file_name + ".wav").exists())
        self.assertFalse(re.search("pwned", json.dumps(
            [e.name for e in await self.store.ivr.tree(alice.id)])))


TenantWebOnSQLite, TenantWebOnMariaDB = on_both_backends(TenantWebTests)
