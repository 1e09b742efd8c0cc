"""WEB-Request and web variables: the SSRF guard's address checks, the fetcher against a
real HTTP server process on loopback (slow, huge, redirecting, hostile answers), and calls
through the FastAGI peer on both backends (what the caller hears, the variables, the CDR).

The server listens on 127.0.0.1; ``[WEBREQUEST] ALLOW = 127.0.0.1/32`` and ``PORTS`` its
port make it reachable, and every other loopback or private address stays refused.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import WebServerEngineCase
from tests.support.httpserver import WebServer
from xvbd.config import parse_settings
from xvbd.engine.netguard import NetPolicy, WebFailure, kind_of, literal_address
from xvbd.engine.webfetch import WebFetcher
from xvbd.mediadirs import MediaDirs

# ---------------------------------------------------------------------- the address checks


def refused(url: str, policy: NetPolicy | None = None) -> str:
    """The cause a URL is refused for ('' when it is accepted)."""
    try:
        (policy or NetPolicy()).target(url)
    except WebFailure as failure:
        return failure.cause
    return ""


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.8.9.10/", "http://[::1]/", "http://0.0.0.0/", "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/", "http://[fe80::1]/", "http://224.0.0.1/", "http://[ff02::1]/",
    "http://[::]/", "http://100.64.0.1/", "http://240.0.0.1/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::10.0.0.1]/", "http://[2002:7f00:1::]/",
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://0x7f000001/",
    "http://127.1/", "http://017700000001/", "http://2852039166/",  # 169.254.169.254
])
def test_non_public_addresses_in_every_spelling_are_refused(url: str) -> None:
    assert refused(url) == "REFUSED", url


@pytest.mark.parametrize("url", ["http://8.8.8.8/", "https://[2001:4860:4860::8888]/x",
                                 "http://example.com/a?b=%20", "https://1.1.1.1:443/"])
def test_public_addresses_and_names_pass(url: str) -> None:
    assert refused(url) == "", url


@pytest.mark.parametrize(("url", "cause"), [
    ("ftp://example.com/", "BAD_URL"), ("file:///etc/passwd", "BAD_URL"),
    ("gopher://example.com/", "BAD_URL"), ("//example.com/", "BAD_URL"),
    ("http://user:secret@example.com/", "BAD_URL"), ("http://evil@127.0.0.1/", "BAD_URL"),
    ("http://example.com:22/", "REFUSED"), ("http://example.com:6379/", "REFUSED"),
    ("http:///nohost", "BAD_URL"), ("http://[fe80::1%25eth0]/", "BAD_URL"),
])
def test_schemes_userinfo_and_ports(url: str, cause: str) -> None:
    assert refused(url) == cause, url


def test_decimal_and_octal_hosts_are_the_addresses_a_resolver_makes() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    for host in ("2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7F000001"):
        assert literal_address(host) == loopback, host
    assert literal_address("cafe.be") is None, "a name that looks like hex is a name"
    assert literal_address("example.com") is None


def test_what_each_address_is_called() -> None:
    assert kind_of(ipaddress.ip_address("169.254.169.254")) == \
        "link-local: the cloud metadata address"
    assert kind_of(ipaddress.ip_address("::ffff:10.0.0.1")) == \
        "private (it carries 10.0.0.1)"
    assert kind_of(ipaddress.ip_address("93.184.216.34")) is None


def test_the_allow_list_opens_its_networks_and_no_more() -> None:
    policy = NetPolicy(["10.20.0.0/16", "fd00:1::/64"], [8080])
    assert refused("http://10.20.3.4:8080/", policy) == ""
    assert refused("http://[::ffff:10.20.3.4]/", policy) == "", "mapped into an allowed net"
    assert refused("http://[fd00:1::5]/", policy) == ""
    assert refused("http://10.21.0.1/", policy) == "REFUSED"
    assert refused("http://127.0.0.1:8080/", policy) == "REFUSED"
    assert refused("http://10.20.3.4:8081/", policy) == "REFUSED", "the port still counts"


def test_the_config_keys_are_checked() -> None:
    s = parse_settings("[WEBREQUEST]\nALLOW = 10.0.0.0/8, ::1\nPORTS = 8080\nREDIRECTS = 0\n")
    assert (s.webrequest.allow, s.webrequest.ports, s.webrequest.redirects) == \
        (("10.0.0.0/8", "::1"), (8080,), 0)
    for bad, said in (("ALLOW = intranet", "[WEBREQUEST] ALLOW: 'intranet' is not an IP"),
                      ("PORTS = 0", "[WEBREQUEST] PORTS: '0' is not a port"),
                      ("REDIRECTS = 11", "[WEBREQUEST] REDIRECTS")):
        with pytest.raises(Exception) as caught:
            parse_settings(f"[WEBREQUEST]\n{bad}\n")
        assert said in str(caught.value), str(caught.value)


# ---------------------------------------------------------------------- the fetcher


class FetcherTests(TestCase):
    """:class:`WebFetcher` on the real reactor against the server process; its time cap
    runs on a test clock."""

    def setUp(self) -> None:
        self.server = WebServer()
        self.addCleanup(self.server.stop)
        self.clock = Clock()
        tmp = Path(tempfile.mkdtemp(prefix="xvbd-web-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        self.media = MediaDirs(tmp / "media", tmp / "tmp", "", lambda fn, *a: fn(*a))
        self.resolved: list[str] = []
        self.web = self.fetcher()

    def fetcher(self, names: dict[str, list[str]] | None = None,
                redirects: int = 3) -> WebFetcher:
        names = {"web.test": ["127.0.0.1"], **(names or {})}
        real: Any = None

        async def resolve(host: str, port: int) -> list[Any]:
            self.resolved.append(host)
            if host in names:
                return [ipaddress.ip_address(a) for a in names[host]]
            return await real(host, port)

        web = WebFetcher(NetPolicy(["127.0.0.1/32"], [self.server.port]), reactor,
                         self.clock, self.media, redirects=redirects, resolver=resolve)
        real = web._getaddrinfo
        return web

    async def cause(self, url: str, **kw: Any) -> str:
        try:
            await self.web.fetch(url, **kw)
        except WebFailure as failure:
            return failure.cause
        return "OK"

    async def test_text_json_and_a_post(self) -> None:
        answer = await self.web.fetch(self.server.url("/text"))
        self.assertEqual((answer.status, answer.content_type, answer.charset, answer.text()),
                         (200, "text/plain", "utf-8", "Your balance is 12 dollars"))
        answer = await self.web.fetch(self.server.url("/echo?a=1"), method="POST",
                                      body=b"x=%20y", content_type="application/json")
        echo = json.loads(answer.body)
        self.assertEqual((echo["method"], echo["path"], echo["body"], echo["type"]),
                         ("POST", "/echo?a=1", "x=%20y", "application/json"))
        self.assertEqual(echo["encoding"], "identity", "answers are asked for uncompressed")

    async def test_error_statuses_and_hostile_answers(self) -> None:
        self.assertEqual(await self.cause(self.server.url("/status/404")), "HTTP_404")
        self.assertEqual(await self.cause(self.server.url("/status/500")), "HTTP_500")
        self.assertEqual(await self.cause(self.server.url("/gzip")), "BAD_ANSWER",
                         "a compressed answer could grow past the cap")

    async def test_the_size_cap_with_a_length_and_while_streaming(self) -> None:
        url = self.server.url("/huge?n=5000")
        self.assertEqual(len((await self.web.fetch(url, max_bytes=5000)).body), 5000)
        self.assertEqual(await self.cause(url, max_bytes=4999), "TOO_BIG")
        self.assertEqual(await self.cause(self.server.url("/endless"), max_bytes=100000),
                         "TOO_BIG", "an endless body is cut off at the cap, not read to the end")

    async def test_the_time_cap_on_the_clock(self) -> None:
        pending = self.web.fetch(self.server.url("/slow"), seconds=7)
        from twisted.internet.defer import Deferred
        work = Deferred.fromCoroutine(pending)
        await deferLater(reactor, 0.2, lambda: None)  # the request is at the server
        self.assertFalse(work.called)
        self.clock.advance(6.9)
        self.assertFalse(work.called)
        self.clock.advance(0.1)
        failure = self.failureResultOf(work, WebFailure).value
        self.assertEqual((failure.cause, failure.detail), ("TIMEOUT",
                                                           "no whole answer within 7 s"))
        self.assertEqual(self.web.in_flight, 0)

    async def test_redirects_are_followed_checked_and_bounded(self) -> None:
        answer = await self.web.fetch(self.server.url("/redirect?to=/text"))
        self.assertEqual(answer.text(), "Your balance is 12 dollars")
        port = self.server.port
        for to in (f"http://10.0.0.1:{port}/text", f"http://169.254.169.254:{port}/",
                   f"http://127.0.0.2:{port}/text", f"http://[::1]:{port}/text",
                   f"http://2130706434:{port}/text", "http://example.com:22/"):
            self.assertEqual(await self.cause(self.server.url(f"/redirect?to={to}")),
                             "REFUSED", to)
        self.assertEqual(await self.cause(self.server.url("/redirect?to=ftp://x/")), "BAD_URL")
        self.assertEqual(await self.cause(self.server.url("/loop")), "REDIRECTS")
        self.web = self.fetcher(redirects=0)
        self.assertEqual(await self.cause(self.server.url("/redirect?to=/text")), "REDIRECTS")

    async def test_names_are_resolved_and_checked_on_every_hop(self) -> None:
        self.web = self.fetcher({"intranet.test": ["10.1.2.3"],
                                 "mixed.test": ["127.0.0.1", "192.168.0.9"]})
        port = self.server.port
        answer = await self.web.fetch(f"http://web.test:{port}/redirect?to="
                                      f"http://web.test:{port}/echo")
        self.assertEqual(json.loads(answer.body)["host"], f"web.test:{port}")
        self.assertEqual(self.resolved, ["web.test", "web.test"], "each hop resolved, once")
        self.assertEqual(await self.cause(f"http://intranet.test:{port}/"), "REFUSED")
        self.assertEqual(await self.cause(f"http://mixed.test:{port}/text"), "REFUSED",
                         "one private address in the answer refuses the name")
        self.assertEqual(await self.cause(f"http://web.test:{port}/redirect?to="
                                          f"http://intranet.test:{port}/"), "REFUSED")
        self.assertEqual(await self.cause(f"http://no-such-name.invalid:{port}/"),
                         "UNREACHABLE")

    async def test_a_real_name_resolving_to_loopback_is_refused(self) -> None:
        self.web = WebFetcher(NetPolicy([], [self.server.port]), reactor, self.clock,
                              self.media)
        try:
            await self.web.fetch(f"http://localhost:{self.server.port}/text")
        except WebFailure as failure:
            self.assertEqual(failure.cause, "REFUSED")
            self.assertIn("(the address of localhost) is loopback", failure.detail)
        else:
            self.fail("localhost was fetched")

    async def test_an_audio_answer_becomes_a_sound_asterisk_plays(self) -> None:
        answer = await self.web.fetch(self.server.url("/audio"))
        sound = await self.web.sound_of(answer.body, 300)
        wav = Path(sound.removeprefix("file:") + ".wav")
        with wave.open(str(wav)) as w:
            self.assertEqual((w.getframerate(), w.getnchannels(), w.getsampwidth()), (8000, 1, 2))
        with self.assertRaises(WebFailure) as caught:
            await self.web.sound_of(b"not audio at all", 300)
        self.assertEqual(caught.exception.cause, "BAD_AUDIO")


# ---------------------------------------------------------------------- calls


class WebCallTests(WebServerEngineCase):
    maxDiff = None


    async def tenant(self, children: dict[str, tuple[str, dict[str, Any]]],
                     **group: Any) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1, allow_tts=1, **group)).id
        user = await acc.create_user("613", "10001", gid)
        await acc.assign_did("100", user.id)
        self.user_id = user.id
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        self.ext: dict[str, Any] = {}
        for number, (kind, settings) in children.items():
            parent = self.ext[number.rsplit("*", 1)[0]] if "*" in number else root
            self.ext[number] = await ivr.add_child(user.id, parent.id,
                                                   number.rsplit("*", 1)[-1], kind, settings)

    def steps(self, type_name: str) -> list[str]:
        return [re.sub(r".*EXT_NUMBER=([^,]*),.*TYPE=\w+(, DATA=)?", r"\1 ", line).strip()
                for line in self.cdr_lines() if f", TYPE={type_name}" in line]

    async def test_a_json_answer_is_kept_spoken_and_the_success_branch_taken(self) -> None:
        await self.tenant({
            "1": ("WebRequest", {"url": self.server.url("/json?c=%CALLERID%"),
                                 "json_path": "data.items.0.name", "variable": "who",
                                 "success": "7", "failure": "8"}),
            "7": ("DateTime", {"timezone": "UTC"}),
            "8": ("Pause", {"seconds": 1})})
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        self.assertEqual(self.calls[-1].variables, {"who": "Bob"})
        spoken = await self.engine.tts.file_for("Bob", "")
        self.assertIn(f'STREAM FILE {spoken} ""', peer.commands, "Bob is said to the caller")
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands),
                        "then the success branch, 7")
        self.assertEqual(self.steps("WebRequest"), ["1 RESULT=OK"])
        self.assertEqual(self.logs, [])

    async def test_references_go_into_the_url_and_body_url_encoded(self) -> None:
        await self.tenant({
            "1": ("UserVar", {"name": "code"}),
            "2": ("DBVar", {"name": "note", "mode": "value", "value": "a b&c=d/é"}),
            "3": ("WebRequest", {"url": self.server.url(
                "/echo?c=%CALLERID%&d=%DID%&ac=%AC%&v=%VAR:code%&n=%DBVAR:note%"),
                "method": "POST", "body": "code=%VAR:code%&note=%DBVAR:note%",
                "json_path": "path", "variable": "sent", "say": False}),
            "4": ("WebRequest", {"url": self.server.url("/echo"), "method": "POST",
                                 "body": "note=%DBVAR:note%", "json_path": "body",
                                 "variable": "posted", "say": False})})
        peer = await self.call(Caller(keys=["1", "4#2", "2", "3", "4", "*"]), args=("100",),
                               callerid="+7 (495) 123")
        variables = self.calls[-1].variables
        self.assertEqual(variables["sent"], "/echo?c=%2B7%20%28495%29%20123&d=100&ac=10001"
                         "&v=4&n=a%20b%26c%3Dd%2F%C3%A9")
        self.assertEqual(variables["posted"], "note=a%20b%26c%3Dd%2F%C3%A9")
        self.assertFalse(any("/tts/" in c for c in peer.commands), "say is off")

    async def test_an_http_error_takes_the_failure_branch_and_warns_once(self) -> None:
        await self.tenant({
            "1": ("WebRequest", {"url": self.server.url("/status/404"), "variable": "v",
                                 "failure": "8"}),
            "8": ("DateTime", {"timezone": "UTC"})})
        for _ in range(3):
            peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
            self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))
            self.assertNotIn("v", self.calls[-1].variables)
        self.assertEqual(self.steps("WebRequest"), ["1 RESULT=HTTP_404"] * 3)
        self.assertEqual(len(self.logs), 1, self.logs)
        self.assertIn("WebRequest extension 1 of user 1: the server answered 404 Not Found "
                      "(RESULT=HTTP_404); the call went on to the failure branch",
                      self.logs[0])

    async def test_a_refused_address_is_an_apology_without_a_failure_branch(self) -> None:
        await self.tenant({"1": ("WebRequest", {
            "url": f"http://127.0.0.2:{self.server.port}/text"})})
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        at = peer.commands.index('STREAM FILE tt-somethingwrong ""')
        self.assertTrue(peer.commands[at + 1].startswith("STREAM FILE w "),
                        "the apology, then back to the menu")
        self.assertEqual(self.steps("WebRequest"), ["1 RESULT=REFUSED"])
        self.assertIn("127.0.0.2 is loopback", self.logs[0])
        self.assertIn("unless [WEBREQUEST] ALLOW lists the network", self.logs[0])

    async def test_a_slow_server_is_a_timeout_at_the_groups_limit(self) -> None:
        await self.tenant({"1": ("WebRequest", {"url": self.server.url("/slow"),
                                                "failure": "8"}),
                           "8": ("Pause", {"seconds": 1})}, max_web_request_seconds=4)
        peer = await self.start(Caller(keys=["1", "*"]), args=("100",))
        while self.engine.web.in_flight == 0:
            await deferLater(reactor, 0.01, lambda: None)
        self.clock.advance(3.9)
        self.assertEqual(self.engine.web.in_flight, 1)
        self.clock.advance(0.1)
        await peer.done
        await self.factory.when_idle()
        self.assertEqual(self.steps("WebRequest"), ["1 RESULT=TIMEOUT"])
        self.assertIn("no whole answer within 4 s (RESULT=TIMEOUT)", self.logs[0])

    async def test_big_answers_bad_json_and_wrong_types_fail_by_name(self) -> None:
        cases = {"1": ("/huge?n=2000", {}), "2": ("/endless", {}),
                 "3": ("/badjson", {}), "4": ("/html-as-json", {"answer": "json"}),
                 "5": ("/text", {"answer": "audio"}), "6": ("/json", {"json_path": "nope.0"})}
        await self.tenant({n: ("WebRequest", {"url": self.server.url(path), **more})
                           for n, (path, more) in cases.items()},
                          max_tts_download_bytes=1000)
        await self.call(Caller(keys=["1", "2", "3", "4", "5", "6", "*"]), args=("100",))
        self.assertEqual(self.steps("WebRequest"), [
            "1 RESULT=TOO_BIG", "2 RESULT=TOO_BIG", "3 RESULT=BAD_JSON", "4 RESULT=BAD_TYPE",
            "5 RESULT=BAD_TYPE", "6 RESULT=NO_VALUE"])
        self.assertEqual(len(self.logs), 6, self.logs)

    async def test_an_audio_answer_is_played_and_html_is_read_as_text(self) -> None:
        await self.tenant({"1": ("WebRequest", {"url": self.server.url("/audio")}),
                           "2": ("WebRequest", {"url": self.server.url("/html"),
                                                "variable": "hours", "say": False})})
        peer = await self.call(Caller(keys=["1", "2", "*"]), args=("100",))
        played = [c for c in peer.commands if "/web/" in c]
        self.assertEqual(len(played), 1, peer.commands)
        path = played[0].split()[2]
        self.assertTrue(Path(path + ".wav").is_file())
        self.assertTrue(path.startswith(str(self.work / "media" / "web")))
        self.assertEqual(self.calls[-1].variables["hours"], "Open 9 to 5 & weekends")
        self.assertEqual(self.steps("WebRequest"), ["1 RESULT=OK", "2 RESULT=OK"])

    async def test_a_web_variable_is_cached_for_its_ttl_then_fetched_again(self) -> None:
        await self.tenant({
            "1": ("WebVar", {"name": "n", "url": self.server.url("/count"), "ttl": 60}),
            "2": ("WebVar", {"name": "rate", "url": self.server.url("/json"),
                             "json_path": "rate", "ttl": 0}),
            "3": ("WebVar", {"name": "gone", "url": self.server.url("/status/503"),
                             "fallback": "unknown"}),
            "4": ("GotoIf", {"conditions": [{"kind": "var", "name": "n", "value": "1",
                                             "target": "7"}], "default": "8"}),
            "7": ("DateTime", {"timezone": "UTC"}),
            "8": ("Pause", {"seconds": 1})})
        seen = []
        for advance in (0, 0, 60):  # a call lasts 31 s on the test's clock
            self.clock.advance(advance)
            peer = await self.call(Caller(keys=["1", "2", "3", "4", "*"]), args=("100",))
            variables = self.calls[-1].variables
            seen.append((variables["n"], any(c.startswith("SAY DATETIME")
                                              for c in peer.commands)))
            self.assertEqual((variables["rate"], variables["gone"]), ("12.5", "unknown"))
        self.assertEqual(seen, [("1", True), ("1", True), ("2", False)],
                         "kept 60 s, then fetched again; Goto If reads it")
        self.assertEqual(self.steps("WebVar")[:3], ["1 NAME=n, RESULT=OK",
                                                   "2 NAME=rate, RESULT=OK",
                                                   "3 NAME=gone, RESULT=HTTP_503"])
        self.assertEqual(self.steps("WebVar")[3], "1 NAME=n, RESULT=CACHED")
        self.assertEqual(len(self.logs), 1, "one WARN for the failing variable")

    async def test_the_cache_is_per_tenant(self) -> None:
        await self.tenant({"1": ("WebVar", {"name": "n", "url": self.server.url("/count"),
                                            "ttl": 600})})
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g2", 1)).id
        other = await acc.create_user("614", "20002", gid)
        await acc.assign_did("200", other.id)
        root = await ivr.create_root(other.id, "Playback", {"greeting": "system:w"})
        await ivr.add_child(other.id, root.id, "1", "WebVar",
                            {"name": "n", "url": self.server.url("/count"), "ttl": 600})
        await self.call(Caller(keys=["1", "*"]), args=("100",))
        await self.call(Caller(keys=["1", "*"]), args=("200",))
        self.assertEqual(self.calls[-1].variables["n"], "2", "not the first tenant's value")

    async def test_the_group_type_limit_holds(self) -> None:
        await self.tenant({"1": ("WebRequest", {"url": self.server.url("/text")})})
        await self.store.accounts.set_type_limit(
            (await self.store.accounts.get_user(self.user_id)).group_id, "WebRequest", 0)
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands)
        self.assertEqual(self.steps("WebRequest"), [])


WebCallsOnSQLite, WebCallsOnMariaDB = on_both_backends(WebCallTests)
