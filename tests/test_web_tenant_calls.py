"""What a tenant builds on the web is what a caller hears: a two-level menu with an uploaded
greeting and a voicemail box, made through /ui over HTTP, then called through FastAGI; a
change on the web is heard on the very next call."""

from __future__ import annotations

import subprocess

from twisted.internet import reactor

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from tests.support.web import PAGES, Browser
from xvbd.web.root import WebRoot, web_site
from xvbd.web.tenant import TenantApp


class WebBuiltMenuTests(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        app = TenantApp(self.settings, self.store, self.counters, PAGES,
                        directory=self.directory)
        root = WebRoot(self.db, "FCC-NN", clock=reactor, tenant=app)
        listener = reactor.listenTCP(0, web_site(root.app.resource()), interface="127.0.0.1")
        self.addCleanup(listener.stopListening)  # type: ignore[attr-defined]
        self.web = f"http://127.0.0.1:{listener.getHost().port}"

    async def test_a_menu_built_on_the_web_answers_calls(self) -> None:
        acc = self.store.accounts
        gid = (await acc.create_group("web", 1, max_message_duration=60)).id
        user = await acc.create_user("613", "10001", gid, pin="2468")
        await acc.assign_did("100", user.id)
        browser = Browser(self.web)
        await browser.log_in("/ui/login", {"voice_number": "613", "access_code": "10001",
                                         "secret": "2468"})
        sound = self.tmp / "welcome.ogg"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(sound), "synth", "1",
                        "sine", "440"], check=True, capture_output=True)
        await browser.get("/ui/greetings")
        page = await browser.upload("/ui/greetings", {"name": "welcome"},
                                    {"file": ("welcome.ogg", sound.read_bytes())})
        self.assertIn("Greeting welcome", page.text)
        await browser.get("/ui/ivr/new?type=Playback")
        await browser.post("/ui/ivr/new", {"type": "Playback", "name": "Main",
                                           "greeting": "user:welcome", "timeout": "5"})
        main = await self.store.ivr.root(user.id)
        assert main is not None
        await browser.post("/ui/ivr/new", {"type": "Playback", "parent": main.id,
                                           "number": "2", "name": "Sales",
                                           "greeting": "system:demo-moreinfo"})
        sales = await self.store.ivr.by_path(user.id, "2")
        assert sales is not None
        page = await browser.post("/ui/ivr/new", {"type": "VoiceMail", "parent": sales.id,
                                                  "number": "1", "name": "Leave a message",
                                                  "after": "hangup"})
        self.assertIn("Extension 2*1 (VoiceMail) added.", page.text)

        peer = await self.call(Caller(keys=["2", "1", "#"], record_seconds=4), args=("100",),
                               callerid="79005551234")
        own = self.work / "media" / "u" / str(user.id)
        streams = [c for c in peer.commands if c.startswith("STREAM FILE")]
        self.assertTrue(streams[0].startswith(f"STREAM FILE {own}/welcome "), streams)
        self.assertTrue(any(c.startswith("STREAM FILE demo-moreinfo ") for c in streams))
        self.assertTrue(any(c.startswith(f"RECORD FILE {own}/messages/")
                            for c in peer.commands))
        page = await browser.get("/ui/messages")
        self.assertIn("79005551234", page.text)
        self.assertIn("2*1 Leave a message", page.text)

        # a change on the web is what the next call hears (the engine's cache is told)
        await browser.get(f"/ui/ivr/{sales.id}")
        await browser.post(f"/ui/ivr/{sales.id}", {"name": "Sales", "number": "3",
                                                   "greeting": "system:demo-thanks"})
        peer = await self.call(Caller(keys=["3", None, None, None]), args=("100",))
        self.assertTrue(any(c.startswith("STREAM FILE demo-thanks ") for c in peer.commands),
                        peer.commands)

        # an employee added on the web is found by the very next call (the engine keeps
        # each directory a few seconds and is told of the change)
        directory = await self.store.ivr.add_child(user.id, main.id, "4", "Directory",
                                                   {"search": "number"})
        self.directory.invalidate_user(user.id)
        self.directory.ttl = 3600.0  # the calls move the test clock on; the cache stays
        peer = await self.call(Caller(keys=["4", "21", None, "*"]), args=("100",))
        self.assertIn('STREAM FILE dir-nomatch ""', peer.commands)
        await browser.get(f"/ui/ivr/{directory.id}/employees")
        page = await browser.post(f"/ui/ivr/{directory.id}/employees",
                                  {"number": "21", "name": "Ivanov", "phones": "79001"})
        self.assertIn("Ivanov added as 21.", page.text)
        peer = await self.call(Caller(keys=["4", "21", None, "1"], dial=["ANSWER"]),
                               args=("100",))
        self.assertIn('SAY DIGITS 21 ""', peer.commands)


WebBuiltMenuOnSQLite, WebBuiltMenuOnMariaDB = on_both_backends(WebBuiltMenuTests)
