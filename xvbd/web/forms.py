"""What an object's fields accept, said once and used by the HTML forms and the API alike:
each :class:`Field` turns what a person typed (or a JSON value) into the stored value, or
says in plain words what is wrong with it."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from xvbd.accounting.cdr import UNITS as UNIT
from xvbd.web.templating import money


class FieldError(ValueError):
    """A value a field does not accept; the message is for the person who typed it."""


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Amounts of money a form takes are below this (BIGINT holds 1/10000 units up to ~9e14).
MONEY_LIMIT = 10 ** 12


def parse_day(text: str, label: str) -> date:
    """A day typed as YYYY-MM-DD, from 1970 to 9998 (the day after it still a date);
    :class:`FieldError` naming ``label`` otherwise."""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or not 1970 <= day.year <= 9998:
        raise FieldError(f"{label}: a day as YYYY-MM-DD (like 2026-03-01), got {text[:40]!r}.")
    return day


def day_start(day: date, zone: tzinfo = UTC, *, after: bool = False) -> int:
    """The Unix time ``day`` begins in ``zone`` (``after``: the day after it begins, the end
    of a period that includes ``day``)."""
    if after:
        day += timedelta(days=1)
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text | int | float | money | bool | choice | password | textarea
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 255
    min_length: int = 0  # when not empty (a password)
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    pattern: str = ""  # the whole value must match
    pattern_help: str = ""
    help: str = ""
    section: str = ""

    def parse(self, raw: Any) -> Any:
        """The stored value of ``raw`` (a form's text or a JSON value)."""
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = "" if raw is None else str(raw).strip().lower()
            if text in ("1", "on", "yes", "true"):
                return True
            if text in ("", "0", "off", "no", "false"):
                return False
            raise FieldError(f"{self.label}: yes or no, got {raw!r}")
        text = "" if raw is None else str(raw).strip()
        if text == "":
            if self.required:
                raise FieldError(f"{self.label} is required")
            if self.kind in ("int", "float", "money"):
                raise FieldError(f"{self.label}: a number is required")
            return ""
        if self.kind == "int":
            if isinstance(raw, bool) or not re.fullmatch(r"-?\d{1,18}", text):
                raise FieldError(f"{self.label}: a whole number, got {text!r}")
            return self._bounded(int(text))
        if self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise FieldError(f"{self.label}: a number, got {text!r}") from None
            if not math.isfinite(value):
                raise FieldError(f"{self.label}: a number, got {text!r}")
            return self._bounded(value)
        if self.kind == "money":
            return self._bounded_money(text)
        if self.kind == "choice":
            allowed = [value for value, _ in self.choices]
            if text not in allowed:
                raise FieldError(f"{self.label}: one of {', '.join(allowed)}, got {text!r}")
            return text
        if len(text) > self.max_length:
            raise FieldError(f"{self.label}: at most {self.max_length} characters")
        if text and len(text) < self.min_length:
            raise FieldError(f"{self.label}: at least {self.min_length} characters.")
        if any(ord(c) < 32 for c in text) and self.kind != "textarea":
            raise FieldError(f"{self.label}: no control characters or line breaks")
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise FieldError(f"{self.label}: {self.pattern_help or 'not in the right form'}")
        return text

    def _bounded(self, value: float) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise FieldError(f"{self.label}: at least {self.minimum:g}, got {value:g}")
        if self.maximum is not None and value > self.maximum:
            raise FieldError(f"{self.label}: at most {self.maximum:g}, got {value:g}")
        return value

    def _bounded_money(self, text: str) -> int:
        try:
            amount = Decimal(text.replace(",", "."))
        except InvalidOperation:
            raise FieldError(f"{self.label}: an amount like 12.50, got {text!r}") from None
        if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
            raise FieldError(f"{self.label}: an amount below {MONEY_LIMIT:,}, got {text[:40]!r}")
        if amount != amount.quantize(Decimal("0.0001")):
            raise FieldError(f"{self.label}: at most 4 digits after the point, got {text!r}")
        units = int(amount * UNIT)
        if self.minimum is not None and units < self.minimum * UNIT:
            raise FieldError(f"{self.label}: at least {self.minimum:g}, got {text}")
        if self.maximum is not None and units > self.maximum * UNIT:
            raise FieldError(f"{self.label}: at most {self.maximum:g}, got {text}")
        return units

    def show(self, value: Any) -> str:
        """The value as a form shows it."""
        if value is None:
            return ""
        if self.kind == "money":
            return money(int(value))
        if self.kind == "bool":
            return "1" if value else ""
        if self.kind == "password":
            return ""
        if self.kind == "float":
            return f"{float(value):g}"
        return str(value)



def parse_fields(fields: Sequence[Field], data: Mapping[str, Any], *,
                 partial: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """The values of ``fields`` in ``data`` and, by field name, what is wrong.

    A whole form (``partial=False``) sends every field (a checkbox left clear is absent,
    and false); an API update (``partial=True``) changes only the fields it names.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        if partial and field.name not in data:
            continue
        raw = data.get(field.name)
        if field.kind == "password" and (raw is None or raw == ""):
            continue  # an empty (or absent) password box keeps the password
        try:
            values[field.name] = field.parse(raw)
        except FieldError as exc:
            errors[field.name] = str(exc)
    return values, errors


def unknown_fields(fields: Sequence[Field], data: Mapping[str, Any]) -> list[str]:
    known = {f.name for f in fields}
    return sorted(name for name in data if name not in known and not name.startswith("_"))
