"""An xvbd call engine on a real loopback FastAGI port, a per-test database and a
controlled clock, for integration tests that play Asterisk with ``tests.peers.agi``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread

from tests.peers.agi import AsteriskAGI, Caller, environment, place_call, start_call
from tests.support.db import DatabaseCase
from xvbd.accounting.sinks import CDREmitter, DBSink, FileSink
from xvbd.agi.server import FastAGIFactory
from xvbd.config import Settings, parse_settings
from xvbd.counters import LocalCounters
from xvbd.engine.directory import Directory
from xvbd.engine.engine import Engine
from xvbd.engine.tts import TTS
from xvbd.engine.webfetch import web_fetcher
from xvbd.mediadirs import MediaDirs

T0 = 1285757672  # the seed's example call started at this second


class EngineCase(DatabaseCase):
    """Mixin: ``self.engine`` serving FastAGI on ``self.port``; ``self.call(...)``."""

    extra_config = ""
    common_config = ""  # more keys of [COMMON]

    def setUp(self) -> None:
        super().setUp()
        work = self.tmp / "work"
        work.mkdir(parents=True)
        self.work = work
        self.cdr_file = work / "xvbd.cdr"
        self.settings: Settings = parse_settings(f"""
[COMMON]
SERVER_ID = FCC-NN
PSTN_GW = 10.0.0.1
SIP_DOMAINS = comp.ru, somecomp.com
{self.common_config}
[CDR]
FILE = {self.cdr_file}
[PATH]
MEDIA_DIR = {work / 'media'}
TMP_DIR = {work / 'tmp'}
{self.extra_config}
""", "test.conf")
        self.clock = Clock()
        self.clock.advance(T0)
        self.counters = LocalCounters(self.clock)
        self.emitter = CDREmitter([FileSink(self.cdr_file, reactor), DBSink(self.store.cdrs)])
        self.addCleanup(self.emitter.stopService)  # type: ignore[attr-defined]
        self.directory = Directory(self.store, self.clock)
        paths = self.settings.path
        self.media = MediaDirs(paths.media_dir, paths.tmp_dir, paths.media_group,
                               lambda fn, *a: deferToThread(fn, *a))
        self.engine = Engine(self.settings, self.store, self.directory, self.counters,
                             self.emitter, self.clock, media=self.media,
                             tts=TTS(self.media, reactor),
                             web=web_fetcher(self.settings, reactor, self.media, self.clock))
        self.calls: list[Any] = []  # every Call the engine made, to read its outcome
        make_call = self.engine.new_call

        def recorded(*args: Any) -> Any:
            call = make_call(*args)
            self.calls.append(call)
            return call

        self.engine.new_call = recorded  # type: ignore[method-assign]
        self.factory = FastAGIFactory(self.engine, clock=reactor, env_timeout=5)
        self.listener = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.listener.stopListening)  # type: ignore[attr-defined]
        self.port = self.listener.getHost().port

    async def call(self, caller: Caller | None = None, script: str = "ivr",
                   args: tuple[str, ...] = ("2500", "10.0.0.1"), wait_idle: bool = True,
                   **env: Any) -> AsteriskAGI:
        """Place one call; return the Asterisk side once xvbd has closed the session (and,
        with ``wait_idle``, once every call's stop work is done: when Asterisk closes first,
        the records come after)."""
        peer = await place_call(reactor, self.port, environment(script, args=args, **env),
                                caller or Caller(), self.clock.advance)
        self.peer = peer
        if wait_idle:
            await self.factory.when_idle()
        return peer

    async def start(self, caller: Caller, script: str = "ivr",
                    args: tuple[str, ...] = ("2500", "10.0.0.1"),
                    advance: Callable[[float], None] | None = None,
                    **env: Any) -> AsteriskAGI:
        """Place a call and return at once (``peer.done`` fires when xvbd closes it).  The
        Asterisk side moves the test clock as it plays and waits (``advance``; a call that
        must not move it for the others gives a no-op)."""
        return await start_call(reactor, self.port, environment(script, args=args, **env),
                                caller, advance or self.clock.advance)

    @property
    def result(self) -> str:
        """How the last call ended (XVB_RESULT: OK, NOUSER, LOCKED, BUSY, THROTTLED …): the
        call's own word, the same as the one on the wire whenever it reached Asterisk (a
        call xvbd hung up tells the dialplan nothing)."""
        result = str(self.calls[-1].result)
        peer = getattr(self, "peer", None)
        if peer is not None and "XVB_RESULT" in peer.variables:
            assert peer.variables["XVB_RESULT"] == result, (peer.variables, result)
        return result

    def cdr_lines(self) -> list[str]:
        return self.cdr_file.read_text().splitlines() if self.cdr_file.exists() else []


class WebServerEngineCase(EngineCase):
    """An :class:`EngineCase` with the test HTTP server (a process of its own) that the
    engine's web fetcher may reach (``[WEBREQUEST] ALLOW``, its port), and ``self.logs``,
    the WARN lines logged meanwhile."""

    def setUp(self) -> None:
        from tests.support.httpserver import WebServer
        from tests.support.logs import warnings_into

        self.server = WebServer()
        self.addCleanup(self.server.stop)
        self.extra_config = (f"[WEBREQUEST]\nALLOW = 127.0.0.1/32\n"
                             f"PORTS = {self.server.port}\n")
        super().setUp()
        self.logs = warnings_into(self)
