"""A CallBlast call through the real process: ``twistd -n xvbd`` logs in to the test
Asterisk's AMI, places the due call a few seconds after the login, and serves it when it
comes back over FastAGI; the result and the CDR are where an operator looks for them."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.peers.agi import AsteriskAGI, Caller, environment, start_call
from tests.peers.ami import FakeAsterisk, OriginateRequest, Outcome
from tests.support.db import DatabaseCase
from tests.support.process import Server, write_config


async def until(check: Any, limit: float = 20.0) -> None:
    waited = 0.0
    while not check():
        await deferLater(reactor, 0.05, lambda: None)
        waited += 0.05
        if waited > limit:
            raise AssertionError("not in time")


class ProcessCallblastTest(DatabaseCase, TestCase):
    async def test_a_callblast_call_through_the_process(self) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1, server_id="TEST-NODE",
                                      dialout_context="xvb-dialout",
                                      advanced_callblast=0)).id
        user = await acc.create_user("613", "10001", gid)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        blast = await ivr.add_child(user.id, root.id, "5", "CallBlast", {})
        item = await self.store.callblast.create_item(
            user.id, blast.id, message="system:demo-thanks", phones=["79001234567"],
            # whatever the hour the suite runs at (the default hours are 09:00-21:00)
            settings={"start": "00:00", "end": "23:59"})
        peers: list[AsteriskAGI] = []
        server: Server | None = None

        def originated(request: OriginateRequest) -> Deferred[Outcome]:
            answered: Deferred[Outcome] = Deferred()

            async def answer() -> None:
                assert server is not None
                env = environment("callblast", args=(request.variables["XVB_CB_PHONE"],
                                                     request.variables["XVB_CB_TOKEN"]),
                                  callerid="613", extension="s",
                                  channel="Local/79001234567@xvb-dialout-00000000;1")
                peer = await start_call(reactor, server.agi_port, env, Caller())
                peers.append(peer)
                await until(lambda: peer.done.called or any(
                    c.startswith("SET VARIABLE") for c in peer.commands))
                answered.callback(Outcome(4))
            reactor.callLater(0, lambda: Deferred.fromCoroutine(answer()))
            return answered

        fake = FakeAsterisk(reactor, on_originate=originated)
        await fake.start()
        self.addCleanup(fake.stop)
        url = f"sqlite:{self.url.path}"
        conf = write_config(self.tmp, url, extra=f"""
[ASTERISK]
AMI_HOST = 127.0.0.1
AMI_PORT = {fake.port}
AMI_SECRET = xvbsecret
[CALLBLAST]
SLEEP = 0.1
""")
        server = Server(conf, self.tmp)
        try:
            server.wait_started()
            await until(lambda: peers and peers[0].done.called)
            await until(lambda: "CALL_TYPE=callblast" in self._cdr())
            conn = http.client.HTTPConnection("127.0.0.1", server.web_port, timeout=5)
            conn.request("GET", "/healthz")  # a local process: answers in milliseconds
            health = json.loads(conn.getresponse().read())
            conn.close()
            self.assertEqual(health["ami"], {"node": "TEST-NODE", "connected": True,
                                             "where": f"127.0.0.1:{fake.port}"})
            code, _ = server.terminate()
        finally:
            server.kill()
        self.assertEqual(code, 0)
        (request,) = fake.originates
        self.assertEqual((request.channel, request.context, request.variables["__XVB_AC"]),
                         ("Local/79001234567@xvb-dialout/n", "xvb-callblast", "10001"))
        self.assertIn('STREAM FILE demo-thanks ""', peers[0].commands)
        (result,) = await self.store.callblast.results(user.id, item.id)
        self.assertEqual((result.phone, result.result), ("79001234567", "answered"))
        summary = next(line for line in self._cdr().splitlines() if "TYPE=XVB" in line)
        self.assertIn(f"CALL_ID={result.call_id}, CALL_TYPE=callblast", summary)
        log = (self.tmp / "xvbd.log").read_text()
        self.assertRegex(log, r"AMI connected to 127\.0\.0\.1:\d+ as xvb")
        self.assertIn("callblast: 1 call(s) placed for 1 item(s)", log)
        self.assertNotIn("Traceback", server.output() + log)
        logoff = [f for _, f in fake.actions if dict(f).get("Action") == "Logoff"]
        self.assertEqual(len(logoff), 1, "a clean stop logs off")
        self.assertTrue(re.search(r"xvbd stopping", server.output()))

    def _cdr(self) -> str:
        path = self.tmp / "xvbd.cdr"
        return path.read_text() if path.exists() else ""
