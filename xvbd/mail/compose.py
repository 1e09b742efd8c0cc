"""The mails xvbd writes: drafts queued with what they report (``Draft.row`` in that
transaction), and the message built from an outbox row when it is sent (``build_message``,
on a thread: it reads the recording, and converts it to MP3 through ffmpeg).

Headers are made by the stdlib ``email`` package (``EmailMessage``, its default policy):
From, To, Subject (non-ASCII text encoded as RFC 2047 words), Date, Message-ID.  The
Message-ID is chosen when the mail is queued, so every try of one mail carries the same.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xvbd.config import Settings
from xvbd.mail.addresses import usable_addresses
from xvbd.store.outbox import MailPrefs

#: MIME types of the formats Asterisk records in, attached as recorded.
AUDIO_TYPES = {"wav": ("audio", "wav"), "wav16": ("audio", "wav"), "gsm": ("audio", "gsm"),
               "mp3": ("audio", "mpeg")}

#: ffmpeg's reading of each recorded format (those without a header need one said).
_FFMPEG_INPUT = {"wav": [], "wav16": ["-f", "wav"], "gsm": ["-f", "gsm"],
                 "ul": ["-f", "mulaw", "-ar", "8000", "-ac", "1"],
                 "al": ["-f", "alaw", "-ar", "8000", "-ac", "1"],
                 "sln": ["-f", "s16le", "-ar", "8000", "-ac", "1"],
                 "sln16": ["-f", "s16le", "-ar", "16000", "-ac", "1"],
                 "g722": ["-f", "g722"]}

#: Seconds ffmpeg may take for one recording.
CONVERT_TIMEOUT = 120


@dataclass(frozen=True)
class MailSetup:
    """What writing a mail needs from the configuration."""

    sender: str  # [EMAIL] FROM
    subject: str  # [EMAIL] SUBJ, with %FIELD% markers
    web: str  # [CGI] SERVER, for links into /ui
    allow_local: bool

    @classmethod
    def of(cls, settings: Settings) -> MailSetup:
        return cls(settings.email.from_, settings.email.subject, settings.cgi.server,
                   settings.email.allow_local)

    @property
    def domain(self) -> str:
        """The domain of the sender's address, for Message-IDs (never a DNS lookup)."""
        return parseaddr(self.sender)[1].rpartition("@")[2] or "localhost"

    def recipients(self, raw: str) -> list[str]:
        return usable_addresses(raw, allow_local=self.allow_local)


