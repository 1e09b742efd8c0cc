"""CDRs of every user (the admin's), with filters, pages and CSV export.

``/ai/cdrs`` lists the records newest first, 50 a page; "Next page" carries the filters and
the place where the page ended (a keyset: start time and id), so a page deep in a million
records costs what the first one does.  ``/ai/cdrs.csv`` is the whole filtered set, written
to the client in batches as it reads them, so it never sits in memory, and it stops when the
client goes away.  Both are the operator's alone: a partner sees only its group's users.

Dates are whole days in UTC, like every time the admin web shows: "from 2026-03-01 to
2026-03-01" is the calls that started on that day, 00:00:00 to 23:59:59 UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest
from zope.interface import implementer

from xvbd.store.accounts import Currency
from xvbd.store.cdr import CDRFilter, CDRKey, CDRRow
from xvbd.web.admin import schemas
from xvbd.web.admin.base import ROOT, AdminBase, Principal, app
from xvbd.web.csvout import csv_bytes, safe_cell
from xvbd.web.forms import FieldError, day_start, parse_day
from xvbd.web.security import form, secure_headers
from xvbd.web.templating import money, when

PAGE = 50
#: Rows the CSV export reads per round trip to the database.
EXPORT_BATCH = 5000
CALL_TYPES = ("incoming", "callback", "callblast")
#: A spreadsheet runs a cell that starts with one of these as a formula.

#: (name in the query, label, most characters)
TEXT_FILTERS = (("caller", "Caller ID", 255), ("called", "Called number", 255),
                ("code", "Access code", 32), ("type", "Type", 32), ("node", "Node", 64))
CSV_COLUMNS = ("Start (UTC)", "Caller ID", "Duration", "Cost", "Currency", "Called number",
               "Access code", "Type", "Call type", "Extension", "Node", "Call ID")


def hms(seconds: int) -> str:
    """A duration as hh:mm:ss (hours may pass 99)."""
    minutes, sec = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{sec:02d}"


@dataclass
class CdrQuery:
    """What the filter form asked for: the store's filter, the values as typed (to show
    them again and to build links) and, by field, what is wrong with them."""

    filter: CDRFilter
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    before: CDRKey | None = None

    @classmethod
    def parse(cls, data: Mapping[str, str]) -> CdrQuery:
        values = {name: data.get(name, "").strip() for name in
                  ("from", "to", "call_type", *(n for n, _, _ in TEXT_FILTERS))}
        errors: dict[str, str] = {}
        days = {name: _day(values[name], label, name, errors)
                for name, label in (("from", "From date"), ("to", "To date"))}
        if days["from"] and days["to"] and days["to"] < days["from"]:
            errors["to"] = (f"To date: {values['to']} is before the from date "
                            f"{values['from']}; the range would be empty.")
        for name, label, most in TEXT_FILTERS:
            text = values[name]
            if len(text) > most:
                errors[name] = f"{label}: at most {most} characters, got {len(text)}."
            elif any(ord(c) < 32 or ord(c) == 127 for c in text):
                errors[name] = f"{label}: no control characters or line breaks."
        if values["call_type"] and values["call_type"] not in CALL_TYPES:
            errors["call_type"] = (f"Call type: one of {', '.join(CALL_TYPES)} (or any), got "
                                   f"{values['call_type'][:40]!r}.")
        before = None
        if data.get("before"):
            try:
                before = CDRKey.parse(data["before"])
            except ValueError:
                errors["before"] = ("The page link is damaged (its place in the list is not "
                                    "one this site wrote); start again from the first page.")
        start_from, start_to = days["from"], days["to"]
        flt = CDRFilter(
            start_from=day_start(start_from) if start_from else None,
            start_to=day_start(start_to, after=True) if start_to else None,
            caller_id=values["caller"] or None, called_id=values["called"] or None,
            access_code=values["code"] or None, type=values["type"] or None,
            call_type=values["call_type"] or None, server_id=values["node"] or None)
        return cls(flt, values, errors, before)

    def link(self, path: str, **more: str) -> str:
        """``path`` with the filters given (and ``more``) as its query."""
        query = {k: v for k, v in {**self.values, **more}.items() if v}
        return f"{path}?{urlencode(query)}" if query else path

    @property
    def filename(self) -> str:
        span = "-".join(self.values[k].replace("-", "") for k in ("from", "to")
                        if self.values[k] and k not in self.errors)
        return f"cdrs-{span}.csv" if span else "cdrs.csv"


def _day(text: str, label: str, name: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return parse_day(text, label)
    except FieldError as exc:
        errors[name] = str(exc)
        return None


def csv_row(row: CDRRow, currencies: Mapping[int, Currency]) -> list[str]:
    currency = currencies.get(row.currency_id)
    return [when(row.start_timestamp), safe_cell(row.caller_id), hms(row.duration),
            money(row.cost, currency.digits if currency else 2),
            currency.code if currency else "",
            *map(safe_cell, (row.called_id, row.access_code, row.type, row.call_type,
                             row.ext_number, row.server_id, row.call_id))]


def csv_records(rows: Sequence[CDRRow], currencies: Mapping[int, Currency]) -> bytes:
    return csv_bytes([csv_row(r, currencies) for r in rows])


@implementer(IPushProducer)
class _Pace:
    """The export's pace: the connection says pause when its buffer is full, resume when
    it has drained, stop when the client has gone."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiting: Deferred[None] | None = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    async def ready(self) -> None:
        """Return when the connection can take more (at once unless it is paused)."""
        while self.paused and not self.stopped:
            self._waiting = Deferred()
            await self._waiting


