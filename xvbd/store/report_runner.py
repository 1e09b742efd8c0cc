"""Running a SQL report: read-only, bounded in time and rows, off the reactor thread.

What keeps a report from changing data or reading secrets, by backend:

* **SQLite** — a connection of its own opened ``mode=ro`` with ``PRAGMA query_only=ON``, an
  authorizer that allows only reading (and refuses any read of :data:`SECRET_TABLES` and
  :data:`SECRET_COLUMNS`, however the SQL is spelled), and a progress handler that stops the
  statement at the time limit.  This is the real defence.
* **MariaDB/MySQL** — a connection of its own (``[DB] REPORTS_URL`` when set, else ``URL``)
  in ``START TRANSACTION READ ONLY``, with ``max_statement_time`` (MariaDB) or
  ``MAX_EXECUTION_TIME`` (MySQL), one statement per query (no multi-statements), and always
  rolled back.  The checks of the report's *text* below (a query, no writing words, no
  secret names) are a second line only: the real defence is a ``REPORTS_URL`` user with
  SELECT on the report tables and nothing else, as ``etc/xvb.conf`` says.

Both backends apply the same text checks first, so a report is refused alike on both.  The
period is ``[% DATE_START %]`` / ``[% DATE_STOP %]`` (Unix seconds, bound as parameters,
never pasted), and two macros give portable dates: ``[% DAY(expr) %]`` is the UTC date
``YYYY-MM-DD`` of the Unix time ``expr``, ``[% TIME(expr) %]`` its UTC ``YYYY-MM-DD
HH:MM:SS``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import DeferredSemaphore
from twisted.internet.threads import deferToThread

from xvbd.config import DatabaseURL
from xvbd.store.db import connect_kwargs
from xvbd.store.reports import Report

#: Tables a report may not read at all, and columns it may not read, by table.
SECRET_TABLES = frozenset({"admins", "web_sessions"})
SECRET_COLUMNS: dict[str, frozenset[str]] = {
    "partners": frozenset({"password_hash"}),
    "users": frozenset({"web_password_hash"}),
    "sippeers": frozenset({"secret", "md5secret", "remotesecret"}),
}
_SECRET_NAMES = frozenset(name for names in SECRET_COLUMNS.values() for name in names) | {
    "csrf_token"}
SECRETS_SAID = ("admins, web_sessions, partners.password_hash, users.web_password_hash, "
                "sippeers.secret / md5secret / remotesecret")
_SECRET_WORDS = re.compile(rf"\b({'|'.join(sorted(SECRET_TABLES | _SECRET_NAMES))})\b", re.I)
_WRITE_WORDS = re.compile(r"\b(insert|update|delete|replace\s+into|drop|create|alter|truncate|"
                          r"grant|revoke|rename|attach|detach|pragma|vacuum|reindex|analyze|"
                          r"into|lock|handler|load_file|get_lock|call|commit|rollback)\b", re.I)
_PLACEHOLDER = re.compile(r"\[%\s*(DATE_START|DATE_STOP)\s*%\]", re.I)
_MACRO = re.compile(r"\[%\s*(DAY|TIME)\s*\((.*?)\)\s*%\]", re.I | re.S)
READ_ONLY = "This report tries to change data; reports are read-only."


class ReportRefused(Exception):
    """A report that may not run or did not finish; the message is for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Column:
    """A result column: its label (the ``=`` marks taken off) and alignment."""

    name: str
    label: str
    align: str  # left | center | right


def column(name: str) -> Column:
    """The seed's rule: a column is centred; ``Name=`` is right-aligned, ``=Name`` left-
    aligned (``=Name=`` centred); the ``=`` is not shown."""
    label = name.strip("=") or name
    if len(name) > 1 and name.startswith("=") != name.endswith("="):
        return Column(name, label, "left" if name.startswith("=") else "right")
    return Column(name, label, "center")


