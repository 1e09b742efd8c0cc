"""RADIUS accounting (``[RADIUS]``): Start when a call is served, an Interim-Update per
activity (with ``ACCT_SEND_EVENTS``), Stop at the end — the attribute set of the original
product (the seed's appendix).

Packets are encoded by pyrad (``etc/radius/dictionary``) and sent over Twisted UDP from the
reactor.  A packet is sent again after ``ACCT_TIMEOUT`` seconds with the same identifier
and bytes, at most ``ACCT_RETRIES`` times, then given up and logged; an answer whose
authenticator does not check (a wrong secret) is dropped and logged.  Nothing here is ever
waited for by a call.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pyrad.dictionary import Dictionary
from pyrad.packet import (
    AccessAccept,
    AccessReject,
    AccountingResponse,
    AcctPacket,
    AuthPacket,
    Packet,
)
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

from xvbd.config import HostPort
from xvbd.logs import logger

if TYPE_CHECKING:
    from xvbd.accounting.cdr import CDRRecord
    from xvbd.engine.call import Call
    from xvbd.store.billing import Hold


class _Identified(Protocol):
    """What names a call in its packets: a :class:`Call`, or the hold of a cut call."""

    @property
    def call_id(self) -> str: ...
    @property
    def access_code(self) -> str: ...
    @property
    def caller_id(self) -> str: ...
    @property
    def called_id(self) -> str: ...

log = logger("xvbd.radius")

#: ``etc/radius/dictionary``, reached through the package (a link in the checkout, a copy
#: in an installed package).
DICTIONARY = Path(__file__).parent / "radius.dictionary"


def h323_time(when: float) -> str:
    """Cisco's h323 time: ``06:25:46.000 UTC Thu Sep 16 2010``."""
    return time.strftime("%H:%M:%S.000 UTC %a %b %d %Y", time.gmtime(when))


class _Pending:
    __slots__ = ("d", "packet", "raw", "timer", "tries")

    def __init__(self, packet: Packet, raw: bytes, d: Deferred[Packet | None]) -> None:
        self.packet = packet
        self.raw = raw
        self.d = d
        self.tries = 0
        self.timer: Any = None


