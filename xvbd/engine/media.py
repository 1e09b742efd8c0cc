"""Where sound files are: system prompts by name, tenants' files under MEDIA_DIR in a
directory named from the tenant's id, never from anything a person typed."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SYSTEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*")

#: Samples per second of what Asterisk records, by format (RECORD FILE's endpos is samples).
SAMPLE_RATES = {"wav": 8000, "ul": 8000, "al": 8000, "gsm": 8000, "sln": 8000,
                "g722": 16000, "wav16": 16000, "sln16": 16000}

#: Bytes a second of recording takes on disk, by Asterisk's format name (what RECORD FILE
#: writes: 16-bit linear for wav/sln, 8-bit for the G.711 laws, GSM frames of 33 bytes every
#: 20 ms, WAV49 frames of 65 bytes every 40 ms).
BYTES_PER_SECOND = {"wav": 16000, "sln": 16000, "ul": 8000, "ulaw": 8000, "al": 8000,
                    "alaw": 8000, "gsm": 1650, "WAV": 1625, "wav49": 1625, "g722": 8000,
                    "wav16": 32000, "sln16": 32000, "g729": 1000}


class BadSoundName(ValueError):
    """A sound reference that could reach outside where it belongs."""


def tenant_dir(media_dir: Path, user_id: int) -> Path:
    return media_dir / "u" / str(int(user_id))


@lru_cache(maxsize=65536)
def _tenant_prefix(media_dir: Path, user_id: int) -> str:
    return f"{tenant_dir(media_dir, user_id)}/"


def resolve(reference: str, media_dir: Path, user_id: int) -> str:
    """A greeting reference to what STREAM FILE takes: ``system:NAME`` is a system prompt,
    ``user:NAME`` (or a bare NAME) is one of the tenant's files."""
    kind, sep, name = reference.partition(":")
    if not sep:
        kind, name = "user", reference
    if kind == "system":
        if not _SYSTEM.fullmatch(name):
            raise BadSoundName(f"not a system sound name: {name!r}")
        return name
    if kind == "file":  # a file xvbd made itself (TTS), by absolute path under media_dir
        path = Path(name)
        if not path.is_absolute() or media_dir not in path.parents:
            raise BadSoundName(f"not a file of xvbd's media directory: {name!r}")
        return name
    if kind == "user":
        if not _NAME.fullmatch(name) or ".." in name:
            raise BadSoundName(f"not a file name of the tenant's: {name!r}")
        stem = name.rsplit(".", 1)[0] if "." in name else name
        return _tenant_prefix(media_dir, user_id) + stem
    raise BadSoundName(f"a sound is system:NAME or user:NAME, got {reference!r}")


def message_path(media_dir: Path, user_id: int, message_key: str) -> str:
    """Where a new voicemail goes (without extension: Asterisk adds the format's)."""
    if not _NAME.fullmatch(message_key):
        raise BadSoundName(f"not a message key: {message_key!r}")
    return f"{_tenant_prefix(media_dir, user_id)}messages/{message_key}"


def seconds_of(endpos: int, fmt: str) -> int:
    """Whole seconds of a recording from RECORD FILE's end position."""
    return round(max(endpos, 0) / SAMPLE_RATES.get(fmt, 8000))
