"""The tenant's web (``/ui``) in a real headless Chromium, as a tenant uses it: logging in
with the PIN, building a two-level menu with voicemail boxes through the forms, uploading a
greeting made by sox, playing a message in the page's audio player, on a desk and on a
phone.  Screenshots of each step are kept in ``$XVBD_TEST_ARTIFACTS/browser/``
(``/tmp/xvbd-test-artifacts``)."""

from __future__ import annotations

import json
import subprocess

from tests.support.browser import BrowserCase, Chromium
from tests.support.db import on_both_backends


class BrowserTenantTests(BrowserCase):
    def setUp(self) -> None:
        super().setUp()
        self.media = self.tenant_media()

    async def login(self) -> Chromium:
        acc = self.store.accounts
        gid = (await acc.create_group("Office", 1, max_greeting_duration=30)).id
        self.user = await acc.create_user("613", "10001", gid, pin="2468", name="Acme Ltd")
        ui = await self.chromium()
        await ui.go("/ui/")
        self.assertEqual(await ui.path(), "/ui/login?next=%2Fui%2F")
        await ui.fill({"voice_number": "613", "access_code": "10001", "secret": "1111"})
        await ui.press("Log in")
        self.assertIn("Wrong phone number, access code or password.",
                      await ui.text("p.error"))
        await ui.fill({"secret": "2468"})
        await ui.press("Log in")
        self.assertEqual(await ui.text("h1"), "Acme Ltd")
        return ui

    async def test_build_a_two_level_menu_upload_a_greeting_and_play_a_message(self) -> None:
        ui = await self.login()
        await ui.screenshot("home")
        # a greeting made by sox, uploaded through the file input
        sound = self.tmp / "welcome.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=2", str(sound)], check=True)
        await ui.follow("Greetings")
        await ui.fill({"name": "welcome"})
        await ui.run(lambda d: d.find_element("name", "file").send_keys(str(sound)))
        await ui.press("Upload")
        await ui.screenshot("greeting-uploaded")
        self.assertIn("Greeting welcome", await ui.text(".notice"))
        self.assertEqual((await ui.rows())[0][:3], ["welcome", "user:welcome", "2.0 s"])

        # the main menu, a voicemail under 1, a sub-menu under 2 with a voicemail under it
        await ui.follow("IVR menu")
        await ui.follow("Create the main menu")
        await ui.follow("1. Playback")
        await ui.fill({"name": "Main menu", "greeting": "user:welcome"})
        await ui.press("Add")
        self.assertEqual(await ui.text(".notice"), "Extension 0 (Playback) added.")
        for parent, number, kind, name in (("Main menu", "1", "2. VoiceMail", "Sales box"),
                                           ("Main menu", "2", "1. Playback", "Support"),
                                           ("Support", "1", "2. VoiceMail", "Support box")):
            await ui.run(lambda d, p=parent: d.find_element(
                "xpath", f"//li[a/strong='{p}']/div[@class='tree-actions']/a").click())
            await ui.follow(kind)
            await ui.fill({"number": number, "name": name})
            await ui.press("Add")
            self.assertIn("added", await ui.text(".notice"))
        await ui.screenshot("menu")
        tree = await ui.texts("ul.tree li > span.pill")
        self.assertEqual(tree, ["0", "1", "2", "2*1"])
        stored = {e.cdr_number: (e.type, e.name, json.loads(e.settings))
                  for e in await self.store.ivr.tree(self.user.id)}
        self.assertEqual(stored["0"], ("Playback", "Main menu",
                                       {"default": "", "greeting": "user:welcome",
                                        "timeout": 5, "tts": ""}))
        self.assertEqual(stored["2*1"][:2], ("VoiceMail", "Support box"))
        # a setting refused by its type is said on the form, what was typed kept
        await ui.follow("Sales box")
        await ui.fill({"max_messages": "-3"})
        await ui.press("Save")
        await ui.screenshot("form-error")
        self.assertIn("max_messages is 0 or more", await ui.text("#form-error"))
        self.assertEqual(await ui.value("max_messages"), "-3")

        # a message left on the box, played in the page's audio player
        box = await self.store.ivr.by_path(self.user.id, "1")
        assert box is not None
        folder = self.media / "u" / str(self.user.id) / "messages"
        folder.mkdir(parents=True)
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(folder / "m1.wav"), "synth",
                        "3", "sine", "300"], check=True)
        await self.store.messages.add(self.user.id, extension_id=box.id,
                                      file_name=str(folder / "m1"), file_format="wav",
                                      duration=3, caller_id="79005551234")
        await ui.follow("Messages")
        self.assertTrue((await ui.rows())[0][0].endswith("new"))
        self.assertEqual((await ui.rows())[0][1:4], ["79005551234", "1 Sales box", "0:03"])
        played = await ui.run(lambda d: d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const audio = document.querySelector('audio');"
            "audio.muted = true;"
            "audio.addEventListener('error', () => done('error ' + audio.error.code));"
            "audio.addEventListener('playing', () => done(audio.duration));"
            "audio.play().catch(e => done('refused ' + e));"))
        await ui.screenshot("message-playing")
        self.assertAlmostEqual(float(played), 3.0, delta=0.1)
        await ui.go("/ui/messages")
        self.assertFalse((await ui.rows())[0][0].endswith("new"), "played: marked read")
        (message,) = await self.store.messages.list(self.user.id)
        self.assertTrue(message.is_read)

    async def test_the_pages_fit_a_phone_screen(self) -> None:
        ui = await self.login()
        root = await self.store.ivr.create_root(self.user.id, "Playback", {},
                                                name="A rather long main menu name here")
        await self.store.ivr.add_child(self.user.id, root.id, "1", "Schedule", {})
        await ui.phone(390, 844)
        wide, refused = {}, {}
        for step in ("", "ivr", f"ivr/{root.id}", f"ivr/new?type=Schedule&parent={root.id}",
                     "greetings", "messages", "variables", "calls", "journal", "account"):
            await ui.go(f"/ui/{step}")
            await ui.screenshot(f"phone-{step.split('?')[0].replace('/', '-') or 'home'}")
            scroll_width, screen_width = await ui.widths()
            if scroll_width > screen_width:
                wide[step] = (scroll_width, screen_width, await ui.wider_than_screen())
            if found := await ui.refused_by_policy():
                refused[step] = found
        self.assertEqual(wide, {}, "pages wider than the phone's screen")
        self.assertEqual(refused, {}, "what the pages' CSP refuses (an inline style) is lost")


BrowserTenantOnSQLite, BrowserTenantOnMariaDB = on_both_backends(BrowserTenantTests)