class RadiusClient(DatagramProtocol):
    """Requests to one RADIUS server: identifiers, retransmission, checked answers."""

    MAX_QUEUE = 10_000

    def __init__(self, server: HostPort, secret: str, reactor: Any, *, timeout: float = 3.0,
                 retries: int = 3) -> None:
        self.server = server
        self.secret = secret.encode("utf-8")
        self.reactor = reactor
        self.timeout = timeout
        self.retries = retries
        self.dictionary = Dictionary(str(DICTIONARY))
        self.nas_address = "127.0.0.1"
        self.address: tuple[str, int] | None = None
        self._port: Any = None
        self._pending: dict[int, _Pending] = {}
        self._waiting: deque[tuple[Packet, Deferred[Packet | None]]] = deque()
        self._next_id = 0
        self.given_up = 0

    async def start(self) -> None:
        ip = await self.reactor.resolve(self.server.host)
        self.address = (ip, self.server.port)
        self.nas_address = self._local_address()
        self._port = self.reactor.listenUDP(0, self)

    def stop(self) -> None:
        for pending in self._pending.values():
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
        self._pending.clear()
        if self._port is not None:
            self._port.stopListening()
            self._port = None

    def _local_address(self) -> str:
        """Our address as the server sees it (NAS-IP-Address)."""
        assert self.address is not None
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(self.address)
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"
        finally:
            probe.close()

    def accounting_packet(self) -> AcctPacket:
        return AcctPacket(dict=self.dictionary, secret=self.secret)

    def auth_packet(self) -> AuthPacket:
        return AuthPacket(dict=self.dictionary, secret=self.secret)

    def send(self, packet: Packet) -> Deferred[bool]:
        """Send ``packet``; fires True when the server answered, False when it was given
        up.  Never fails."""
        return self.ask(packet).addCallback(lambda reply: reply is not None)

    def ask(self, packet: Packet) -> Deferred[Packet | None]:
        """Send ``packet``; fires with the server's checked answer, or None when it was
        given up.  Never fails."""
        d: Deferred[Packet | None] = Deferred()
        if self._port is None or self.address is None:
            d.callback(None)
            return d
        if len(self._pending) >= 256:
            if len(self._waiting) >= self.MAX_QUEUE:
                log.warn("RADIUS: {n} packets wait already; one more is dropped",
                         n=len(self._waiting))
                d.callback(None)
                return d
            self._waiting.append((packet, d))
            return d
        self._transmit(packet, d)
        return d

    def _free_id(self) -> int:
        while self._next_id in self._pending:
            self._next_id = (self._next_id + 1) % 256
        identifier = self._next_id
        self._next_id = (self._next_id + 1) % 256
        return identifier

    def _transmit(self, packet: Packet, d: Deferred[Packet | None]) -> None:
        packet.id = self._free_id()
        raw = packet.RequestPacket()
        pending = _Pending(packet, raw, d)
        self._pending[packet.id] = pending
        self._send(pending)

    def _send(self, pending: _Pending) -> None:
        pending.tries += 1
        try:
            assert self._port is not None and self.address is not None
            self._port.write(pending.raw, self.address)
        except OSError as exc:
            log.warn("RADIUS: sending to {server} failed: {error}", server=str(self.server),
                     error=str(exc))
        pending.timer = self.reactor.callLater(self.timeout, self._timed_out, pending.packet.id)

    def _timed_out(self, identifier: int) -> None:
        pending = self._pending.get(identifier)
        if pending is None:
            return
        if pending.tries < self.retries:
            self._send(pending)
            return
        self.given_up += 1
        log.warn("RADIUS: no answer from {server} to packet {id} after {n} tries; given up "
                 "(check [RADIUS] ACCT_HOST and that the server runs)", server=str(self.server),
                 id=identifier, n=pending.tries)
        self._finish(identifier, None)

    def _finish(self, identifier: int, reply: Packet | None) -> None:
        pending = self._pending.pop(identifier)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.d.callback(reply)
        if self._waiting and len(self._pending) < 256:
            packet, d = self._waiting.popleft()
            self._transmit(packet, d)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if len(data) < 20:
            return
        pending = self._pending.get(data[1])
        if pending is None:
            return
        try:
            reply = pending.packet.CreateReply(packet=data)
            good = pending.packet.VerifyReply(reply, data)
        except Exception:
            good = False
        if not good:
            log.warn("RADIUS: an answer from {addr} does not check against [RADIUS] "
                     "ACCT_SECRET (a wrong secret?); ignored", addr=str(addr))
            return
        if isinstance(pending.packet, AcctPacket) and reply.code != AccountingResponse:
            return
        if isinstance(pending.packet, AuthPacket) and reply.code not in (AccessAccept,
                                                                          AccessReject):
            return
        self._finish(data[1], reply)


class RadiusService(Service):
    """Starts the client with the process (the server's name resolved), stops it last."""

    name = "radius"

    def __init__(self, client: RadiusClient) -> None:
        self.client = client

    def startService(self) -> None:
        super().startService()
        Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        try:
            await self.client.start()
        except Exception as exc:
            log.error("[RADIUS] ACCT_HOST {host}: cannot start ({error}); no accounting "
                      "packets are sent", host=str(self.client.server), error=str(exc))

    def stopService(self) -> None:
        super().stopService()
        self.client.stop()