def local_time(when: int, zone: str) -> str:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return datetime.fromtimestamp(when, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def substitute(template: str, fields: Mapping[str, str]) -> str:
    """``%NAME%`` markers of ``template`` replaced by ``fields`` (unknown ones kept)."""
    out = template
    for name, value in fields.items():
        out = out.replace(f"%{name}%", value)
    return " ".join(out.split())  # no line breaks in a header


def _base_row(setup: MailSetup, user_id: int, kind: str, recipients: list[str],
              subject: str, created_at: int) -> dict[str, Any]:
    return {"user_id": user_id, "kind": kind, "recipients": ",".join(recipients),
            "subject": subject[:998], "message_id": make_msgid("xvbd", setup.domain),
            "next_at": created_at, "created_at": created_at}


@dataclass(frozen=True)
class VoicemailDraft:
    """The mail of a new voicemail message: the recording attached when it fits the
    group's limit, else a notice with the link to the message in ``/ui``."""

    setup: MailSetup
    user_id: int
    emails: str  # the tenant's addresses, as saved
    timezone: str
    access_code: str
    mailbox: str  # the extension's number in the tree (its CDR number)
    caller_id: str
    called_id: str
    duration: int
    created_at: int
    file_name: str  # without the format's extension, as Asterisk was told
    file_format: str
    attach_limit: int  # the group's max_email_attachment_bytes (-1 no limit, 0 never)

    def row(self, ref_id: int | None, prefs: MailPrefs) -> dict[str, Any] | None:
        recipients = self.setup.recipients(self.emails)
        if not recipients:
            return None
        when = local_time(self.created_at, self.timezone)
        caller = self.caller_id or "an unknown caller"
        subject = substitute(self.setup.subject, {
            "CALLERID": self.caller_id or "unknown", "DID": self.called_id,
            "AC": self.access_code, "DURATION": str(self.duration), "DATE": when,
            "MAILBOX": self.mailbox})
        link = f"{self.setup.web}/ui/messages#message-{ref_id}"
        about = (f"A new voicemail message from {caller} to {self.called_id}, "
                 f"mailbox {self.mailbox}.\n\nReceived: {when}\nLength: {self.duration} s\n")
        body = about + f"\nThe recording is attached. It is also on your page:\n{link}\n"
        notice = about + f"\nListen to the recording on your page:\n{link}\n"
        attach_as = prefs.attach_as if prefs.attach_as in ("wav", "mp3") else "wav"
        return {**_base_row(self.setup, self.user_id, "voicemail", recipients, subject,
                            self.created_at),
                "body": body, "notice": notice,
                "attachment": f"{self.file_name}.{self.file_format}",
                "attach_format": self.file_format,
                "attach_as": attach_as if attach_as == "mp3" else self.file_format,
                "attach_limit": self.attach_limit}


@dataclass(frozen=True)
class DigitsDraft:
    """The mail of a Dtmf2Email entry: the digits, who typed them and when."""

    setup: MailSetup
    user_id: int
    emails: str
    timezone: str
    mailbox: str
    caller_id: str
    digits: str
    created_at: int

    def row(self, ref_id: int | None, prefs: MailPrefs) -> dict[str, Any] | None:
        recipients = self.setup.recipients(self.emails)
        if not recipients:
            return None
        caller = self.caller_id or "an unknown caller"
        subject = substitute(f"Digits {self.digits} from %CALLERID%",
                             {"CALLERID": self.caller_id or "unknown"})
        body = (f"{caller} typed these digits at extension {self.mailbox}:\n\n"
                f"    {self.digits}\n\nWhen: {local_time(self.created_at, self.timezone)}\n"
                f"All entries: {self.setup.web}/ui/variables\n")
        return {**_base_row(self.setup, self.user_id, "dtmf", recipients, subject,
                            self.created_at), "body": body, "notice": body}


@dataclass(frozen=True)
class TextDraft:
    """A plain text mail (the daily statistics)."""

    setup: MailSetup
    user_id: int
    emails: str
    kind: str
    subject: str
    body: str
    created_at: int

    def row(self, ref_id: int | None, prefs: MailPrefs) -> dict[str, Any] | None:
        recipients = self.setup.recipients(self.emails)
        if not recipients:
            return None
        return {**_base_row(self.setup, self.user_id, self.kind, recipients, self.subject,
                            self.created_at), "body": self.body, "notice": self.body}


# ------------------------------------------------------------------ building, on a thread


def to_mp3(path: Path, recorded_as: str) -> bytes:
    """The recording as MP3 (ffmpeg, mono, VBR quality 6: about 40-60 kbit/s)."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
               *_FFMPEG_INPUT.get(recorded_as, []), "-i", str(path),
               "-ac", "1", "-codec:a", "libmp3lame", "-q:a", "6", "-f", "mp3", "pipe:1"]
    done = subprocess.run(command, capture_output=True, timeout=CONVERT_TIMEOUT, check=False)
    if done.returncode != 0 or not done.stdout:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise OSError(f"ffmpeg could not make an MP3 of {path}: {why[0]}")
    return done.stdout


@dataclass(frozen=True)
class Built:
    """A mail ready for the relay, and what became of its attachment."""

    sender: str  # the envelope's
    recipients: list[str]
    data: bytes
    attached: bool
    note: str  # why the recording is not attached ('' when it is, or there is none)


def build_message(mail: Any, sender: str,
                  convert: Callable[[Path, str], bytes] = to_mp3) -> Built:
    """The bytes of ``mail`` (an :class:`~xvbd.store.outbox.OutboxMail`): blocking (reads
    the recording), run on a thread."""
    # Lines end in \n: Twisted's SMTP client makes them \r\n (and escapes leading dots).
    message = EmailMessage(policy=policy.default)
    message["From"] = sender
    message["To"] = ", ".join(mail.addresses)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.fromtimestamp(mail.created_at, UTC))
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"
    data, note, why = None, "", ""  # note: for the operator; why: for the tenant
    if mail.attachment:
        if mail.attach_limit == 0:
            note, why = "the plan attaches no recordings", "Your plan sends recordings by link."
        else:
            try:
                path = Path(mail.attachment)
                data = (convert(path, mail.attach_format) if mail.attach_as == "mp3"
                        else path.read_bytes())
            except (OSError, subprocess.SubprocessError) as exc:
                note = f"the recording could not be read: {exc}"
                why = "The recording could not be attached."
            else:
                if 0 <= mail.attach_limit < len(data):
                    note = f"{len(data)} bytes, more than the plan's {mail.attach_limit}"
                    why = (f"The recording ({len(data)} bytes) is larger than your plan "
                           f"lets a mail carry ({mail.attach_limit} bytes).")
                    data = None
    text = mail.body if data is not None or not mail.attachment else f"{mail.notice}\n{why}\n"
    # 7-bit on the wire: Twisted's client does not announce 8BITMIME
    message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    if data is not None:
        maintype, subtype = AUDIO_TYPES.get(mail.attach_as, ("application", "octet-stream"))
        extension = "mp3" if mail.attach_as == "mp3" else mail.attach_format
        message.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename=f"message-{mail.ref_id}.{extension}")
    return Built(parseaddr(sender)[1], mail.addresses, message.as_bytes(), data is not None,
                 note)
