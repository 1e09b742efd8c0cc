"""Voicemail in the browser: the tenant's messages, played (as WAV, whatever format
Asterisk recorded), downloaded, marked read, deleted.  A message is found through its
owner, and its file must lie in the owner's own directory, so neither a guessed id nor a
doctored path reaches another tenant's recording."""

from __future__ import annotations

import subprocess
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.engine.media import tenant_dir
from xvbd.logs import logger
from xvbd.store.audit import acting
from xvbd.store.messages import Message
from xvbd.web.security import Refused, form, number_arg, secure_headers
from xvbd.web.tenant.base import ROOT, Tenant, TenantBase, app

log = logger("xvbd.web.tenant")

PAGE = 50
#: How sox reads what Asterisk wrote, by Asterisk's format name (wav is served as it is).
SOX_INPUT = {"ul": ["-t", "ul", "-r", "8000", "-c", "1"],
             "al": ["-t", "al", "-r", "8000", "-c", "1"],
             "gsm": ["-t", "gsm", "-r", "8000", "-c", "1"],
             "sln": ["-t", "raw", "-e", "signed-integer", "-b", "16", "-r", "8000", "-c", "1"],
             "sln16": ["-t", "raw", "-e", "signed-integer", "-b", "16", "-r", "16000",
                       "-c", "1"],
             "wav16": ["-t", "wav"], "wav": ["-t", "wav"]}
WAV_MAX_BYTES = 64 * 1024 * 1024


class MessagePages(TenantBase):
    async def _message(self, who: Tenant, message_id: str | int) -> Message:
        message = await self.store.messages.get(who.id, number_arg(message_id))
        if message is None:
            raise Refused(404, f"You have no message {message_id}.")
        return message

    async def _file(self, who: Tenant, message: Message) -> Path:
        """The recording's file, which must be in the tenant's own directory (the links
        resolved off the reactor thread)."""
        path = await deferToThread(_inside, tenant_dir(self.settings.path.media_dir, who.id),
                                   Path(f"{message.file_name}.{message.file_format}"))
        if path is None:
            log.warn("message {id} of user {user} points outside the user's directory: "
                     "{path}", id=message.id, user=who.id, path=message.file_name)
            raise Refused(404, "This message's recording is not available.")
        return path

    @app.route("/messages", methods=["GET"])
    async def messages_page(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        raw = request.args.get(b"before", [b""])[0].decode("ascii", "replace")
        before = int(raw) if raw.isdigit() and len(raw) < 19 else None
        unread = request.args.get(b"unread", [b""])[0] == b"1"
        rows = await self.store.messages.list(who.id, unread_only=unread, before_id=before,
                                              limit=PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        names = {e.id: e for e in await self.store.ivr.tree(who.id)}
        return self.page(request, "tenant/messages.html", who, messages=rows, extensions=names,
                         unread=unread, next_before=rows[-1].id if more and rows else None)

    @app.route("/messages/<message_id>/audio", methods=["GET"])
    async def message_audio(self, request: IRequest, message_id: str) -> bytes:
        """The recording as WAV (``?download=1``: as an attachment)."""
        who = await self.tenant(request)
        message = await self._message(who, message_id)
        path = await self._file(who, message)
        body = await deferToThread(_as_wav, path, message.file_format)
        if body is None:
            raise Refused(404, "This message's recording is missing or cannot be read; "
                          "ask your provider if it keeps happening.")
        secure_headers(request, b"audio/wav")
        request.setHeader(b"Cache-Control", b"private, no-store")
        if request.args.get(b"download", [b""])[0] == b"1":
            name = f"message-{message.id}-{message.caller_id or 'unknown'}.wav"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            request.setHeader(b"Content-Disposition",
                              f'attachment; filename="{safe}"'.encode("ascii"))
        if not message.is_read:
            await self.store.messages.mark_read(who.id, message.id)
        return body

    @app.route("/messages/<message_id>/read", methods=["POST"])
    async def message_mark(self, request: IRequest, message_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        message = await self._message(who, message_id)
        read = form(request).get("read", "1") == "1"
        with acting(who.actor):
            await self.store.messages.mark_read(who.id, message.id, read)
        raise self.done(f"{ROOT}/messages", "Marked " + ("read." if read else "unread."))

    @app.route("/messages/<message_id>/delete", methods=["POST"])
    async def message_delete(self, request: IRequest, message_id: str) -> bytes:
        who = await self.tenant(request, change=True)
        await self.delete_message(who, message_id)
        raise self.done(f"{ROOT}/messages", "Message deleted.")

    async def delete_message(self, who: Tenant, message_id: str | int) -> None:
        """Delete one of the tenant's messages and its recording."""
        message = await self._message(who, message_id)
        path = await self._file(who, message)
        with acting(who.actor):
            await self.store.messages.delete(who.id, message.id)
        await deferToThread(path.unlink, missing_ok=True)


def _inside(own: Path, path: Path) -> Path | None:
    """``path`` with its links resolved, if that is inside ``own``; else None."""
    real = path.resolve()
    return real if own.resolve() in real.parents else None


def _as_wav(path: Path, fmt: str) -> bytes | None:
    """The file as WAV bytes (converted by sox when Asterisk kept another format)."""
    if not path.is_file() or path.stat().st_size > WAV_MAX_BYTES:
        return None
    if fmt in ("wav", "wav16"):
        return path.read_bytes()
    if fmt == "g722":
        command = ["ffmpeg", "-v", "error", "-f", "g722", "-i", str(path), "-f", "wav", "-"]
    elif fmt in SOX_INPUT:
        command = ["sox", *SOX_INPUT[fmt], str(path), "-t", "wav", "-"]
    else:
        return None
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warn("cannot convert {path} to WAV for the browser: {error}; check that sox "
                 "and ffmpeg are installed", path=str(path), error=str(exc))
        return None
    return done.stdout
