"""A tenant's form for any extension type, made from the type's settings dataclass.

The type's settings class stays the one authority on what is accepted: the form turns what a
person typed into the JSON object the class reads (:func:`read_settings`), and its message
(a :class:`SettingsError`) is shown next to the form.  Text, whole numbers, yes/no, lists of
phones (one per line) and lists of rows (schedule rules, conditions) are supported, which is
every kind of field the built-in types have.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from xvbd.engine.types import SettingsError, read_settings
from xvbd.engine.types.datetime_ import SAY

#: Blank rows offered under the filled ones of a list of rows.
SPARE_ROWS = 3
MAX_ROWS = 200
MAX_LINES = 500
_ROW = re.compile(r"([A-Za-z_]+)\.(\d+)\.")

#: Fields whose value is one of a few words, by field name (the types' __post_init__ say it).
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "VoiceMail": {"after": ("hangup", "up")},
    "Directory": {"search": ("both", "number", "name")},
    "FollowMe": {"mode": ("sequential", "parallel")},
    "DBVar": {"mode": ("input", "value", "say")},
    "GotoIf": {"kind": ("caller_prefix", "caller_regex", "time", "var", "stored", "vote")},
    "DateTime": {"say": SAY},
    "WebRequest": {"method": ("GET", "POST"),
                   "answer": ("auto", "text", "json", "audio", "none")},
}

#: What a field is for, in a tenant's words, by field name.
HELP = {
    "greeting": "The sound played first: one of your greetings (user:NAME) or a system "
                "prompt (system:NAME). Empty: none.",
    "message": "The sound played to the called person: user:NAME or system:NAME.",
    "tts": "Text spoken by the computer when there is no greeting file (if your plan allows "
           "it). %CALLERID% and %VAR:name% are replaced.",
    "timeout": "Seconds to wait for the caller's keys.",
    "default": "The extension taken when nothing else applies (its number, e.g. 1 or 2*3).",
    "target": "The extension to go to (its number, e.g. 1 or 2*3).",
    "no_answer": "The extension to go to when nobody answers.",
    "exit_target": "The extension the exit key leads to.",
    "holiday_target": "The extension taken on a holiday.",
    "phones": "Phone numbers, one per line (digits, * # and + only).",
    "holidays": "Dates, one per line (YYYY-MM-DD or MM-DD for every year).",
    "days": "Weekdays as digits, 1 = Monday … 7 = Sunday (12345 = working days).",
    "start": "From HH:MM.",
    "end": "Until HH:MM.",
    "ring_seconds": "Seconds each phone rings (0: the default).",
    "max_messages": "Most messages kept in this mailbox (0: your plan's limit).",
    "pin": "Digits the caller must type first (empty: none).",
    "timezone": "A time zone such as Europe/Moscow (empty: yours).",
    "name": "A variable's name (letters, digits, _).",
    "question": "What the caller is asked (a sound: user:NAME or system:NAME).",
    "options": "The keys a caller may press to vote, e.g. 123.",
    "url": "The http:// or https:// address to fetch. %CALLERID%, %DID%, %AC%, %VAR:name% "
           "and %DBVAR:name% are replaced (URL-encoded).",
    "method": "GET fetches the URL; POST sends the body to it.",
    "body": "What a POST sends, with the same replacements as the URL.",
    "content_type": "The type of a POST's body (e.g. application/json).",
    "answer": "How the answer is read: auto (by its type), text, json, audio (played), or "
              "none (only success or failure counts).",
    "json_path": "For a JSON answer: the value to take, keys and list positions joined by "
                 "dots (e.g. data.items.0.name). Empty: the whole answer.",
    "variable": "The call variable the answer goes into (read as %VAR:name%). Empty: none.",
    "say": "Speak a text answer to the caller (if your plan allows spoken text).",
    "success": "The extension after an answer (its number, e.g. 1 or 2*3). Empty: back to "
               "the menu.",
    "failure": "The extension when the request fails (no answer in time, too big, an "
               "error). Empty: the caller hears an apology and goes back to the menu.",
    "ttl": "Seconds a fetched value is kept before it is fetched again (0: every call).",
    "fallback": "The value when the fetch fails.",
}

#: Help of a field that means something else in one type, by type then field name.
TYPE_HELP: dict[str, dict[str, str]] = {
    "Calendar": {
        "url": "The calendar's iCalendar (.ics) address, e.g. a Google calendar's secret "
               "address in iCal format.",
        "on": "The extension while an event is going on (e.g. 1 or 2*3). Empty: back to "
              "the menu.",
        "off": "The extension while no event is going on. Empty: back to the menu.",
        "events": "Events by a word of their title (case ignored), tried first: an event "
                  "going on whose title holds the keyword sends the call to its target.",
        "keyword": "A word of the event's title, e.g. Holiday.",
        "fallback": "The extension when the calendar cannot be read (no answer, not "
                    "iCalendar). Empty: the off extension.",
        "cache_seconds": "Seconds the calendar is kept before it is fetched again.",
        "timezone": "The time zone of events without one and of all-day events (empty: "
                    "yours).",
    },
}


@dataclass(frozen=True)
class SettingField:
    """One input of the form."""

    name: str
    label: str
    kind: str  # text | int | bool | choice | lines | rows
    default: Any
    required: bool
    help: str = ""
    choices: tuple[str, ...] = ()
    columns: tuple[SettingField, ...] = ()  # for rows: the row's own fields


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@cache
def describe(type_name: str, cls: type) -> tuple[SettingField, ...]:
    """The form of a settings class (``type_name`` picks the word lists of CHOICES)."""
    hints = typing.get_type_hints(cls)
    choices = CHOICES.get(type_name, {})
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        required = f.default is dataclasses.MISSING and \
            f.default_factory is dataclasses.MISSING
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        help_text = TYPE_HELP.get(type_name, {}).get(f.name) or HELP.get(f.name, "")
        if hint is bool:
            kind = "bool"
        elif hint is int:
            kind = "int"
        elif f.name in choices:
            out.append(SettingField(f.name, _label(f.name), "choice", default, required,
                                    help_text, choices[f.name]))
            continue
        elif hint is str:
            kind = "text"
        elif typing.get_origin(hint) is tuple:
            (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
            if item is str:
                kind = "lines"
            elif dataclasses.is_dataclass(item) and isinstance(item, type):
                out.append(SettingField(f.name, _label(f.name), "rows", default, required,
                                        help_text, columns=describe(type_name, item)))
                continue
            else:
                raise TypeError(f"{cls.__name__}.{f.name}: a list of {item} has no form")
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: {hint} has no form")
        out.append(SettingField(f.name, _label(f.name), kind, default, required, help_text))
    return tuple(out)


def form_values(fields: tuple[SettingField, ...], settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the form shows for stored settings (a JSON object): text per input."""
    values: dict[str, Any] = {}
    for f in fields:
        value = settings.get(f.name, f.default)
        if f.kind == "lines":
            values[f.name] = "\n".join(str(v) for v in value or ())
        elif f.kind == "rows":
            rows = [dict(r) for r in value or () if isinstance(r, dict)]
            values[f.name] = [form_values(f.columns, r) for r in rows]
        elif f.kind == "bool":
            values[f.name] = bool(value)
        else:
            values[f.name] = "" if value is None else str(value)
    return values


