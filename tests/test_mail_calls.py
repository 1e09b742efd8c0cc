"""Mail of calls, through the real FastAGI protocol (tests/peers/agi.py) to a real SMTP
server process (aiosmtpd): a voicemail's mail, with its recording, is queued in the
transaction of its message row and arrives once; Dtmf2Email mails its digits; an account
without an address queues nothing.  On SQLite and on MariaDB."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from tests.support.smtp import SMTPServer
from xvbd.mail.sender import MailSender
from xvbd.store.outbox import Outbox

#: What the test peer writes for a 5 s recording: a WAV's header and 5 s of 8 kHz 16-bit.
RECORDED = 44 + 5 * 16000


class CallMailTests(EngineCase):
    def setUp(self) -> None:
        self.smtp = SMTPServer(self.tmp_dir() / "smtp").start()
        self.extra_config = f"""
[EMAIL]
SERVER = 127.0.0.1:{self.smtp.port}
SUBJ = Voicemail from %CALLERID% for %DID%, %DURATION% s (box %MAILBOX%, %AC%)
[CGI]
SERVER = https://pbx.example.com
"""
        super().setUp()
        self.addCleanup(self.smtp.stop)  # type: ignore[attr-defined]
        self.store.outbox = Outbox(self.db, self.clock.seconds)
        self.sender = MailSender(self.settings.email, self.store.outbox, "node", self.clock,
                                 reactor, deferToThread)
        self.kicks = 0

        def queued() -> None:
            self.kicks += 1
        self.engine.mail_queued = queued

    def tmp_dir(self) -> Path:
        """A directory of the test's own before the database case makes ``self.tmp``."""
        path = Path(tempfile.mkdtemp(prefix="xvbd-smtp-"))
        self.addCleanup(shutil.rmtree, path, True)  # type: ignore[attr-defined]
        return path

    async def tenant(self, email: str, **group: object) -> int:
        acc = self.store.accounts
        gid = (await acc.create_group("mail", 1, **group)).id if group else 1
        user = await acc.create_user("613", "10001", gid, email=email)
        await acc.assign_did("100", user.id)
        root = await self.store.ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        await self.store.ivr.add_child(user.id, root.id, "1", "VoiceMail", {})
        await self.store.ivr.add_child(user.id, root.id, "2", "Dtmf2Email", {"max_digits": 8})
        return user.id

    async def test_a_voicemail_arrives_once_with_its_recording(self) -> None:
        uid = await self.tenant("ann@example.com, demo@localhost")
        await self.call(Caller(keys=["1", "#"], record_seconds=5, record_file_bytes=RECORDED),
                        args=("100",), callerid="79005551234")
        (message,) = await self.store.messages.list(uid)
        (mail,) = await self.store.outbox.for_user(uid)
        self.assertEqual((mail.kind, mail.ref_id, mail.status, mail.recipients),
                         ("voicemail", message.id, "queued", "ann@example.com,demo@localhost"))
        self.assertEqual(self.kicks, 1, "the sender is told at once")
        self.assertEqual(message.emailed_at, 0)
        await self.sender.kick()
        await self.sender.kick()
        (got,) = self.smtp.received()
        self.assertEqual(sorted(got.rcpt_tos), ["ann@example.com", "demo@localhost"])
        self.assertEqual(got.message["Subject"],
                         "Voicemail from 79005551234 for 100, 5 s (box 1, 10001)")
        (part,) = got.message.iter_attachments()
        self.assertEqual(part.get_filename(), f"message-{message.id}.wav")
        recording = (self.work / "media" / "u" / str(uid) / "messages" /
                     f"{message.file_name.rsplit('/', 1)[1]}.wav").read_bytes()
        self.assertEqual(part.get_content(), recording)
        self.assertEqual(len(recording), RECORDED)
        self.assertIn(f"https://pbx.example.com/ui/messages#message-{message.id}",
                      got.message.get_body(("plain",)).get_content())
        (message,) = await self.store.messages.list(uid)
        self.assertEqual(message.emailed_at, int(self.clock.seconds()))

    async def test_a_recording_larger_than_the_plan_allows_is_a_notice(self) -> None:
        uid = await self.tenant("ann@example.com", max_email_attachment_bytes=50_000)
        await self.call(Caller(keys=["1", "#"], record_seconds=5, record_file_bytes=RECORDED),
                        args=("100",))
        await self.sender.kick()
        (got,) = self.smtp.received()
        self.assertEqual(list(got.message.iter_attachments()), [])
        (message,) = await self.store.messages.list(uid)
        self.assertIn(f"The recording ({RECORDED} bytes) is larger than your plan lets a mail "
                      "carry (50000 bytes).", got.message.get_content())
        self.assertIn(f"/ui/messages#message-{message.id}", got.message.get_content())

    async def test_dtmf2email_mails_its_digits(self) -> None:
        uid = await self.tenant("ann@example.com")
        await self.call(Caller(keys=["2", "4711#", "*"]), args=("100",), callerid="79001")
        (entry,) = await self.store.features.dtmf_messages(uid)
        await self.sender.kick()
        (got,) = self.smtp.received()
        self.assertEqual(got.message["Subject"], "Digits 4711 from 79001")
        self.assertIn("79001 typed these digits at extension 2:\n\n    4711\n",
                      got.message.get_content().replace("\r\n", "\n"))
        (entry,) = await self.store.features.dtmf_messages(uid)
        self.assertEqual(entry.emailed_at, int(self.clock.seconds()))

    async def test_an_account_without_an_address_queues_nothing(self) -> None:
        uid = await self.tenant("")
        await self.call(Caller(keys=["1", "#"], record_seconds=5, record_file_bytes=RECORDED),
                        args=("100",))
        self.assertEqual(len(await self.store.messages.list(uid)), 1)
        self.assertEqual(await self.store.outbox.for_user(uid), [])
        self.assertEqual(self.kicks, 0)


CallMailOnSQLite, CallMailOnMariaDB = on_both_backends(CallMailTests)
