"""Text-to-speech greetings: espeak-ng speaks, sox makes it 8 kHz mono 16-bit WAV (what
Asterisk plays without transcoding), off the reactor thread.  Files are kept by a hash of
language and text under ``MEDIA_DIR/tts``, so a greeting is made once."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThreadPool

from xvbd.logs import logger
from xvbd.mediadirs import MediaDirs

log = logger("xvbd.tts")

#: The espeak-ng voice of a language pack (xvb.RU-Female -> ru); others speak English.
VOICES = {"RU": "ru", "EN": "en", "DE": "de", "FR": "fr", "ES": "es", "IT": "it", "UK": "uk"}


def voice_for(language: str) -> str:
    code = language.split(".")[-1].split("-")[0].upper() if language else "EN"
    return VOICES.get(code, "en")


class TTS:
    def __init__(self, media: MediaDirs, reactor: Any, threadpool: Any = None) -> None:
        self.media = media
        self.directory = media.media_dir / "tts"
        self.reactor = reactor
        self.threadpool = threadpool or reactor.getThreadPool()
        self._made: set[str] = set()

    async def file_for(self, text: str, language: str) -> str | None:
        """The sound (path without extension) speaking ``text``; None if it cannot be made."""
        voice = voice_for(language)
        key = hashlib.sha1(f"{voice}\0{text}".encode()).hexdigest()
        target = self.directory / key
        if key in self._made:
            return str(target)
        ok = await deferToThreadPool(self.reactor, self.threadpool, self._make, text, voice,
                                     target)
        if ok:
            self._made.add(key)
            return str(target)
        return None

    def _make(self, text: str, voice: str, target: Path) -> bool:
        wav = target.with_suffix(".wav")
        if wav.exists():
            return True
        self.media.make(target.parent)
        raw = target.with_suffix(".raw.wav")
        try:
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text], check=True,
                           capture_output=True, timeout=30)
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e",
                            "signed-integer", str(wav)], check=True, capture_output=True,
                           timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("text-to-speech failed ({error}); install espeak-ng and sox",
                      error=str(exc))
            return False
        finally:
            raw.unlink(missing_ok=True)
        self.media.share_file(wav)
        return True
