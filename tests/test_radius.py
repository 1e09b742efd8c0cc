"""RADIUS accounting against a real FreeRADIUS: Start, an Interim-Update per activity and
Stop, with exactly the attributes of the original's packets; retransmission with the same
identifier; a wrong secret or an absent server never holds a call up."""

from __future__ import annotations

import re
import socket
import threading

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from tests.support.freeradius import SECRET, FreeRadius, free_udp_port
from xvbd.accounting.lostcalls import LostCalls
from xvbd.accounting.radius import RadiusAccounting, RadiusClient
from xvbd.config import HostPort
from xvbd.store import Store
from xvbd.store.billing import HeldCall

#: The attributes of the seed's appendix, per packet (the last three FreeRADIUS adds).
SERVER_ADDS = ["Client-IP-Address", "Acct-Unique-Session-Id", "Timestamp"]
START = ["Acct-Status-Type", "Cisco-AVPair", "h323-setup-time", "h323-call-origin",
         "h323-gw-id", "h323-call-type", "Acct-Session-Id", "User-Name", "NAS-Identifier",
         "Calling-Station-Id", "Called-Station-Id", "h323-conf-id", "NAS-IP-Address",
         *SERVER_ADDS]
INTERIM = ["Acct-Status-Type", "Cisco-AVPair", "Cisco-AVPair", "Cisco-AVPair",
           "Acct-Session-Id", "User-Name", "NAS-Identifier", "Calling-Station-Id",
           "Called-Station-Id", "h323-conf-id", "NAS-IP-Address", *SERVER_ADDS]
STOP = ["Acct-Status-Type", "Cisco-AVPair", "Acct-Session-Time", "h323-setup-time",
        "h323-connect-time", "h323-disconnect-time", "h323-call-origin", "h323-gw-id",
        "h323-call-type", "Acct-Session-Id", "User-Name", "NAS-Identifier",
        "Calling-Station-Id", "Called-Station-Id", "h323-conf-id", "NAS-IP-Address",
        *SERVER_ADDS]


