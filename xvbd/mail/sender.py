"""The outbox's sender (the service ``mail``): claims mail due, builds each on a thread,
and hands it to the relay of ``[EMAIL] SERVER`` with Twisted's ESMTP client (STARTTLS and
AUTH as configured).

A mail is marked sent only once the relay has answered 250 to its DATA.  A try that fails
for a while (a 4xx, no connection, a timeout) is due again after ``RETRY_MIN`` s, doubled
each try up to ``RETRY_MAX``; after ``MAX_TRIES`` tries, or at once on a 5xx, the mail is a
dead letter, listed for the operator (``/ai/mail``) with the reason.  Each claim is one
conditional UPDATE, so xvbd processes sharing a database send each mail once.  A sender
that dies between the relay's 250 and its own mark leaves the claim to expire and the
mail is sent again, with the same Message-ID (the one case of a second copy).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from io import BytesIO
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.mail.smtp import ESMTPSenderFactory, SMTPDeliveryError

from xvbd.config import EmailSettings
from xvbd.logs import logger
from xvbd.mail.compose import Built, build_message
from xvbd.store.outbox import Outbox, OutboxMail

log = logger("xvbd.mail")

#: Mails claimed, and sent at once, per round.
BATCH = 8


def client_tls(settings: EmailSettings) -> Any:
    """The TLS options STARTTLS uses (the relay's name checked against its certificate,
    by ``CA_FILE`` or the system's authorities); None with ``STARTTLS = no``.  Reads
    ``CA_FILE``: called once, at start."""
    if settings.starttls == "no":
        return None
    from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust

    trust = (Certificate.loadPEM(settings.ca_file.read_bytes()) if settings.ca_file
             else platformTrust())
    return optionsForClientTLS(settings.server.host, trustRoot=trust)


def retry_delay(tries: int, first: int, longest: int) -> int:
    """The wait after the ``tries``-th failed try: ``first``, doubled each try, bounded."""
    return int(min(first * 2 ** min(max(tries, 1) - 1, 32), longest))


def permanent(exc: BaseException) -> bool:
    """Whether the relay refused for good: a 5xx to the mail, or to every recipient."""
    if not isinstance(exc, SMTPDeliveryError):
        return False
    if exc.code >= 500:
        return True
    answers: Any = exc.addresses or []
    codes = [code for _, code, _ in answers]
    return exc.code < 0 and bool(codes) and all(code >= 500 for code in codes)


def reason(exc: BaseException) -> str:
    """One line a person can act on."""
    if isinstance(exc, SMTPDeliveryError):
        resp = exc.resp.decode("utf-8", "replace") if isinstance(exc.resp, bytes) \
            else str(exc.resp)
        answers: Any = exc.addresses or []
        refused = [f"{a.decode() if isinstance(a, bytes) else a}: {c} "
                   f"{r.decode('utf-8', 'replace') if isinstance(r, bytes) else r}"
                   for a, c, r in answers if c >= 400]
        head = f"{exc.code} {resp}" if exc.code >= 0 else resp
        return "; ".join([head, *refused])
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


class MailSender(Service):
    """Sends the outbox's mail; ``kick()`` when a mail was queued."""

    name = "mail"

    def __init__(self, settings: EmailSettings, outbox: Outbox, instance: str, clock: Any,
                 reactor: Any, run_in_thread: Callable[..., Deferred[Any]],
                 tls: Any = None) -> None:
        """``clock`` times the tries and the polls; ``reactor`` connects to the relay;
        ``tls`` is the client TLS options for STARTTLS (None: ``STARTTLS = no``)."""
        self.settings = settings
        self.outbox = outbox
        self.instance = instance
        self.clock = clock
        self.reactor = reactor
        self.run_in_thread = run_in_thread
        self.tls = tls
        self.counts: dict[str, int] = {"queued": 0, "dead": 0}
        self.sent = 0
        self.failures = 0
        self.last_error = ""
        self._loop: LoopingCall | None = None
        self._round: Deferred[None] | None = None
        self._again = False
        self._wake: Any = None
        self._factories: set[ESMTPSenderFactory] = set()
        self._stopping = False

    # ------------------------------------------------------------------ service

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.kick)
        self._loop.clock = self.clock
        self._loop.start(self.settings.poll, now=True)

    async def _stop(self) -> None:
        self._stopping = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        self._again = False
        for factory in list(self._factories):  # its claim expires; the mail is tried again
            protocol = factory.currentProtocol
            if protocol is not None and protocol.transport is not None:
                protocol.transport.abortConnection()
        if self._round is not None:
            await self._round

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    # ------------------------------------------------------------------ rounds

    def kick(self) -> Deferred[None]:
        """Send what is due now; a kick during a round makes another round after it."""
        if self._round is not None:
            self._again = True
            return self._round
        done = Deferred.fromCoroutine(self._rounds())
        if not done.called:  # (a round that ended at once has nothing to wait for)
            self._round = done
        return done

    async def _rounds(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    full = await self.send_due()
                except Exception as exc:  # the database away: the next poll tries again
                    log.warn("mail: the outbox could not be read: {why}", why=reason(exc))
                    full = False
                if not (full or self._again) or self._stopping:
                    break
            try:
                self.counts = await self.outbox.counts()
            except Exception:
                pass
        finally:
            self._round = None

    async def send_due(self) -> bool:
        """One round: claim up to :data:`BATCH` due mails and send them at once; whether
        the batch was full (more may be due)."""
        now = int(self.clock.seconds())
        until = now + 10 * self.settings.timeout + 60
        token = f"{self.instance}:{secrets.token_hex(4)}"
        mails = await self.outbox.claim(token, now, until, BATCH)
        if mails:
            await DeferredList([Deferred.fromCoroutine(self.send_one(m, token))
                                for m in mails], consumeErrors=True)
        return len(mails) >= BATCH

    async def send_one(self, mail: OutboxMail, token: str) -> None:
        try:
            built: Built = await self.run_in_thread(build_message, mail, self.settings.from_)
            accepted, answers = await self._relay(built)
        except Exception as exc:
            await self._failed(mail, token, exc)
            return
        refused = [f"{a.decode() if isinstance(a, bytes) else a}: {c}"
                   for a, c, _ in answers if c >= 400]
        note = "; ".join(filter(None, [built.note, f"refused: {', '.join(refused)}"
                                       if refused else ""]))
        marked = await self.outbox.sent(mail, token, int(self.clock.seconds()), note)
        self.sent += 1
        if not marked:
            log.warn("mail {id}: sent, but its claim had passed to another sender; it may "
                     "arrive twice (raise [EMAIL] TIMEOUT if the relay is this slow)",
                     id=mail.id)
        log.info("mail {id} ({kind}) for user {user} sent to {to}{note}", id=mail.id,
                 kind=mail.kind, user=mail.user_id, to=", ".join(built.recipients),
                 note=f" ({note})" if note else "", accepted=accepted)

    async def _relay(self, built: Built) -> tuple[int, list[tuple[Any, int, Any]]]:
        s = self.settings
        done: Deferred[tuple[int, list[tuple[Any, int, Any]]]] = Deferred()
        factory = ESMTPSenderFactory(
            s.user.encode() if s.user else None, s.password.encode() if s.user else None,
            built.sender, built.recipients, BytesIO(built.data), done, retries=0,
            timeout=s.timeout, contextFactory=self.tls if s.starttls != "no" else None,
            heloFallback=not s.user and s.starttls != "yes",
            requireAuthentication=bool(s.user),
            requireTransportSecurity=s.starttls == "yes",
            # without a hostname Twisted makes no TLS options of its own: STARTTLS = no
            hostname=s.server.host if s.starttls != "no" else None)
        self._factories.add(factory)
        try:
            self.reactor.connectTCP(s.server.host, s.server.port, factory, timeout=s.timeout)
            return await done
        finally:
            self._factories.discard(factory)

    async def _failed(self, mail: OutboxMail, token: str, exc: BaseException) -> None:
        why = reason(exc)
        self.failures += 1
        self.last_error = why
        last = permanent(exc) or mail.tries >= self.settings.max_tries
        now = int(self.clock.seconds())
        delay = retry_delay(mail.tries, self.settings.retry_min, self.settings.retry_max)
        if not await self.outbox.failed(mail, token, why, None if last else now + delay):
            return
        where = f"{self.settings.server}"
        if last:
            log.error("mail {id} ({kind}) for user {user} to {to} is a dead letter after "
                      "{tries} tries: {why}; mend the cause (the relay {where}, [EMAIL] or "
                      "the address) and resend it from the operator's web (Mail)",
                      id=mail.id, kind=mail.kind, user=mail.user_id, to=mail.recipients,
                      tries=mail.tries, why=why, where=where)
            return
        log.warn("mail {id} to {to} not sent (try {tries} of {max}) through {where}: {why}; "
                 "next try in {delay} s", id=mail.id, to=mail.recipients, tries=mail.tries,
                 max=self.settings.max_tries, where=where, why=why, delay=delay)
        self._wake_at(delay)

    def _wake_at(self, delay: int) -> None:
        """A round when the soonest retry is due (besides the polls)."""
        if not self.running or self._stopping:
            return
        due = self.clock.seconds() + delay
        if self._wake is not None and self._wake.active():
            if self._wake.getTime() <= due:
                return
            self._wake.cancel()
        self._wake = self.clock.callLater(delay, self.kick)

    def health(self) -> dict[str, Any]:
        return {"queued": self.counts.get("queued", 0), "dead": self.counts.get("dead", 0),
                "sent": self.sent, "failed_tries": self.failures,
                "last_error": self.last_error}