@dataclass(frozen=True)
class ReportResult:
    columns: tuple[Column, ...]
    rows: list[tuple[str, ...]]
    truncated: bool  # more rows than ``limit`` were there
    limit: int


# ------------------------------------------------------------------ the text of a report


#: What quoted text and quoted names become in :func:`code_only` (no word, no space).
QUOTED = "\x00"


def code_only(sql: str, backend: str) -> str:
    """``sql`` with quoted text and names masked and ordinary comments blanked (same
    length); what MySQL runs inside ``/*! ... */`` is kept, as it is code there."""
    mysql = backend == "mysql"
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if mysql and c != "`" and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            end = min(j + 1, n)
            out.append(QUOTED * (end - i))  # not blank: a statement may end in a quote
            i = end
        elif sql.startswith("--", i) and (not mysql or i + 2 >= n or sql[i + 2] <= " "):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif mysql and c == "#":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif sql.startswith("/*", i):
            found = sql.find("*/", i + 2)
            end = n if found < 0 else found + 2
            if mysql and (sql.startswith("/*!", i) or sql.startswith("/*M!", i)):
                out.append("   " + sql[i + 3:end])  # executed by MySQL: checked as code
            else:
                out.append(" " * (end - i))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_text(sql: str, backend: str) -> str:
    """The statement to run (trailing ``;`` taken off), or :class:`ReportRefused`."""
    found = _SECRET_WORDS.search(sql)
    if found:
        word = found[1].lower()
        what = ("the admin passwords" if word == "admins" else
                f"password hashes ({word})" if word.endswith("password_hash") else
                f"a secret ({word})")
        raise ReportRefused(f"This report reads {what}; reports may not read {SECRETS_SAID}.")
    code = code_only(sql, backend)
    body = code.rstrip().rstrip(";").rstrip()
    if not body.strip():
        raise ReportRefused("This report has no SQL; write one SELECT.")
    first = re.match(r"[\s(]*([a-z_]*)", body, re.I)
    keyword = first[1].lower() if first else ""
    if _WRITE_WORDS.search(body):
        raise ReportRefused(READ_ONLY)
    if keyword not in ("select", "with", "values"):
        raise ReportRefused(f"This report is not a query (it starts with {keyword or '?'!r});"
                            " reports are read-only: write one SELECT (or WITH ... SELECT).")
    if ";" in body:
        raise ReportRefused("This report has more than one statement; a report is one "
                            "SELECT (reports are read-only).")
    return sql[:len(body)]


def bind(sql: str, backend: str, start: int | None, stop: int | None
         ) -> tuple[str, dict[str, int]]:
    """The statement for the driver with the period as named parameters, and its values."""
    params: dict[str, int] = {}
    for name, value in (("DATE_START", start), ("DATE_STOP", stop)):
        if re.search(rf"\[%\s*{name}\s*%\]", sql, re.I):
            if value is None:
                raise ReportRefused(f"This report uses [% {name} %] but has no period: give "
                                    "it a default start and stop, or pick the dates.")
            params[name.lower()] = value
    sql = _MACRO.sub(lambda m: _macro(m[1].upper(), m[2], backend), sql)
    pieces = _PLACEHOLDER.split(sql)
    out = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            out.append(piece.replace("%", "%%") if backend == "mysql" else piece)
        else:
            name = piece.lower()
            out.append(f"%({name})s" if backend == "mysql" else f":{name}")
    return "".join(out), params


def _macro(name: str, expr: str, backend: str) -> str:
    if backend == "mysql":
        return f"DATE(FROM_UNIXTIME({expr}))" if name == "DAY" else f"FROM_UNIXTIME({expr})"
    return f"{'date' if name == 'DAY' else 'datetime'}(({expr}), 'unixepoch')"