def parse(type_name: str, cls: type, data: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """(the settings as a JSON object, '') when the class accepts what was typed, else
    ({...what could be read}, the message saying what is wrong)."""
    fields = describe(type_name, cls)
    settings: dict[str, Any] = {}
    try:
        for f in fields:
            settings[f.name] = _value(f, data, f.name)
        settings = {k: v for k, v in settings.items() if v is not None}
        read_settings(cls, settings)
    except SettingsError as exc:
        return settings, str(exc)
    return settings, ""


def _value(f: SettingField, data: Mapping[str, str], key: str) -> Any:
    raw = data.get(key, "")
    if f.kind == "bool":
        return raw.strip().lower() in ("1", "on", "yes", "true")
    if f.kind == "int":
        text = raw.strip()
        if text == "":
            if f.required:
                raise SettingsError(f"{f.label} is required")
            return f.default
        if not text.lstrip("-").isdigit() or len(text) > 12:
            raise SettingsError(f"{f.label} must be a whole number, got {text!r}")
        return int(text)
    if f.kind == "lines":
        lines = [line.strip() for line in raw.splitlines() if line.strip()]
        if len(lines) > MAX_LINES:
            raise SettingsError(f"{f.label}: at most {MAX_LINES} lines")
        return lines
    if f.kind == "rows":
        found = {m[2] for k in data if (m := _ROW.match(k)) and m[1] == key}
        indexes = sorted(int(i) for i in found if len(i) < 4)
        if len(indexes) > MAX_ROWS:
            raise SettingsError(f"{f.label}: at most {MAX_ROWS} rows")
        rows: list[dict[str, Any]] = []
        for i in indexes:
            prefix = f"{key}.{i}."
            typed = {c.name: data.get(prefix + c.name, "").strip() for c in f.columns}
            if not any(typed[c.name] for c in f.columns if c.required):
                continue  # a blank row: its pre-filled defaults alone do not make a row
            try:
                row = {c.name: _value(c, data, prefix + c.name) for c in f.columns}
            except SettingsError as exc:
                raise SettingsError(f"{f.label}, row {len(rows) + 1}: {exc}") from None
            rows.append({k: v for k, v in row.items() if v is not None})
        return rows
    text = raw.replace("\r\n", "\n").strip()
    if f.required and not text:
        raise SettingsError(f"{f.label} is required")
    if f.kind == "choice" and text and text not in f.choices:
        raise SettingsError(f"{f.label} is one of {', '.join(f.choices)}, got {text!r}")
    return text if text or f.required else (f.default if f.default is not None else "")
