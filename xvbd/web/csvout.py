"""CSV the webs hand out (the CDR export, a report's rows): UTF-8 for spreadsheets, and no
cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

#: What starts a formula in a spreadsheet (a tab or CR too: some strip them first).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def safe_cell(text: str, *, numbers: bool = False) -> str:
    """``text`` as a cell a spreadsheet shows and never runs: one starting with = + - @
    gets a ' in front (a caller id is chosen by whoever calls).  With ``numbers``, a plain
    number such as -5 is left as it is (a report's figures stay figures)."""
    if not text.startswith(_FORMULA_START) or (numbers and _NUMBER.fullmatch(text)):
        return text
    return "'" + text


def csv_bytes(lines: Iterable[Sequence[str]], *, bom: bool = False) -> bytes:
    """``lines`` as CSV in UTF-8 (RFC 4180: CRLF, a field with , " or a line break quoted);
    ``bom`` puts the byte order mark in front, which spreadsheets need to read UTF-8."""
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    csv.writer(out).writerows(lines)
    return out.getvalue().encode("utf-8")