def cell(value: Any) -> str:
    """A value as the page and the CSV show it."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)  # a date as 2026-01-31, a Decimal as its digits


# ------------------------------------------------------------------ running (on a thread)


def _timeout_message(seconds: float) -> str:
    return (f"This report ran longer than {seconds:g} s and was stopped; narrow the period "
            "or make the query cheaper ([DB] REPORTS_TIMEOUT sets the limit).")


def _names(cursor: Any) -> tuple[str, ...]:
    """The result's column names; a column named like a secret one is refused (``SELECT *``
    of a table with a secret column, where the text check cannot see it)."""
    names = tuple(str(d[0]) for d in cursor.description or ())
    for name in names:
        if name.lower() in _SECRET_NAMES:
            raise ReportRefused(f"This report reads a secret ({name}); reports may not read "
                                f"{SECRETS_SAID}. Name the columns you need instead of *.")
    return names


def _fetch(cursor: Any, limit: int, deadline: float) -> tuple[list[tuple[str, ...]], bool]:
    rows: list[tuple[str, ...]] = []
    while len(rows) <= limit:
        batch = cursor.fetchmany(min(1000, limit + 1 - len(rows)))
        if not batch:
            return rows, False
        rows.extend(tuple(cell(v) for v in row) for row in batch)
        if time.monotonic() > deadline:
            raise TimeoutError
    return rows[:limit], True


def run_sqlite(path: str, sql: str, params: dict[str, int], limit: int, timeout: float
               ) -> tuple[tuple[str, ...], list[tuple[str, ...]], bool]:
    """Run one read-only statement on a SQLite file: (column names, rows, cut)."""
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5.0,
                           check_same_thread=False)
    denied: list[str] = []
    deadline = time.monotonic() + timeout

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                  _trigger: str | None) -> int:
        if action == sqlite3.SQLITE_READ:
            table, col = (arg1 or "").lower(), (arg2 or "").lower()
            if table in SECRET_TABLES or col in SECRET_COLUMNS.get(table, ()):
                what = "the admin passwords" if table == "admins" else f"{table}.{col}"
                denied.append(f"This report reads {what}; reports may not read "
                              f"{SECRETS_SAID}.")
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() != "load_extension":
            return sqlite3.SQLITE_OK
        denied.append(READ_ONLY)
        return sqlite3.SQLITE_DENY

    try:
        conn.execute("PRAGMA query_only=ON")
        conn.set_authorizer(authorize)
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 2000)
        cursor = conn.execute(sql, params)
        names = _names(cursor)
        rows, cut = _fetch(cursor, limit, deadline)
        return names, rows, cut
    except TimeoutError:
        raise ReportRefused(_timeout_message(timeout)) from None
    except sqlite3.Error as exc:
        if denied:
            raise ReportRefused(denied[0]) from None
        if time.monotonic() > deadline and "interrupt" in str(exc):
            raise ReportRefused(_timeout_message(timeout)) from None
        if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in str(exc):
            raise ReportRefused("This report has more than one statement; a report is one "
                                "SELECT (reports are read-only).") from None
        raise ReportRefused(f"The database refused this report: {exc}") from None
    finally:
        conn.rollback()
        conn.close()


#: MySQL/MariaDB errors and what they mean for a report.
_MYSQL_TIMEOUTS = frozenset({1969, 3024, 1317, 2013})
_MYSQL_READ_ONLY = frozenset({1792, 1207})
_MYSQL_DENIED = frozenset({1142, 1143, 1044, 1227})


def run_mysql(url: DatabaseURL, sql: str, params: dict[str, int], limit: int, timeout: float
              ) -> tuple[tuple[str, ...], list[tuple[str, ...]], bool]:
    """Run one statement in a read-only transaction on its own connection, rolled back."""
    import pymysql
    import pymysql.cursors

    _module, kwargs = connect_kwargs(url, 5)
    kwargs.update(read_timeout=int(timeout) + 5, cursorclass=pymysql.cursors.SSCursor)
    deadline = time.monotonic() + timeout
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        raise ReportRefused(f"Cannot reach the reports database: {exc}; check "
                            "[DB] REPORTS_URL (or URL).") from None
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT VERSION()")
        version = str(cursor.fetchall()[0][0]).lower()
        if "mariadb" in version:
            cursor.execute(f"SET SESSION max_statement_time = {float(timeout):.3f}")
        else:
            cursor.execute(f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
        cursor.execute("START TRANSACTION READ ONLY")
        cursor.execute(sql, params)
        names = _names(cursor)
        rows, cut = _fetch(cursor, limit, deadline)
        if not cut:
            conn.rollback()
        return names, rows, cut
    except TimeoutError:
        raise ReportRefused(_timeout_message(timeout)) from None
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code in _MYSQL_TIMEOUTS:
            raise ReportRefused(_timeout_message(timeout)) from None
        if code in _MYSQL_READ_ONLY:
            raise ReportRefused(READ_ONLY) from None
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code in _MYSQL_DENIED:
            raise ReportRefused(f"The reports database user may not read that: {message}"
                                ) from None
        raise ReportRefused(f"The database refused this report: {message}") from None
    finally:
        # A cut or failed read ends here: the server rolls the transaction back.  The rest
        # of an unbuffered result is not read (PyMySQL would read it all when collected).
        result = getattr(conn, "_result", None)
        if result is not None:
            result.unbuffered_active = False
        cursor.connection = None
        conn.close()


# ------------------------------------------------------------------ the runner


class ResultCache:
    """Results by (report id, start, stop, row limit) for the report's cache TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = 256) -> None:
        self.clock = clock
        self.size = size
        self._entries: dict[tuple[int, int | None, int | None, int],
                            tuple[float, ReportResult]] = {}
        self._generation: dict[int, int] = {}

    def get(self, key: tuple[int, int | None, int | None, int]) -> ReportResult | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        return entry[1]

    def generation(self, report_id: int) -> int:
        return self._generation.get(report_id, 0)

    def put(self, key: tuple[int, int | None, int | None, int], ttl: int,
            result: ReportResult, generation: int) -> None:
        if ttl <= 0 or generation != self.generation(key[0]):
            return  # no caching, or the report changed while it ran
        now = self.clock()
        for old in [k for k, (until, _) in self._entries.items() if until <= now]:
            del self._entries[old]
        while len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + ttl, result)

    def forget(self, report_id: int) -> None:
        """A report was edited or deleted: its results are gone."""
        self._generation[report_id] = self.generation(report_id) + 1
        for key in [k for k in self._entries if k[0] == report_id]:
            del self._entries[key]