class CdrPages(AdminBase):
    export_batch = EXPORT_BATCH

    async def _currencies(self) -> dict[int, Currency]:
        return {c.id: c for c in await self.store.accounts.list_currencies()}

    async def _list(self, request: IRequest, who: Principal, query: CdrQuery) -> bytes:
        if query.errors:
            request.setResponseCode(400)
            rows: list[CDRRow] = []
            next_link = ""
        else:
            page = await self.store.cdrs.listing(query.filter, before=query.before,
                                                 limit=PAGE)
            rows = page.rows
            next_link = (query.link(f"{ROOT}/cdrs", before=str(page.next)) if page.next
                         else "")
        nodes = [n.id for n in await self.store.accounts.list_nodes()]
        return self.page(request, "admin/cdrs.html", who, rows=rows, query=query,
                         values=query.values, errors=query.errors,
                         currencies=await self._currencies(), hms=hms,
                         text_filters=TEXT_FILTERS, call_types=CALL_TYPES,
                         types=["XVB", *schemas.type_names()], nodes=nodes,
                         next_link=next_link, first_link=query.link(f"{ROOT}/cdrs"),
                         csv_link=query.link(f"{ROOT}/cdrs.csv"), paged=query.before)

    @app.route("/cdrs", methods=["GET"])
    async def cdrs(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return await self._list(request, who, CdrQuery.parse(form(request)))

    @app.route("/cdrs.csv", methods=["GET"])
    async def cdrs_csv(self, request: IRequest) -> bytes:
        """The filtered set as CSV (UTF-8 with a BOM, so that spreadsheets read it as
        such), streamed in batches of :attr:`export_batch` rows."""
        who = await self.staff(request, admin=True)
        query = CdrQuery.parse(form(request))
        query.errors.pop("before", None)  # the export is always the whole set
        if query.errors:
            return await self._list(request, who, query)
        currencies = await self._currencies()
        secure_headers(request, b"text/csv; charset=utf-8")
        request.setHeader(b"Content-Disposition",
                          f'attachment; filename="{query.filename}"'.encode("ascii"))
        # twisted.web's Request; IRequest's declaration lacks these three methods
        http: Any = request
        gone: list[bool] = []
        http.notifyFinish().addErrback(lambda _: gone.append(True))
        pace = _Pace()
        http.registerProducer(pace, True)
        try:
            request.write(csv_bytes([CSV_COLUMNS], bom=True))
            before = None
            while True:
                rows = await self.store.cdrs.batch(query.filter, before, self.export_batch)
                if gone or pace.stopped:
                    break
                # tens of ms for 5,000 rows: on a thread, not in the way of calls
                request.write(await deferToThread(csv_records, rows, currencies))
                if gone or len(rows) < self.export_batch:
                    break
                before = CDRKey.of(rows[-1])
                await pace.ready()
        finally:
            # A lost connection has no channel left to unregister from (and Klein may cancel
            # us before our notifyFinish errback has run).
            if getattr(request, "channel", None) is not None:
                http.unregisterProducer()
        return b""
