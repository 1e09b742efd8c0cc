"""The recorded Asterisk 22 sessions (``tests/fixtures/transcripts``, copied from
``../shared/asterisk-transcripts``): each chunk as it crossed the wire."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "transcripts"
_CHUNK = re.compile(r"\s*(?P<t>[\d.]+) (?P<dir>RX|TX)\s+(?P<n>\d+) (?P<data>b'.*'|b\".*\")$")


@dataclass(frozen=True)
class Chunk:
    at: float
    direction: str  # "RX": Asterisk -> server, "TX": server -> Asterisk
    data: bytes


def load(name: str) -> list[Chunk]:
    """The chunk log of one transcript, in order (close events are dropped)."""
    text = (FIXTURES / name).read_text()
    body = text.split("=== Chunk log (byte exact) ===", 1)[1].split("\n===", 1)[0]
    chunks = []
    for line in body.splitlines():
        match = _CHUNK.match(line)
        if match:
            data = ast.literal_eval(match["data"])  # counts are the originals' (paths renamed)
            chunks.append(Chunk(float(match["t"]), match["dir"], data))
    return chunks
