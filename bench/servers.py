"""FastAGI servers for bench/agi_load.py, each running the plain seven-command script
(ANSWER, STREAM FILE, GET DATA x2, SET VARIABLE, STREAM FILE, HANGUP):

    python bench/servers.py bare  PORT   a bare Twisted LineReceiver, the yardstick
    python bench/servers.py xvbd  PORT   the same script through xvbd's FastAGI stack
                                         (FastAGIFactory, FastAGIProtocol, AGIChannel)

Each prints "listening PORT" once ready and serves until killed.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import epollreactor

epollreactor.install()
from twisted.internet import reactor  # noqa: E402
from twisted.internet.protocol import ServerFactory  # noqa: E402
from twisted.protocols.basic import LineOnlyReceiver  # noqa: E402

SCRIPT = [b"ANSWER", b'STREAM FILE demo-congrats ""', b"GET DATA beep 3000 4",
          b"GET DATA beep 3000 4", b'SET VARIABLE XVB_AC "613"', b'STREAM FILE vm-goodbye ""',
          b"HANGUP"]


class BareSession(LineOnlyReceiver):
    """What a hand-written Twisted FastAGI server does: env, then one command per reply."""

    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.in_env = True
        self.step = 0

    def lineReceived(self, line: bytes) -> None:
        if self.in_env:
            if not line:
                self.in_env = False
                self.sendLine(SCRIPT[0])
            return
        if line == b"HANGUP":
            return
        self.step += 1
        if self.step < len(SCRIPT):
            self.sendLine(SCRIPT[self.step])
        else:
            self.transport.loseConnection()


class PlainEngine:
    """The seven commands as an xvbd engine coroutine over AGIChannel."""

    async def serve(self, env: Any, channel: Any) -> None:
        await channel.answer()
        await channel.stream_file("demo-congrats")
        await channel.get_data("beep", 3000, 4)
        await channel.get_data("beep", 3000, 4)
        await channel.set_variable("XVB_AC", "613")
        await channel.stream_file("vm-goodbye")
        await channel.hangup()


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "bare":
        factory: ServerFactory = ServerFactory.forProtocol(BareSession)
    else:
        from xvbd.agi.server import FastAGIFactory

        factory = FastAGIFactory(PlainEngine(), clock=reactor, env_timeout=30)
    listening = reactor.listenTCP(port, factory, backlog=4096, interface="127.0.0.1")
    print(f"listening {listening.getHost().port}", flush=True)
    profile_to = os.environ.get("XVBD_BENCH_PROFILE")
    if profile_to:  # a profile of the server while it serves, written when it stops
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        reactor.addSystemEventTrigger("before", "shutdown",
                                      lambda: profiler.dump_stats(profile_to))
    reactor.run()


if __name__ == "__main__":
    main()