class RadiusAuthorizer:
    """External billing (``USE_BILLING = -1``): the billing system says, by RADIUS, whether
    a call may be served and for how long (Access-Accept, with a Session-Timeout when it
    limits the call) or not (Access-Reject).  No answer is a refusal: calls are not given
    away because the billing system cannot be reached."""

    def __init__(self, client: RadiusClient, server_id: str) -> None:
        self.client = client
        self.server_id = server_id

    async def authorize(self, call: Call) -> tuple[bool, int | None]:
        """(allowed, seconds allowed or None for no limit)."""
        p = self.client.auth_packet()
        p["User-Name"] = call.access_code or "unknown"
        p["User-Password"] = p.PwCrypt(call.access_code or "unknown")
        p["NAS-Identifier"] = self.server_id
        p["NAS-IP-Address"] = self.client.nas_address
        p["Calling-Station-Id"] = call.caller_id or "unknown"
        p["Called-Station-Id"] = call.called_id or "unknown"
        p["Acct-Session-Id"] = call.call_id
        p["Cisco-AVPair"] = [f"xvb-call-type={call.call_type}"]
        reply = await self.client.ask(p)
        if reply is None:
            log.error("external billing did not answer for call {call_id} (AccessCode "
                      "{ac}); the call is refused", call_id=call.call_id, ac=call.access_code)
            return False, None
        if reply.code != AccessAccept:
            return False, None
        timeout = reply.get("Session-Timeout")
        return True, (int(timeout[0]) if timeout else None)


class RadiusAccounting:
    """The accounting packets of calls."""

    def __init__(self, client: RadiusClient, server_id: str, send_events: bool) -> None:
        self.client = client
        self.server_id = server_id
        self.send_events = send_events

    def _packet(self, status: str) -> AcctPacket:
        p = self.client.accounting_packet()
        p["Acct-Status-Type"] = status
        return p

    def _ids(self, p: AcctPacket, call: _Identified) -> None:
        p["Acct-Session-Id"] = call.call_id
        p["User-Name"] = call.access_code or "unknown"
        p["NAS-Identifier"] = self.server_id
        p["Calling-Station-Id"] = call.caller_id or "unknown"
        p["Called-Station-Id"] = call.called_id or "unknown"
        p["h323-conf-id"] = call.call_id
        p["NAS-IP-Address"] = self.client.nas_address

    def _h323(self, p: AcctPacket, call: Call | None) -> None:
        p["h323-call-origin"] = "answer"
        p["h323-gw-id"] = (call.peer_address if call else "") or self.client.nas_address
        p["h323-call-type"] = "VoIP"

    def started(self, call: Call) -> Deferred[bool]:
        p = self._packet("Start")
        p["Cisco-AVPair"] = [f"xvb-call-type={call.call_type}"]
        p["h323-setup-time"] = h323_time(call.started)
        self._h323(p, call)
        self._ids(p, call)
        return self.client.send(p)

    def activity(self, call: Call, record: CDRRecord) -> Deferred[bool] | None:
        if not self.send_events:
            return None
        f = record.fields
        p = self._packet("Interim-Update")
        p["Cisco-AVPair"] = [f"xvb-event-type={f['TYPE']}",
                             f"xvb-event-duration={f['STOP_TIMESTAMP'] - f['START_TIMESTAMP']}",
                             f"xvb-event-ext={f['EXT_NUMBER']}"]
        self._ids(p, call)
        return self.client.send(p)

    def stopped(self, call: Call, stop: float) -> Deferred[bool]:
        p = self._packet("Stop")
        p["Cisco-AVPair"] = [f"xvb-call-type={call.call_type}"]
        p["Acct-Session-Time"] = max(0, int(stop) - int(call.started))
        p["h323-setup-time"] = h323_time(call.started)
        p["h323-connect-time"] = h323_time(call.started)
        p["h323-disconnect-time"] = h323_time(stop)
        self._h323(p, call)
        self._ids(p, call)
        return self.client.send(p)

    def cut(self, hold: Hold) -> Deferred[bool]:
        """The Stop of a call cut when its xvbd died (whose Start that xvbd sent), from what
        its hold recorded: the session lasted until the cut's stop (its process's last
        heartbeat).  Sent by the xvbd that settled it."""
        start = hold.started_at or hold.created_at
        stop = max(start, hold.cut_stop)
        p = self._packet("Stop")
        p["Cisco-AVPair"] = [f"xvb-call-type={hold.call_type or 'incoming'}"]
        p["Acct-Session-Time"] = stop - start
        p["h323-setup-time"] = h323_time(start)
        p["h323-connect-time"] = h323_time(start)
        p["h323-disconnect-time"] = h323_time(stop)
        self._h323(p, None)
        self._ids(p, hold)
        p["NAS-Identifier"] = hold.server_id or self.server_id  # the node of the call
        return self.client.send(p)
