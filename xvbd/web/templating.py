"""Jinja2 for the pages: templates under ``xvbd/web/templates``, loaded once at start,
autoescaped (a name ``<script>`` shows as text), with the filters the pages share."""

from __future__ import annotations

import time
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from xvbd.accounting.cdr import money as plain_money


def money(amount: int | None, digits: int = 2) -> str:
    """1/10000 units as the currency shows them, with at least ``digits`` decimals (2:
    12.50); sub-cent amounts keep their digits (0.0333)."""
    if amount is None:
        return ""
    whole, _, frac = plain_money(int(amount)).partition(".")
    frac = frac.ljust(digits, "0")
    return whole + (f".{frac}" if frac else "")


def when(seconds: int | float | None) -> str:
    """A Unix time as UTC ``YYYY-MM-DD HH:MM:SS`` ('' for none)."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, sec = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


#: Journaled fields that hold money (kept in 1/10000 units; shown as the currency shows it).
MONEY_FIELDS = frozenset({"balance", "balance_limit", "monthly_fee", "daily_fee", "ivr_minute",
                          "ivr_call", "callblast_minute", "callblast_call", "callback_minute",
                          "callback_call", "cost", "sys_cost"})


def journaled(value: str, field: str) -> str:
    """A journal's old or new value as a person reads it (money in currency units)."""
    text = str(value)
    if field in MONEY_FIELDS and text.lstrip("-").isdigit():
        return money(int(text))
    return text


def environment() -> Environment:
    # auto_reload off: a render never looks at the disk (no stat() on the reactor thread)
    env = Environment(loader=PackageLoader("xvbd.web", "templates"),
                      autoescape=select_autoescape(("html", "xml"), default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      auto_reload=False, cache_size=-1)
    env.filters.update(money=money, when=when, duration=duration, journaled=journaled)
    return env


class Pages:
    """Renders templates to bytes; one per process."""

    def __init__(self) -> None:
        self.env = environment()
        for name in self.env.list_templates():  # all compiled now: a broken one stops start
            self.env.get_template(name)

    def render(self, template: str, /, **context: Any) -> bytes:
        return self.env.get_template(template).render(**context).encode("utf-8")