class RadiusCallTests(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        self.radius = FreeRadius(self.tmp / "radius")
        self.addCleanup(self.radius.stop)

    async def accounting(self, secret: str = SECRET, port: int | None = None,
                         retries: int = 3) -> RadiusClient:
        client = RadiusClient(HostPort("127.0.0.1", port or self.radius.port), secret, reactor,
                              timeout=0.3, retries=retries)
        await client.start()
        self.addCleanup(client.stop)
        self.engine.radius = RadiusAccounting(client, "FCC-NN", send_events=True)
        return client

    async def wait_records(self, n: int) -> list[list[tuple[str, str]]]:
        from twisted.internet.task import deferLater

        for _ in range(200):
            records = self.radius.records()
            if len(records) >= n:
                return records
            await deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"FreeRADIUS logged {len(self.radius.records())} of {n} packets")

    async def tenant(self) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        user = await acc.create_user("613", "10001", 1)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        await ivr.add_child(user.id, root.id, "2", "DateTime", {"timezone": "UTC"})

    async def test_start_interims_and_stop_with_the_seeds_attributes(self) -> None:
        await self.tenant()
        client = await self.accounting()
        await self.call(Caller(keys=["2", "*"]), args=("100", "10.1.111.6"),
                        callerid="iokunev")
        steps = [line for line in self.cdr_lines() if ", TYPE=XVB," not in line]
        records = await self.wait_records(2 + len(steps))
        start, *interims, stop = records
        self.assertEqual([name for name, _ in start], START)
        for interim in interims:
            self.assertEqual([name for name, _ in interim], INTERIM)
        self.assertEqual([name for name, _ in stop], STOP)
        call_id = re.search(r"CALL_ID=(\w+)", self.cdr_lines()[0])[1]
        s, st = dict(start), dict(stop)
        self.assertEqual(s["Acct-Status-Type"], "Start")
        self.assertEqual(s["Cisco-AVPair"], '"xvb-call-type=incoming"')
        self.assertEqual((s["Acct-Session-Id"], s["h323-conf-id"]), (f'"{call_id}"',) * 2)
        self.assertEqual((s["User-Name"], s["NAS-Identifier"], s["Calling-Station-Id"],
                          s["Called-Station-Id"], s["h323-gw-id"], s["h323-call-origin"],
                          s["h323-call-type"], s["NAS-IP-Address"]),
                         ('"10001"', '"FCC-NN"', '"iokunev@10.1.111.6"', '"100"',
                          '"10.1.111.6"', '"answer"', '"VoIP"', "127.0.0.1"))
        self.assertEqual(s["h323-setup-time"], '"10:54:32.000 UTC Wed Sep 29 2010"')
        summary = self.cdr_lines()[-1]
        begin, end = (int(x) for x in re.findall(r"(?:START|STOP)_TIMESTAMP=(\d+)", summary))
        self.assertEqual(st["Acct-Status-Type"], "Stop")
        self.assertEqual(st["Acct-Session-Time"], str(end - begin))
        self.assertEqual(st["h323-connect-time"], s["h323-setup-time"])
        self.assertRegex(st["h323-disconnect-time"], r'^"\d\d:\d\d:\d\d\.000 UTC ')
        events = [[v for k, v in interim if k == "Cisco-AVPair"] for interim in interims]
        expected = []
        for line in steps:
            fields = dict(part.split("=", 1) for part in line.split(", ")[:12])
            expected.append([f'"xvb-event-type={fields["TYPE"]}"',
                             f'"xvb-event-duration={int(fields["STOP_TIMESTAMP"]) - int(fields["START_TIMESTAMP"])}"',
                             f'"xvb-event-ext={fields["EXT_NUMBER"]}"'])
        self.assertEqual(events, expected)
        self.assertEqual(client.given_up, 0)

    async def test_a_wrong_secret_or_no_server_never_holds_a_call(self) -> None:
        await self.tenant()
        for setup in ({"secret": "wrong"}, {"port": free_udp_port(), "retries": 2}):
            client = await self.accounting(**setup)
            peer = await self.call(Caller(keys=["2", "*"]), args=("100",))
            self.assertEqual(peer.commands[-1], "HANGUP")
            # a packet is given up only after its tries (0.3 s each): had the call waited
            # for an answer to any of them, one would be given up by the time it ended
            self.assertEqual(client.given_up, 0, "the call did not wait")
            from twisted.internet.task import deferLater
            for _ in range(100):
                if client.given_up >= 5:
                    break
                await deferLater(reactor, 0.05, lambda: None)
            self.assertEqual(client.given_up, 5, "Start, 3 Interims, Stop: all given up")
        self.assertEqual(self.radius.records(), [])
        self.flushLoggedErrors()

    async def test_the_stop_of_a_call_cut_when_its_xvbd_died(self) -> None:
        acc = self.store.accounts
        user = await acc.create_user("613", "10001", 1)
        await acc.change_balance(user.id, 50_000, "top-up")
        await self.accounting()
        dead = Store(self.db, clock=self.clock.seconds, instance="dead")
        await dead.processes.beat("dead", "FCC-OTHER", 1)
        started = int(self.clock.seconds())
        await dead.billing.hold(user.id, "d" * 32, 11000, 1000, lambda amount: started + 60,
                                HeldCall("FCC-OTHER", started, 10_000, 1000,
                                         access_code="10001", caller_id="iokunev",
                                         called_id="100"))
        self.clock.advance(20)
        await dead.processes.beat("dead", "FCC-OTHER", 1)  # its last heartbeat
        self.clock.advance(16)
        lost = LostCalls(self.store.billing, self.emitter, 15, self.clock,
                         radius=self.engine.radius)
        self.assertEqual(await lost.reconcile(), 1)
        [stop] = await self.wait_records(1)
        self.assertEqual([name for name, _ in stop], STOP)
        st = dict(stop)
        self.assertEqual((st["Acct-Status-Type"], st["Acct-Session-Id"], st["Acct-Session-Time"],
                          st["NAS-Identifier"], st["User-Name"], st["Calling-Station-Id"]),
                         ("Stop", f'"{"d" * 32}"', "20", '"FCC-OTHER"', '"10001"',
                          '"iokunev"'))


