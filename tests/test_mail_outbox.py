"""The mail outbox against a real SMTP server process on loopback (aiosmtpd, its own
process: tests/support/smtp.py): every mail arrives once with its headers, body and
attachment, across a relay stopped and started again; a 4xx is retried with back-off, a
5xx is a dead letter at once, and so is a mail after MAX_TRIES; two senders on one
database send each mail once; STARTTLS and AUTH.  On SQLite and on MariaDB."""

from __future__ import annotations

import dataclasses
import wave
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.support.db import DatabaseCase, on_both_backends
from tests.support.smtp import SMTPServer, self_signed
from xvbd.config import parse_settings
from xvbd.mail.addresses import BadAddress, parse_addresses
from xvbd.mail.compose import MailSetup, TextDraft, VoicemailDraft
from xvbd.mail.sender import MailSender, client_tls, retry_delay
from xvbd.store import Database, Store
from xvbd.store.outbox import Outbox

T0 = 1285757672


def make_wav(path: Path, seconds: float) -> bytes:
    """A real 8 kHz mono WAV of a tone (what Asterisk records), its bytes."""
    import math
    import struct

    frames = b"".join(struct.pack("<h", int(8000 * math.sin(n / 8000 * 2 * math.pi * 440)))
                      for n in range(int(8000 * seconds)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return path.read_bytes()


class MailCase(DatabaseCase):
    """Mixin: helpers over ``self.store``, ``self.clock``, ``self.settings``, ``self.smtp``."""

    def new_sender(self, store: Store, instance: str) -> MailSender:
        return MailSender(self.settings.email, store.outbox, instance, self.clock, reactor,
                          deferToThread, tls=client_tls(self.settings.email))

    async def user(self, email: str = "ann@example.com, bob@example.org") -> int:
        return (await self.store.accounts.create_user("613", "10001", 1, email=email,
                                                      name="Ann")).id

    async def queue_text(self, user_id: int, n: int) -> int | None:
        return await self.store.outbox.queue(TextDraft(
            self.setup_, user_id, "ann@example.com, bob@example.org", "stats",
            f"Статистика звонков №{n}", f"Body of mail {n}\nЗвонков: {n}\n",
            int(self.clock.seconds())))

    async def rows(self) -> list[Any]:
        return await self.db.run_interaction(
            lambda txn: txn.all("SELECT id, status, tries, next_at, last_error, sent_at "
                                "FROM mail_outbox ORDER BY id"))


class OutboxTests(MailCase):
    email_config = ""

    def setUp(self) -> None:
        super().setUp()
        self.smtp = SMTPServer(self.tmp / "smtp").start()
        self.addCleanup(self.smtp.stop)  # type: ignore[attr-defined]
        self.clock = Clock()
        self.clock.advance(T0)
        self.settings = parse_settings(f"""
[EMAIL]
SERVER = 127.0.0.1:{self.smtp.port}
FROM = "Virtuelle Telefonanlage – Büro" <pbx@example.com>
SUBJ = Nachricht von %CALLERID% (%DURATION% s)
RETRY_MIN = 60
RETRY_MAX = 200
MAX_TRIES = 4
TIMEOUT = 10
{self.email_config}
[CGI]
SERVER = https://pbx.example.com
""", "test.conf")
        self.store.outbox = Outbox(self.db, self.clock.seconds)
        self.setup_ = MailSetup.of(self.settings)
        self.sender = self.new_sender(self.store, "node-a")

    # ------------------------------------------------------------------ arrival

    async def test_every_mail_arrives_once_across_a_relay_stopped_and_started(self) -> None:
        uid = await self.user()
        for n in range(6):
            await self.queue_text(uid, n)
        await self.sender.kick()
        got = self.smtp.received()
        self.assertEqual(len(got), 6)
        first = got[0].message
        (sender,) = first["From"].addresses
        self.assertEqual((sender.display_name, sender.addr_spec),
                         ("Virtuelle Telefonanlage – Büro", "pbx@example.com"))
        head = got[0].raw.split(b"\r\n\r\n")[0]
        self.assertTrue(head.isascii(), "names and subjects encoded (RFC 2047) in the head")
        self.assertRegex(head, rb"(?:^|\r\n)From: Virtuelle Telefonanlage =\?utf-8\?b\?[^?]+\?= "
                         rb"<pbx@example\.com>\r\n")
        self.assertEqual(first["To"], "ann@example.com, bob@example.org")
        self.assertEqual(sorted(got[0].rcpt_tos), ["ann@example.com", "bob@example.org"])
        self.assertEqual(got[0].mail_from, "pbx@example.com")
        self.assertEqual(parsedate_to_datetime(first["Date"]).timestamp(), T0)
        self.assertRegex(first["Message-ID"], r"^<[^@>]+@example\.com>$")
        self.assertEqual(first["Auto-Submitted"], "auto-generated")
        subjects = sorted(r.message["Subject"] for r in got)
        self.assertEqual(subjects, [f"Статистика звонков №{n}" for n in range(6)])
        body = next(r for r in got if r.message["Subject"].endswith("№3")).message
        self.assertEqual(body.get_content().replace("\r\n", "\n"), "Body of mail 3\nЗвонков: 3\n")
        self.assertEqual(body["Content-Transfer-Encoding"], "quoted-printable",
                         "7-bit on the wire: Twisted's client does not ask for 8BITMIME")

        self.smtp.stop()
        for n in range(6, 9):
            await self.queue_text(uid, n)
        await self.sender.kick()
        rows = await self.rows()
        self.assertEqual([r["status"] for r in rows], ["sent"] * 6 + ["queued"] * 3)
        self.assertEqual({(r["tries"], r["next_at"]) for r in rows[6:]}, {(1, T0 + 60)})
        self.assertTrue(all("refused" in r["last_error"].lower() or "connect" in
                            r["last_error"].lower() for r in rows[6:]), rows[6:])
        self.smtp.start()
        await self.sender.kick()  # not due yet: nothing goes
        self.assertEqual(len(self.smtp.received()), 6)
        self.clock.advance(60)
        await self.sender.kick()
        got = self.smtp.received()
        ids = [r.message["Message-ID"] for r in got]
        self.assertEqual(len(ids), 9)
        self.assertEqual(len(set(ids)), 9, "each mail once")
        self.assertEqual(sorted(r.message["Subject"] for r in got),
                         sorted(f"Статистика звонков №{n}" for n in range(9)))
        self.assertEqual([r["status"] for r in await self.rows()], ["sent"] * 9)
        await self.sender.kick()
        self.assertEqual(len(self.smtp.received()), 9, "a sent mail is never sent again")

    async def test_a_4xx_is_retried_with_back_off_and_a_5xx_is_a_dead_letter(self) -> None:
        uid = await self.user()
        await self.queue_text(uid, 1)
        self.smtp.answer_data("451 4.3.0 Temporary trouble, try later")
        await self.sender.kick()
        (row,) = await self.rows()
        self.assertEqual((row["status"], row["tries"], row["next_at"]), ("queued", 1, T0 + 60))
        self.assertEqual(row["last_error"].split(";")[0], "451 4.3.0 Temporary trouble, try later")
        self.clock.advance(60)
        await self.sender.kick()
        (row,) = await self.rows()
        self.assertEqual((row["tries"], row["next_at"]), (2, T0 + 60 + 120))
        self.smtp.answer_data(None)
        self.clock.advance(120)
        await self.sender.kick()
        (row,) = await self.rows()
        self.assertEqual((row["status"], row["sent_at"]), ("sent", T0 + 180))
        self.assertEqual(len(self.smtp.received()), 1)

        self.smtp.answer_data("554 5.7.1 Message rejected as spam")
        await self.queue_text(uid, 2)
        await self.sender.kick()
        row = (await self.rows())[1]
        self.assertEqual((row["status"], row["tries"]), ("dead", 1))
        self.assertIn("554 5.7.1 Message rejected as spam", row["last_error"])
        self.assertEqual(await self.store.outbox.counts(), {"queued": 0, "dead": 1})
        self.assertEqual(len(self.smtp.received()), 1)
        self.flushLoggedErrors()

    async def test_after_max_tries_a_mail_is_a_dead_letter_and_can_be_resent(self) -> None:
        uid = await self.user()
        mail_id = await self.queue_text(uid, 1)
        assert mail_id is not None
        self.smtp.answer_data("421 4.7.0 Too busy")
        waits = []
        for _ in range(4):
            await self.sender.kick()
            row = (await self.rows())[0]
            waits.append(row["next_at"] - self.clock.seconds() if row["status"] == "queued"
                         else row["status"])
            self.clock.advance(1000)
        self.assertEqual(waits, [60, 120, 200, "dead"], "doubled each try, bounded by RETRY_MAX")
        self.assertEqual([retry_delay(n, 60, 200) for n in (1, 2, 3, 4)], [60, 120, 200, 200])
        (dead,) = await self.store.outbox.dead_letters()
        self.assertEqual((dead.id, dead.tries), (mail_id, 4))
        self.assertIn("421 4.7.0 Too busy", dead.last_error)
        self.smtp.answer_data(None)
        again = await self.store.outbox.resend(mail_id)
        assert again is not None
        self.assertEqual((again.status, again.tries), ("queued", 0))
        self.assertIsNone(await self.store.outbox.resend(mail_id), "only a dead letter")
        await self.sender.kick()
        self.assertEqual(len(self.smtp.received()), 1)
        self.flushLoggedErrors()

    async def test_refused_recipients(self) -> None:
        uid = await self.user()
        await self.store.outbox.queue(TextDraft(self.setup_, uid,
                                                "refuse@example.com, ann@example.com",
                                                "stats", "Half", "text", T0))
        await self.store.outbox.queue(TextDraft(self.setup_, uid, "refuse@example.com",
                                                "stats", "None", "text", T0))
        await self.sender.kick()
        got = self.smtp.received()
        self.assertEqual([(r.message["Subject"], r.rcpt_tos) for r in got],
                         [("Half", ["ann@example.com"])])
        half, none = await self.rows()
        self.assertEqual(half["status"], "sent")
        self.assertIn("refused: refuse@example.com: 550", half["last_error"])
        self.assertEqual(none["status"], "dead", "every recipient refused with a 5xx")
        self.assertIn("refuse@example.com: 550 5.1.1 No such user here", none["last_error"])
        self.flushLoggedErrors()

    # ------------------------------------------------------------------ voicemail mail

    async def voicemail(self, uid: int, audio: Path, limit: int) -> int:
        draft = VoicemailDraft(self.setup_, uid, "ann@example.com", "Europe/Berlin", "10001",
                               "1", "79005551234", "613", 3, T0, str(audio.with_suffix("")),
                               "wav", limit)
        message = await self.store.messages.add(uid, extension_id=None, file_name=str(
            audio.with_suffix("")), file_format="wav", duration=3, caller_id="79005551234",
            called_id="613", created_at=T0, mail=draft)
        return message.id

    async def test_a_voicemail_mail_attaches_the_recording_as_wav_or_mp3(self) -> None:
        uid = await self.user()
        audio = self.tmp / "rec.wav"
        wav = make_wav(audio, 3)
        first = await self.voicemail(uid, audio, 1_000_000)
        await self.store.outbox.set_prefs(uid, attach_as="mp3", daily_stats=False)
        second = await self.voicemail(uid, audio, 1_000_000)
        self.assertEqual((await self.store.messages.get(uid, first)).emailed_at, 0)
        await self.sender.kick()
        self.assertEqual([r.message["Subject"] for r in self.smtp.received()],
                         ["Nachricht von 79005551234 (3 s)"] * 2)
        mails = sorted((m for r in self.smtp.received() for m in [r.message]),
                       key=lambda m: [p.get_content_type() for p in m.iter_attachments()])
        self.assertEqual(len(mails), 2)
        as_mp3, as_wav = mails  # audio/mpeg sorts before audio/wav
        (part,) = as_wav.iter_attachments()
        self.assertEqual((part.get_content_type(), part.get_filename()),
                         ("audio/wav", f"message-{first}.wav"))
        self.assertEqual(part.get_content(), wav, "the recording as recorded, byte for byte")
        (part,) = as_mp3.iter_attachments()
        self.assertEqual((part.get_content_type(), part.get_filename()),
                         ("audio/mpeg", f"message-{second}.mp3"))
        mp3 = part.get_content()
        self.assertTrue(mp3[:3] == b"ID3" or mp3[:2] in (b"\xff\xfb", b"\xff\xf3"), mp3[:4])
        self.assertLess(len(mp3), len(wav) / 3)
        text = as_wav.get_body(("plain",)).get_content()
        self.assertIn("A new voicemail message from 79005551234 to 613, mailbox 1.", text)
        self.assertIn("Received: 2010-09-29 12:54:32 CEST", text)
        self.assertIn(f"https://pbx.example.com/ui/messages#message-{first}", text)
        for message_id in (first, second):
            self.assertEqual((await self.store.messages.get(uid, message_id)).emailed_at, T0)

    async def test_a_recording_over_the_plan_limit_is_a_notice_with_a_link(self) -> None:
        uid = await self.user()
        audio = self.tmp / "rec.wav"
        wav = make_wav(audio, 3)
        big = await self.voicemail(uid, audio, len(wav) - 1)
        never = await self.voicemail(uid, audio, 0)
        await self.sender.kick()
        got = self.smtp.received()
        self.assertEqual(len(got), 2)
        for received in got:
            self.assertEqual(list(received.message.iter_attachments()), [])
            text = received.message.get_content()
            self.assertIn("Listen to the recording on your page:", text)
        import re

        why = {int(re.search(r"#message-(\d+)\r?\n", r.message.get_content())[1]):
               r.message.get_content().strip().splitlines()[-1] for r in got}
        self.assertEqual(why, {
            big: f"The recording ({len(wav)} bytes) is larger than your plan lets a mail "
                 f"carry ({len(wav) - 1} bytes).",
            never: "Your plan sends recordings by link."})
        rows = await self.rows()
        self.assertIn(f"{len(wav)} bytes, more than the plan's {len(wav) - 1}",
                      rows[0]["last_error"])

    # ------------------------------------------------------------------ two senders

    async def test_two_senders_on_one_database_send_each_mail_once(self) -> None:
        uid = await self.user()
        other_db = Database(self.url, pool_max=4)
        other_db.start()
        self.addCleanup(other_db.close)  # type: ignore[attr-defined]
        other = Store(other_db)
        other.outbox = Outbox(other_db, self.clock.seconds)
        b = self.new_sender(other, "node-b")
        for n in range(40):
            await self.queue_text(uid, n)
        from twisted.internet.defer import DeferredList

        await DeferredList([self.sender.kick(), b.kick()])
        got = self.smtp.received()
        self.assertEqual(len(got), 40)
        self.assertEqual(len({r.message["Message-ID"] for r in got}), 40)
        self.assertEqual(self.sender.sent + b.sent, 40)
        self.assertEqual({r["status"] for r in await self.rows()}, {"sent"})

    async def test_concurrent_claims_never_share_a_mail(self) -> None:
        uid = await self.user()
        other_db = Database(self.url, pool_max=4)
        other_db.start()
        self.addCleanup(other_db.close)  # type: ignore[attr-defined]
        outboxes = [self.store.outbox, Outbox(other_db, self.clock.seconds)]
        for n in range(30):
            await self.queue_text(uid, n)
        from twisted.internet.defer import Deferred, gatherResults

        taken: list[int] = []
        for _ in range(10):  # a claim that loses a race takes fewer; the next round the rest
            claims = await gatherResults([
                Deferred.fromCoroutine(outboxes[n % 2].claim(f"w{n}", T0, T0 + 600, 3))
                for n in range(14)])
            if not any(claims):
                break
            taken += [m.id for batch in claims for m in batch]
        self.assertEqual(len(taken), 30, "every due mail claimed")
        self.assertEqual(len(set(taken)), 30, "no mail claimed twice")
        self.assertEqual(await outboxes[1].claim("late", T0, T0 + 600, 3), [])

    # ------------------------------------------------------------------ service

    async def test_the_service_polls_and_wakes_for_retries_then_stops_clean(self) -> None:
        uid = await self.user()
        self.smtp.stop()
        await self.queue_text(uid, 1)
        self.sender.startService()
        await self.sender.kick()
        self.assertEqual((await self.rows())[0]["tries"], 1)
        self.smtp.start()
        self.clock.advance(30)  # the poll: not due yet
        await self.sender.kick()
        self.assertEqual(self.smtp.received(), [])
        self.clock.advance(30)  # the wake at the retry
        while self.sender._round is not None:
            await self.sender._round
        self.assertEqual(len(self.smtp.received()), 1)
        self.assertEqual(self.sender.health()["queued"], 0)
        await self.sender.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.flushLoggedErrors()


OutboxOnSQLite, OutboxOnMariaDB = on_both_backends(OutboxTests)


class SecureRelayTests(MailCase, TestCase):
    """STARTTLS required and AUTH: the relay checks both; on SQLite."""

    def setUp(self) -> None:
        super().setUp()
        self.cert, key = self_signed(self.tmp)
        self.smtp = SMTPServer(self.tmp / "smtp", auth="xvb:s3cret", tls=(self.cert, key)).start()
        self.addCleanup(self.smtp.stop)  # type: ignore[attr-defined]
        self.clock = Clock()
        self.clock.advance(T0)
        self.store.outbox = Outbox(self.db, self.clock.seconds)

    def configure(self, password: str) -> None:
        self.settings = parse_settings(f"""
[EMAIL]
SERVER = 127.0.0.1:{self.smtp.port}
FROM = pbx@example.com
STARTTLS = yes
CA_FILE = {self.cert}
USER = xvb
PASSWORD = {password}
""", "test.conf")
        self.setup_ = MailSetup.of(self.settings)
        self.sender = self.new_sender(self.store, "node-a")

    async def test_starttls_and_auth(self) -> None:
        self.configure("s3cret")
        uid = await self.user()
        await self.queue_text(uid, 1)
        await self.sender.kick()
        (got,) = self.smtp.received()
        self.assertEqual((got.tls, got.login), (True, "xvb"))

    async def test_a_wrong_password_is_retried_not_lost(self) -> None:
        self.configure("wrong")
        uid = await self.user()
        await self.queue_text(uid, 1)
        await self.sender.kick()
        (row,) = await self.rows()
        self.assertEqual((row["status"], row["tries"]), ("queued", 1))
        self.assertEqual(self.smtp.received(), [])
        self.assertIn("535", row["last_error"])
        self.flushLoggedErrors()


def test_addresses_are_checked() -> None:
    assert parse_addresses("Ann@Example.COM, bob@example.org;ann@example.com",
                           allow_local=False) == ["Ann@example.com", "bob@example.org"]
    assert parse_addresses("demo@localhost", allow_local=True) == ["demo@localhost"]
    for raw, why in [("demo@localhost", "only to addresses with a full domain"),
                     ("ann", "is not a mail address"), ("a b@c.d", "is not a mail address"),
                     ("ann@exa_mple.com", "is not a domain name"),
                     ("анна@example.com", "outside ASCII"),
                     ('"x"@example.com', "characters a mail address cannot have")]:
        try:
            parse_addresses(raw, allow_local=False)
        except BadAddress as exc:
            assert why in str(exc), (raw, exc)
        else:
            raise AssertionError(f"{raw!r} accepted")


def test_settings_dataclass_has_defaults() -> None:
    assert dataclasses.asdict(parse_settings("", "x").email)["starttls"] == "no"


def test_a_round_that_fails_at_once_does_not_block_the_next() -> None:
    """The database refusing before any wait (a round over at once): each kick tries again."""
    class Refusing:
        claims = 0

        async def claim(self, *args: Any) -> list[Any]:
            self.claims += 1
            raise RuntimeError("the database is away")

        async def counts(self) -> dict[str, int]:
            raise RuntimeError("the database is away")

    outbox = Refusing()
    clock = Clock()
    sender = MailSender(parse_settings("", "x").email, outbox, "n", clock, None,  # type: ignore[arg-type]
                        deferToThread)
    for _ in range(3):
        sender.kick()
    assert outbox.claims == 3
    assert sender._round is None
