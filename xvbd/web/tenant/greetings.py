"""A tenant's greetings: sound files they upload (wav, mp3, ogg, m4a, flac …), converted off
the reactor thread by ffmpeg (and sox for Asterisk's raw formats) to ``[FILE]
Ast_Sound_Format``, kept as ``user:NAME`` in the tenant's own directory.  What is not audio,
is too big, or plays longer than the plan allows is refused with a message; a file that would
decode to hours of sound stops being decoded at the limit."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from xvbd.engine.media import tenant_dir
from xvbd.engine.tts import voice_for
from xvbd.logs import logger
from xvbd.mediadirs import MediaDirs
from xvbd.web.security import Refused, form, secure_headers
from xvbd.web.tenant.base import ROOT, Tenant, TenantBase, app
from xvbd.web.tenant.messages import _as_wav

log = logger("xvbd.web.tenant")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
NAME_HELP = ("Give the greeting a name of letters, digits, - and _ (up to 48), like welcome "
             "or after-hours.")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_GREETINGS = 200
#: Asterisk format → (file extension, sample rate, how sox writes it from 16-bit WAV).
FORMATS = {"wav": ("wav", 8000, ["-t", "wav"]), "wav16": ("wav16", 16000, ["-t", "wav"]),
           "ul": ("ul", 8000, ["-t", "ul"]), "al": ("al", 8000, ["-t", "al"]),
           "gsm": ("gsm", 8000, ["-t", "gsm"]),
           "sln": ("sln", 8000, ["-t", "raw", "-e", "signed-integer", "-b", "16"]),
           "g722": ("g722", 16000, [])}


class GreetingRefused(ValueError):
    """An upload that cannot become a greeting; the message is for the tenant."""


@dataclass(frozen=True)
class Greeting:
    name: str
    file: Path
    size: int
    seconds: float

    @property
    def reference(self) -> str:
        return f"user:{self.name}"


def list_greetings(directory: Path, fmt: str) -> list[Greeting]:
    """The greetings in ``directory`` (files of the format ``fmt``), by name."""
    ext, rate, _ = FORMATS[fmt]
    out = []
    if directory.is_dir():
        for path in sorted(directory.glob(f"*.{ext}")):
            stem = path.name[: -len(ext) - 1]
            if NAME.fullmatch(stem) and path.is_file():
                size = path.stat().st_size
                out.append(Greeting(stem, path, size, _seconds(size, fmt, rate)))
    return out


def _seconds(size: int, fmt: str, rate: int) -> float:
    per_second = {"ul": rate, "al": rate, "gsm": 1650, "g722": 8000}.get(fmt, rate * 2)
    header = 44 if fmt in ("wav", "wav16") else 0
    return round(max(0, size - header) / per_second, 1)


def convert(upload: Path, target: Path, fmt: str, max_seconds: int) -> float:
    """Make ``target`` (the greeting in Asterisk's ``fmt``) from an uploaded file; the
    seconds it plays.  Raises :class:`GreetingRefused` with the reason."""
    ext, rate, sox_out = FORMATS[fmt]
    work = Path(tempfile.mkdtemp(prefix="greeting-", dir=target.parent))
    try:
        wav = work / "decoded.wav"
        limit = max_seconds + 1 if max_seconds > 0 else 4 * 3600
        try:
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(upload), "-vn",
                            "-map", "0:a:0", "-t", str(limit), "-ac", "1", "-ar", str(rate),
                            "-sample_fmt", "s16", "-f", "wav", str(wav)],
                           capture_output=True, timeout=120, check=True)
        except subprocess.CalledProcessError:
            raise GreetingRefused("This file is not a sound this server can read. Upload "
                                  "WAV, MP3, OGG, M4A or FLAC.") from None
        except subprocess.TimeoutExpired:
            raise GreetingRefused("This file took too long to read; upload a shorter or "
                                  "simpler one.") from None
        except FileNotFoundError:
            log.error("ffmpeg is not installed: greetings cannot be uploaded; install the "
                      "Debian package ffmpeg")
            raise GreetingRefused("Greetings cannot be converted on this server right now; "
                                  "tell your provider.") from None
        size = wav.stat().st_size if wav.exists() else 0
        seconds = max(0, size - 44) / (rate * 2)
        if seconds < 0.2:
            raise GreetingRefused("This file has no sound in it.")
        if max_seconds > 0 and seconds > max_seconds:
            raise GreetingRefused(f"This greeting plays longer than your plan's "
                                  f"{max_seconds} seconds; shorten it and upload it again.")
        made = work / f"made.{ext}"
        if fmt in ("wav", "wav16"):
            os.replace(wav, made)
        elif fmt == "g722":
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-f", "g722",
                            str(made)], capture_output=True, timeout=120, check=True)
        else:
            subprocess.run(["sox", str(wav), *sox_out, "-r", str(rate), "-c", "1", str(made)],
                           capture_output=True, timeout=120, check=True)
        os.replace(made, target)
        return round(seconds, 1)
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()


class GreetingPages(TenantBase):
    def _dir(self, who: Tenant) -> Path:
        """Where the tenant's greetings are: ``user:NAME`` resolves to this directory's NAME."""
        return tenant_dir(self.settings.path.media_dir, who.id)

    def _format(self, who: Tenant) -> str:
        fmt = who.group.preferred_codec or self.settings.file.ast_sound_format
        return fmt if fmt in FORMATS else "wav"

    async def greeting_names(self, who: Tenant) -> list[str]:
        found = await deferToThread(list_greetings, self._dir(who), self._format(who))
        return [g.reference for g in found]

    async def _greeting(self, who: Tenant, name: str) -> Greeting:
        if not NAME.fullmatch(name):
            raise Refused(404, "A greeting's name is letters, digits, - and _.")
        for greeting in await deferToThread(list_greetings, self._dir(who), self._format(who)):
            if greeting.name == name:
                return greeting
        raise Refused(404, f"You have no greeting {name}.")

    async def _users_of(self, who: Tenant, name: str) -> list[str]:
        """The extensions whose settings name the greeting ``name``."""
        wanted = {f"user:{name}", name}
        out = []
        for ext in await self.store.ivr.tree(who.id):
            values = ext.settings_dict().values()
            if any(isinstance(v, str) and v in wanted for v in values):
                out.append(ext.cdr_number)
        return out

    @app.route("/greetings", methods=["GET"])
    async def greetings_page(self, request: IRequest) -> bytes:
        who = await self.tenant(request)
        return await self._page(request, who, "", "")

    async def _page(self, request: IRequest, who: Tenant, error: str, name: str) -> bytes:
        if error:
            request.setResponseCode(400)
        found = await deferToThread(list_greetings, self._dir(who), self._format(who))
        return self.page(request, "tenant/greetings.html", who, greetings=found, error=error,
                         name=name, max_seconds=who.group.max_greeting_duration,
                         max_mb=MAX_UPLOAD_BYTES // (1024 * 1024))

    @app.route("/greetings", methods=["POST"])
    async def greeting_upload(self, request: IRequest) -> bytes:
        who = await self.tenant(request, change=True)
        name = form(request).get("name", "").strip()
        data = (request.args or {}).get(b"file", [b""])[0]
        why = ""
        if not NAME.fullmatch(name):
            why = NAME_HELP
        elif not data:
            why = "Choose a sound file to upload."
        elif len(data) > MAX_UPLOAD_BYTES:
            why = (f"This file is larger than {MAX_UPLOAD_BYTES // 1048576} MB; upload a "
                   "shorter recording or a compressed one (MP3, OGG).")
        if why:
            return await self._page(request, who, why, name)
        directory = self._dir(who)
        fmt = self._format(who)
        existing = await deferToThread(list_greetings, directory, fmt)
        if len(existing) >= MAX_GREETINGS and name not in {g.name for g in existing}:
            return await self._page(request, who, f"You have {MAX_GREETINGS} greetings; "
                                    "delete one first.", name)
        target = directory / f"{name}.{FORMATS[fmt][0]}"
        try:
            seconds = await deferToThread(_store_upload, data, self.media, directory, target,
                                          fmt, who.group.max_greeting_duration)
        except GreetingRefused as exc:
            return await self._page(request, who, str(exc), name)
        await self.note(who, "greeting", name, "file", "", f"{seconds} s")
        raise self.done(f"{ROOT}/greetings", f"Greeting {name} ({seconds} s) saved; use it "
                        f"as user:{name}.")

    @app.route("/greetings/spoken", methods=["POST"])
    async def greeting_spoken(self, request: IRequest) -> bytes:
        """A greeting spoken by the computer from text (where the plan allows TTS)."""
        who = await self.tenant(request, change=True)
        data = form(request)
        name, text = data.get("name", "").strip(), data.get("text", "").strip()
        limit = who.group.max_tts_string_bytes
        why = ""
        if not who.group.allow_tts:
            why = "Your plan does not include spoken text (TTS); upload a recording instead."
        elif not NAME.fullmatch(name):
            why = NAME_HELP
        elif not text:
            why = "Type the text to be spoken."
        elif limit > 0 and len(text.encode("utf-8")) > limit:
            why = f"The text is longer than your plan's {limit} bytes."
        if why:
            return await self._page(request, who, why, name)
        directory, fmt = self._dir(who), self._format(who)
        target = directory / f"{name}.{FORMATS[fmt][0]}"
        try:
            seconds = await deferToThread(_speak, text, voice_for(who.user.language),
                                          self.media, directory, target, fmt,
                                          who.group.max_greeting_duration)
        except GreetingRefused as exc:
            return await self._page(request, who, str(exc), name)
        await self.note(who, "greeting", name, "text", "", text[:200])
        raise self.done(f"{ROOT}/greetings", f"Greeting {name} ({seconds} s) made from your "
                        f"text; use it as user:{name}.")

    @app.route("/greetings/<name>/audio", methods=["GET"])
    async def greeting_audio(self, request: IRequest, name: str) -> bytes:
        who = await self.tenant(request)
        greeting = await self._greeting(who, name)
        body = await deferToThread(_as_wav, greeting.file, self._format(who))
        if body is None:
            raise Refused(404, "This greeting cannot be played in the browser.")
        secure_headers(request, b"audio/wav")
        request.setHeader(b"Cache-Control", b"private, no-store")
        return body

    @app.route("/greetings/<name>/delete", methods=["POST"])
    async def greeting_delete(self, request: IRequest, name: str) -> bytes:
        who = await self.tenant(request, change=True)
        greeting = await self._greeting(who, name)
        used = await self._users_of(who, name)
        if used:
            raise Refused(409, f"Greeting {name} is used by extension "
                          f"{', '.join(used)}; choose another greeting there first.")
        await deferToThread(greeting.file.unlink)
        await self.note(who, "greeting", name, "file", f"{greeting.seconds} s", "")
        raise self.done(f"{ROOT}/greetings", f"Greeting {name} deleted.")


def _speak(text: str, voice: str, media: MediaDirs, directory: Path, target: Path, fmt: str,
           max_seconds: int) -> float:
    media.make(directory)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="spoken-", suffix=".wav",
                                     delete=False) as tmp:
        pass
    try:
        try:
            subprocess.run(["espeak-ng", "-v", voice, "-w", tmp.name, "--", text],
                           check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("espeak-ng could not speak a greeting: {error}; install the Debian "
                      "package espeak-ng", error=str(exc))
            raise GreetingRefused("Spoken greetings cannot be made on this server right "
                                  "now; tell your provider.") from None
        seconds = convert(Path(tmp.name), target, fmt, max_seconds)
        media.share_file(target)
        return seconds
    finally:
        os.unlink(tmp.name)


def _store_upload(data: bytes, media: MediaDirs, directory: Path, target: Path, fmt: str,
                  max_seconds: int) -> float:
    media.make(directory)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", delete=False) as tmp:
        tmp.write(data)
    try:
        seconds = convert(Path(tmp.name), target, fmt, max_seconds)
        media.share_file(target)
        return seconds
    finally:
        os.unlink(tmp.name)