RadiusOnSQLite, RadiusOnMariaDB = on_both_backends(RadiusCallTests)


class RetransmissionTests(TestCase):
    async def test_the_same_packet_again_until_an_answer(self) -> None:
        from pyrad.packet import AcctPacket

        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        self.addCleanup(server.close)
        received: list[bytes] = []

        def radius_server() -> None:  # ignores the first packet, answers the second
            client_dict = None
            for n in range(2):
                data, addr = server.recvfrom(4096)
                received.append(data)
                if n == 1:
                    nonlocal_packet = AcctPacket(dict=client_dict, secret=SECRET.encode(),
                                                 packet=data)
                    reply = nonlocal_packet.CreateReply()
                    server.sendto(reply.ReplyPacket(), addr)

        thread = threading.Thread(target=radius_server, daemon=True)
        thread.start()
        client = RadiusClient(HostPort("127.0.0.1", server.getsockname()[1]), SECRET, reactor,
                              timeout=0.2, retries=3)
        await client.start()
        self.addCleanup(client.stop)
        packet = client.accounting_packet()
        packet["Acct-Status-Type"] = "Start"
        packet["Acct-Session-Id"] = "abc"
        answered = await client.send(packet)
        thread.join(5)
        self.assertTrue(answered)
        self.assertEqual(len(received), 2)
        self.assertEqual(received[0], received[1], "the same bytes, the same identifier")


class ExternalBillingTests(EngineCase):
    common_config = "USE_BILLING = -1"
    extra_config = "[RADIUS]\nACCT_HOST = 127.0.0.1\nACCT_SECRET = testing123\n"

    def setUp(self) -> None:
        super().setUp()
        self.radius = FreeRadius(self.tmp / "radius")
        self.addCleanup(self.radius.stop)

    async def test_the_billing_system_says_who_may_call_and_how_long(self) -> None:
        from xvbd.accounting.radius import RadiusAuthorizer

        client = RadiusClient(HostPort("127.0.0.1", self.radius.auth_port), SECRET, reactor,
                              timeout=0.5, retries=2)
        await client.start()
        self.addCleanup(client.stop)
        self.engine.authorizer = RadiusAuthorizer(client, "FCC-NN")
        acc, ivr = self.store.accounts, self.store.ivr
        for code, did in (("10001", "101"), ("10002", "102"), ("10003", "103")):
            user = await acc.create_user("613", code, 1)
            await acc.assign_did(did, user.id)
            root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
            await ivr.add_child(user.id, root.id, "2", "DateTime", {})
        peer = await self.call(Caller(keys=["#"] * 300), args=("101",))
        self.assertEqual(self.result, "TIMEUP", "Session-Timeout 120 ends the call")
        summary = self.cdr_lines()[-1]
        start, stop = (int(x) for x in re.findall(r"(?:START|STOP)_TIMESTAMP=(\d+)", summary))
        self.assertLessEqual(stop - start, 122)
        await self.call(Caller(keys=["2", "*"]), args=("102",))
        self.assertEqual(self.result, "OK", "accepted, no limit")
        peer = await self.call(Caller(), args=("103",))
        self.assertEqual(self.result, "NOFUNDS", "rejected")
        self.assertEqual(peer.commands[-2:], ['STREAM FILE please-try-call-later ""', "HANGUP"])
        self.assertFalse(any("STREAM FILE w " in c for c in peer.commands))


ExternalOnSQLite, ExternalOnMariaDB = on_both_backends(ExternalBillingTests)
