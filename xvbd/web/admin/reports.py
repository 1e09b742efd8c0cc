"""SQL reports (``/ai/reports``): the list with a search by name, the edit form (SQL typed
or uploaded as a ``.sql`` file), the run page (a period, the result as a table) and CSV.

Reports read every tenant's data, so every route is the operator's: a partner is refused
(403).  ``access = admin`` lets only the owning admin login run, see or change a report;
``all`` lets every admin login.  Running is read-only and bounded (``xvbd.store.
report_runner``, ``report_stream``): the rows are streamed to the page and the CSV as the
browser takes them, rendered on the report's thread; a refusal before the first row is shown
on the page with its HTTP status (400, 429 for a second report of one login, 503 without a
MariaDB report account), one after it at the end of the rows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from functools import cached_property
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest
from zope.interface import implementer

from xvbd.store.audit import acting
from xvbd.store.report_runner import Bounds, Column, Render, ReportRefused, check_text
from xvbd.store.report_stream import ReportRun, ReportRunner
from xvbd.store.reports import MOMENT_HELP, Report, moment
from xvbd.web import csvout
from xvbd.web.admin.base import ROOT, AdminBase, Principal, app
from xvbd.web.csvout import safe_cell
from xvbd.web.forms import Field, FieldError, day_start, parse_day, parse_fields
from xvbd.web.security import Redirect, Refused, form, number_arg, secure_headers

ROWS_ON_PAGE = 10_000  # a page's table; the CSV takes up to [DB] REPORTS_MAX_ROWS
ROWS_IN_CSV = 10_000_000
TABLE_HERE = "<!-- the report's rows -->"
SQL_BYTES = 60_000  # what a TEXT column holds on MySQL, with room to spare
ALIGN_CLASS = {"left": "", "center": "mid", "right": "num"}
ACCESS_CHOICES = (("admin", "the owner only"), ("all", "every admin login"))


def _arg(request: IRequest, name: str) -> str:
    return request.args.get(name.encode(), [b""])[0].decode("utf-8", "replace").strip()[:64]


def _day(text: str, label: str) -> date:
    try:
        return parse_day(text, label)
    except FieldError as exc:
        raise ReportRefused(str(exc)) from None


class ReportPages(AdminBase):
    """The operator's SQL reports."""

    @cached_property
    def report_runner(self) -> ReportRunner:
        db = self.settings.db
        return ReportRunner(self.store.db.url, reports_url=db.reports_url,
                            timeout=db.reports_timeout)

    async def _report(self, who: Principal, report_id: str) -> Report:
        report = await self.store.reports.get(number_arg(report_id))
        if report is None:
            raise Refused(404, f"There is no report {report_id}.")
        if not report.runs_for(who.name):
            raise Refused(403, f"Report {report.id} is kept by its owner {report.owner} for "
                          "themselves; they can share it with every admin login.")
        return report

    # ------------------------------------------------------------------ list

    @app.route("/reports", methods=["GET"])
    async def reports_list(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        number = _arg(request, "n")
        if number:  # the seed's "Report #: Run" box
            if number.isdigit() and len(number) < 19:
                raise Redirect(f"{ROOT}/reports/{number}")
            raise Refused(404, f"There is no report {number!r}; a report's number is digits.")
        name = _arg(request, "name")
        reports = [r for r in await self.store.reports.list(name) if r.runs_for(who.name)]
        return self.page(request, "admin/reports.html", who, reports=reports, name=name,
                         title="Reports")

    # ------------------------------------------------------------------ run

    def _period(self, request: IRequest, report: Report) -> tuple[int | None, int | None]:
        """The period picked on the page (whole UTC days, the last one included), else the
        report's default start and stop."""
        first, last = _arg(request, "from"), _arg(request, "to")
        if first or last:
            if not (first and last):
                raise ReportRefused("Pick both dates (from and to), or neither for the "
                                    "report's default period.")
            start, end = _day(first, "From date"), _day(last, "To date")
            if end < start:
                raise ReportRefused("To date is before From date.")
            return day_start(start), day_start(end, after=True)
        if not report.has_period:
            return None, None
        now = time.time()
        try:
            return moment(report.default_start, now), moment(report.default_stop, now)
        except ValueError as exc:
            raise ReportRefused(f"The report's default period: {exc}; edit the report."
                                ) from None

    def _bounds(self, rows: int) -> Bounds:
        db = self.settings.db
        return Bounds(rows=min(rows, db.reports_max_rows), bytes=db.reports_max_mb << 20,
                      cell=db.reports_max_cell_kb * 1024, timeout=db.reports_timeout)

    async def _begin(self, request: IRequest, who: Principal, report: Report,
                     render: Render, rows: int, kind: str
                     ) -> tuple[int | None, int | None, ReportRun, Bounds]:
        start, stop = self._period(request, report)
        bounds = self._bounds(rows)
        run = await self.report_runner.start(report, start, stop, operator=who.name,
                                             render=render, bounds=bounds, kind=kind)
        return start, stop, run, bounds

    def _notices(self, run: ReportRun, bounds: Bounds, page: bool) -> list[str]:
        """What the person is told at the end of the rows: a cap reached, values cut."""
        outcome, said = run.outcome, []
        assert outcome is not None
        if outcome.stopped == "rows":
            most = self.settings.db.reports_max_rows
            said.append(f"The report stopped at {bounds.rows} rows (the most a page shows); "
                        f"narrow it, or take the CSV (up to {most} rows)."
                        if page and bounds.rows < most else
                        f"The report stopped at {bounds.rows} rows ([DB] REPORTS_MAX_ROWS); "
                        "narrow it.")
        elif outcome.stopped == "bytes":
            said.append(f"The report stopped at {bounds.bytes >> 20} MB ({outcome.rows} "
                        "rows; [DB] REPORTS_MAX_MB); narrow it: fewer rows or columns.")
        if outcome.cut_cells:
            said.append(f"{outcome.cut_cells} values longer than {bounds.cell // 1024} KB "
                        "were cut (they end in …; [DB] REPORTS_MAX_CELL_KB).")
        return said

    @app.route("/reports/<report_id>", methods=["GET"])
    async def report_run(self, request: IRequest, report_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        report = await self._report(who, report_id)
        picked = {"from": _arg(request, "from"), "to": _arg(request, "to")}
        try:
            start, stop, run, bounds = await self._begin(request, who, report, HtmlRows(),
                                                         ROWS_ON_PAGE, "html")
        except ReportRefused as exc:
            request.setResponseCode(exc.code)
            return self.page(request, "admin/report.html", who, report=report, running=False,
                             error=exc.message, start=None, stop=None, title=report.name,
                             table_html="", picked=picked)
        head, tail = self.page(request, "admin/report.html", who, report=report, running=True,
                               error="", start=start, stop=stop, title=report.name,
                               table_html=Markup(TABLE_HERE), picked=picked
                               ).split(TABLE_HERE.encode(), 1)
        request.write(head)
        error = await stream(request, run)
        if run.outcome is None:  # the browser went away
            return b""
        request.write(self.pages.render(
            "admin/report_end.html", outcome=run.outcome, columns=len(run.columns),
            error=error, notices=[] if error else self._notices(run, bounds, page=True),
            report=report) + tail)
        return b""

    @app.route("/reports/<report_id>/csv", methods=["GET"])
    async def report_csv(self, request: IRequest, report_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        report = await self._report(who, report_id)
        try:
            _start, _stop, run, bounds = await self._begin(request, who, report, CsvRows(),
                                                           ROWS_IN_CSV, "csv")
        except ReportRefused as exc:
            raise Refused(exc.code, exc.message) from None
        secure_headers(request, b"text/csv; charset=utf-8")
        slug = re.sub(r"[^A-Za-z0-9]+", "-", report.name).strip("-")[:60] or "report"
        request.setHeader(b"Content-Disposition", (
            f"attachment; filename=\"report-{report.id}-{slug}.csv\"; "
            f"filename*=UTF-8''{quote(f'report-{report.id}-{report.name}.csv', safe='')}"
            ).encode())
        error = await stream(request, run)
        if run.outcome is None and not error:
            return b""
        said = [error] if error else self._notices(run, bounds, page=False)
        return csvout.csv_bytes([[f"({line})"] for line in said])

    # ------------------------------------------------------------------ edit

    async def _fields(self, who: Principal, report: Report | None) -> tuple[Field, ...]:
        owners = await self.store.reports.admin_logins()
        for extra in (who.name, report.owner if report else ""):
            if extra and extra not in owners:
                owners.append(extra)
        moment_help = f"{MOMENT_HELP}; empty (both) for a report without a period"
        return (
            Field("name", "Name", required=True, max_length=255),
            Field("default_start", "Default start", max_length=255, help=moment_help),
            Field("default_stop", "Default stop", max_length=255,
                  help="the end of the period, not included (e.g. today)"),
            Field("cache_ttl", "Cache TTL (seconds)", "int", minimum=0, maximum=7 * 86400,
                  help="how long a result is kept and shown again; 0: run every time"),
            Field("owner", "Owner", "choice", choices=tuple((o, o) for o in owners)),
            Field("access", "Who may run it", "choice", choices=ACCESS_CHOICES,
                  help="a partner never runs reports"),
            Field("sql_text", "SQL", "textarea", max_length=SQL_BYTES),
        )

    def _form(self, request: IRequest, who: Principal, fields: tuple[Field, ...],
              values: dict[str, Any], action: str, report: Report | None = None,
              errors: dict[str, str] | None = None) -> bytes:
        if errors:
            request.setResponseCode(400)
        return self.page(request, "admin/report_form.html", who, fields=fields[:-1],
                         values=values, errors=errors or {},
                         action=action, report=report, sql_bytes=SQL_BYTES,
                         title=f"Report {report.name}" if report else "New report")

    async def _parsed(self, request: IRequest, fields: tuple[Field, ...]
                      ) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
        """(values, errors, what the form sent) of a report form (multipart or not)."""
        data = form(request)
        data.pop("sql_file", None)  # the uploaded file is read apart, as bytes
        upload = (request.args or {}).get(b"sql_file", [b""])[0]
        values, errors = parse_fields(fields, data)
        if upload:
            if len(upload) > SQL_BYTES:
                errors["sql_text"] = (f"SQL file: at most {SQL_BYTES} bytes, this one has "
                                      f"{len(upload)}.")
            else:
                try:
                    text = upload.decode("utf-8-sig")
                except UnicodeDecodeError:
                    text = ""
                    errors["sql_text"] = ("SQL file: not UTF-8 text; save it as UTF-8 and "
                                          "upload it again.")
                if text and "\x00" in text:
                    errors["sql_text"] = "SQL file: not a text file."
                elif text:
                    values["sql_text"] = data["sql_text"] = text.strip()
                    errors.pop("sql_text", None)
        sql = values.get("sql_text", "")
        if "sql_text" not in errors:
            if not sql:
                errors["sql_text"] = "SQL: write the query or upload a .sql file."
            elif len(sql.encode("utf-8")) > SQL_BYTES:
                errors["sql_text"] = f"SQL: at most {SQL_BYTES} bytes."
            else:
                try:  # on a thread: a long text takes some milliseconds to scan
                    await deferToThread(check_text, sql, self.report_runner.backend)
                except ReportRefused as exc:
                    errors["sql_text"] = exc.message
        start, stop = values.get("default_start", ""), values.get("default_stop", "")
        for name, label in (("default_start", "Default start"), ("default_stop",
                                                                 "Default stop")):
            if values.get(name) and name not in errors:
                try:
                    moment(values[name], time.time())
                except ValueError as exc:
                    errors[name] = f"{label}: {exc}"
        if bool(start) != bool(stop) and not errors.keys() & {"default_start", "default_stop"}:
            errors["default_stop" if start else "default_start"] = (
                "Give both a default start and a default stop, or neither.")
        return values, errors, {k: v for k, v in data.items() if k != "_csrf"}

    @app.route("/reports/new", methods=["GET"])
    async def report_new(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        values = {"name": "", "default_start": "yesterday", "default_stop": "today",
                  "cache_ttl": 300, "owner": who.name, "access": "admin", "sql_text": ""}
        return self._form(request, who, await self._fields(who, None), values,
                          f"{ROOT}/reports/new")

    @app.route("/reports/new", methods=["POST"])
    async def report_create(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        fields = await self._fields(who, None)
        values, errors, sent = await self._parsed(request, fields)
        if errors:
            return self._form(request, who, fields, sent, f"{ROOT}/reports/new",
                              errors=errors)
        with acting(who.actor):
            report = await self.store.reports.create(values.pop("name"),
                                                     values.pop("sql_text"), **values)
        raise self.done(f"{ROOT}/reports/{report.id}", f"Report {report.name} saved.")

    @app.route("/reports/<report_id>/edit", methods=["GET"])
    async def report_edit(self, request: IRequest, report_id: str) -> bytes:
        who = await self.staff(request, admin=True)
        report = await self._report(who, report_id)
        return self._form(request, who, await self._fields(who, report), asdict(report),
                          f"{ROOT}/reports/{report.id}/edit", report)

    @app.route("/reports/<report_id>/edit", methods=["POST"])
    async def report_save(self, request: IRequest, report_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        report = await self._report(who, report_id)
        fields = await self._fields(who, report)
        values, errors, sent = await self._parsed(request, fields)
        if errors:
            return self._form(request, who, fields, sent,
                              f"{ROOT}/reports/{report.id}/edit", report, errors)
        with acting(who.actor):
            await self.store.reports.update(report.id, **values)
        self.report_runner.cache.forget(report.id)
        raise self.done(f"{ROOT}/reports/{report.id}", f"Report {values['name']} saved.")

    @app.route("/reports/<report_id>/delete", methods=["POST"])
    async def report_delete(self, request: IRequest, report_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        report = await self._report(who, report_id)
        with acting(who.actor):
            await self.store.reports.delete(report.id)
        self.report_runner.cache.forget(report.id)
        raise self.done(f"{ROOT}/reports", f"Report {report.name} deleted.")


class HtmlRows:
    """The page's table, rendered on the report's thread (escaped as the templates are)."""

    def head(self, columns: Sequence[Column]) -> str:
        self.classes = [ALIGN_CLASS[c.align] for c in columns]
        cells = "".join(f"<th{_class(a)}>{escape(c.label)}</th>"
                        for c, a in zip(columns, self.classes, strict=True))
        return (f'<div class="scroll"><table class="report">\n<thead><tr>{cells}</tr></thead>'
                "\n<tbody>\n")

    def row(self, values: Sequence[str]) -> str:
        cells = "".join(f"<td{_class(a)}>{escape(v)}</td>"
                        for v, a in zip(values, self.classes, strict=False))
        return f"<tr>{cells}</tr>\n"


def _class(align: str) -> str:
    return f' class="{align}"' if align else ""


class CsvRows:
    """The CSV, rendered on the report's thread (a BOM, CRLF rows, no formula cells)."""

    def head(self, columns: Sequence[Column]) -> str:
        return "\ufeff" + self.row([c.label for c in columns])

    def row(self, values: Sequence[str]) -> str:
        return csvout.csv_bytes([[safe_cell(v, numbers=True) for v in values]]).decode("utf-8")


@implementer(IPushProducer)
class _Room:
    """Whether the connection has room for more (twisted.web pauses a streaming producer
    when its buffer is full), and whether the browser went away."""

    def __init__(self) -> None:
        self.paused = self.gone = False
        self._waiting: Deferred[None] | None = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        self.gone = True
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.callback(None)

    async def wait(self) -> None:
        if self.paused and not self.gone:
            self._waiting = Deferred()
            await self._waiting


async def stream(request: IRequest, run: ReportRun) -> str:
    """Write the run's chunks as the connection takes them; the message of a failure after
    the first rows (the time limit), else ""."""
    room = _Room()
    request.registerProducer(room, True)  # type: ignore[attr-defined]
    try:
        async for chunk in run.chunks():
            request.write(chunk)
            await room.wait()
            if room.gone:
                run.stop()
                return ""
            run.ack()
    except ReportRefused as exc:
        return exc.message
    except BaseException:
        run.stop()  # the browser went away (the request's Deferred was cancelled)
        raise
    finally:
        request.unregisterProducer()  # type: ignore[attr-defined]
    return ""