class ReportRunner:
    """Runs reports on ``url`` (or ``reports_url``), at most ``concurrency`` at a time."""

    def __init__(self, url: DatabaseURL, *, reports_url: DatabaseURL | None = None,
                 timeout: float = 30, concurrency: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = reports_url or url
        self.timeout = timeout
        self.cache = ResultCache(clock)
        self._slots = DeferredSemaphore(concurrency)

    @property
    def backend(self) -> str:
        return self.url.backend

    async def run(self, report: Report, start: int | None, stop: int | None,
                  limit: int) -> ReportResult:
        """The report's rows for the period (cached for its TTL); :class:`ReportRefused`."""
        key = (report.id, start, stop, limit)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        generation = self.cache.generation(report.id)
        names, rows, cut = await self._slots.run(deferToThread, self._run, report.sql_text,
                                                 start, stop, limit)
        result = ReportResult(tuple(column(n) for n in names), rows, cut, limit)
        self.cache.put(key, report.cache_ttl, result, generation)
        return result

    def _run(self, text: str, start: int | None, stop: int | None, limit: int
             ) -> tuple[tuple[str, ...], list[tuple[str, ...]], bool]:
        """On a thread: the text checks, then the statement."""
        sql, params = bind(check_text(text, self.backend), self.backend, start, stop)
        if self.url.backend == "sqlite":
            assert self.url.path is not None
            return run_sqlite(str(self.url.path), sql, params, limit, self.timeout)
        return run_mysql(self.url, sql, params, limit, self.timeout)
