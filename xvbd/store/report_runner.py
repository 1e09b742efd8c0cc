"""Running a SQL report: read-only, bounded in time, rows and bytes, on a thread.

What keeps a report from changing data or reading secrets, by backend:

* **SQLite** — a connection of its own opened ``mode=ro`` with ``PRAGMA query_only=ON``, an
  authorizer that allows only reading (and refuses any read of a secret, :func:`is_secret`,
  however the SQL is spelled: ``WITH t AS (SELECT * FROM users)`` too), a progress handler
  that stops the statement at the time limit, and ``SQLITE_LIMIT_LENGTH`` so one step cannot
  build a value bigger than a report's output may be (such a step never calls the handler).
  This is the real defence.
* **MariaDB/MySQL** — only through the report account of ``[DB] REPORTS_URL`` (``xvbd-admin
  reports-account`` makes it: SELECT on views of a schema of their own that leave every
  secret column out); without it reports are refused (:data:`NO_ACCOUNT`), and an account
  that may do more than read those views is refused too (:func:`check_grants`).  A
  connection of its own in ``START TRANSACTION READ ONLY``, with ``max_statement_time``
  (MariaDB) or ``MAX_EXECUTION_TIME`` (MySQL), one statement per query, always rolled back.

Both backends apply the same text checks first (a second line, not the wall), so a report is
refused alike on both.  :func:`deliver` reads the result in batches, renders it on the thread
and hands it over in chunks that wait for the reader, stopping at the row and byte caps; a
value longer than the cell cap is cut.  The period is ``[% DATE_START %]`` / ``[% DATE_STOP
%]`` (Unix seconds, bound as parameters, never pasted), and two macros give portable dates:
``[% DAY(expr) %]`` is the UTC date ``YYYY-MM-DD`` of the Unix time ``expr``, ``[% TIME(expr)
%]`` its UTC ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from xvbd.config import DatabaseURL
from xvbd.store.db import connect_kwargs

#: Tables a report may not read at all, and columns it may not read, by table
#: (``extensions.settings`` holds the PINs of DISA and conference extensions).
SECRET_TABLES = frozenset({"admins", "web_sessions"})
SECRET_COLUMNS: dict[str, frozenset[str]] = {
    "partners": frozenset({"password_hash"}),
    "users": frozenset({"web_password_hash", "pin"}),
    "sippeers": frozenset({"secret", "md5secret", "remotesecret"}),
    "extensions": frozenset({"settings"}),
}
#: Any column named like a secret, in any table: a PIN or its hash by whatever name it has
#: (pin, pin_hash, voicemail_pins), passwords, secrets, tokens, hashes.
SECRET_NAME = re.compile(r"(^|_)(pins?|password|passwd|secret|token|csrf)(_|$)|(hash|secret)$",
                         re.I)
_SECRET_NAMES = frozenset(name for names in SECRET_COLUMNS.values() for name in names
                          if name != "settings") | {"csrf_token"}
SECRETS_SAID = ("admins, web_sessions, PINs, password hashes, SIP secrets, tokens, "
                "extensions.settings")
_SECRET_WORDS = re.compile(rf"\b({'|'.join(sorted(SECRET_TABLES | _SECRET_NAMES - {'pin'}))})\b",
                           re.I)
_WRITE_WORDS = re.compile(r"\b(insert|update|delete|replace\s+into|drop|create|alter|truncate|"
                          r"grant|revoke|rename|attach|detach|pragma|vacuum|reindex|analyze|"
                          r"into|lock|handler|load_file|get_lock|call|commit|rollback)\b", re.I)
_PLACEHOLDER = re.compile(r"\[%\s*(DATE_START|DATE_STOP)\s*%\]", re.I)
_MACRO = re.compile(r"\[%\s*(DAY|TIME)\s*\((.*?)\)\s*%\]", re.I | re.S)
READ_ONLY = "This report tries to change data; reports are read-only."


def is_secret(table: str, name: str) -> bool:
    """Is ``table.name`` a secret no report may read (SQLite's authorizer, MariaDB's views)?"""
    table, name = table.lower(), name.lower()
    return (table in SECRET_TABLES or name in SECRET_COLUMNS.get(table, ())
            or bool(SECRET_NAME.search(name)))


class ReportRefused(Exception):
    """A report that may not run or did not finish; the message is for the person, ``code``
    the HTTP status of the page that says it."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


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


# ------------------------------------------------------------------ running (on a thread)


@dataclass(frozen=True)
class Bounds:
    """What one run may deliver: rows, bytes of output, characters of one value, seconds."""

    rows: int
    bytes: int
    cell: int
    timeout: float


@dataclass(frozen=True)
class Outcome:
    """How a run ended: what it delivered and why it stopped early, if it did."""

    rows: int
    bytes: int
    stopped: str = ""  # "" (all rows), "rows" or "bytes": a cap was reached
    cut_cells: int = 0  # values cut at Bounds.cell


class Render(Protocol):
    """Rows into text, on the report's thread (the page's table, the CSV's lines)."""

    def head(self, columns: Sequence[Column]) -> str: ...

    def row(self, values: Sequence[str]) -> str: ...


class Delivery(Protocol):
    """Where the thread hands its output; ``put`` waits while the reader has no room."""

    def put(self, item: Any, deadline: float) -> None: ...

    @property
    def stopped(self) -> bool: ...


class Stopped(Exception):
    """The reader went away (the browser closed the page): the run ends quietly."""


#: Rows asked of the driver at a time, and the output handed over at a time.
BATCH_ROWS = 200
CHUNK_BYTES = 64 * 1024
CUT_MARK = "…"


def cell(value: Any, limit: int = 0) -> tuple[str, bool]:
    """A value as the page and the CSV show it, and whether it was cut at ``limit``
    characters (0: never).  Bytes are cut before they are decoded."""
    if value is None:
        return "", False
    cut = False
    if isinstance(value, bytes | bytearray | memoryview):
        if limit and len(value) > limit * 4:
            value, cut = value[:limit * 4], True
        text = bytes(value).decode("utf-8", "replace")
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    else:
        text = str(value)  # a date as 2026-01-31, a Decimal as its digits
    if limit and (cut or len(text) > limit):
        return text[:limit] + CUT_MARK, True
    return text, False


def _timeout_message(seconds: float) -> str:
    return (f"This report ran longer than {seconds:g} s and was stopped; narrow the period "
            "or make the query cheaper ([DB] REPORTS_TIMEOUT sets the limit).")


def _names(cursor: Any) -> tuple[str, ...]:
    """The result's column names; a column named like a secret one is refused (``SELECT *``
    of a table with a secret column, where the text check cannot see it)."""
    names = tuple(str(d[0]) for d in cursor.description or ())
    for name in names:
        if name.lower() in _SECRET_NAMES or SECRET_NAME.search(name):
            raise ReportRefused(f"This report reads a secret ({name}); reports may not read "
                                f"{SECRETS_SAID}. Name the columns you need instead of *.")
    return names


def deliver(cursor: Any, render: Render, bounds: Bounds, out: Delivery, deadline: float
            ) -> Outcome:
    """Read the result in batches, render it and hand it over in chunks until the rows end
    or a cap is reached; the chunks wait for the reader, so memory stays flat."""
    columns = tuple(column(n) for n in _names(cursor))
    out.put(("columns", columns), deadline)
    pending: list[bytes] = [render.head(columns).encode("utf-8")]
    size = len(pending[0])
    rows = total = cut_cells = 0
    stopped = ""
    while not stopped:
        batch = cursor.fetchmany(BATCH_ROWS)
        if time.monotonic() > deadline:
            raise TimeoutError
        if not batch:
            break
        for raw in batch:
            if rows >= bounds.rows:
                stopped = "rows"
                break
            values = []
            for value in raw:
                text, cut = cell(value, bounds.cell)
                values.append(text)
                cut_cells += cut
            data = render.row(values).encode("utf-8")
            if total + size + len(data) > bounds.bytes:
                stopped = "bytes"
                break
            pending.append(data)
            size += len(data)
            rows += 1
            if size >= CHUNK_BYTES:
                out.put(("data", b"".join(pending)), deadline)
                total += size
                pending, size = [], 0
        if not total and rows and not stopped:  # the first rows go at once
            out.put(("data", b"".join(pending)), deadline)
            total += size
            pending, size = [], 0
    if pending:
        out.put(("data", b"".join(pending)), deadline)
        total += size
    return Outcome(rows, total, stopped, cut_cells)


def run_sqlite(path: str, sql: str, params: dict[str, int], render: Render, bounds: Bounds,
               out: Delivery) -> Outcome:
    """Run one read-only statement on a SQLite file, its output handed to ``out``."""
    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5.0,
                           check_same_thread=False)
    denied: list[str] = []
    deadline = time.monotonic() + bounds.timeout

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                  _trigger: str | None) -> int:
        if action == sqlite3.SQLITE_READ:
            table, col = (arg1 or "").lower(), (arg2 or "").lower()
            if is_secret(table, col):
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

    def progress() -> int:  # every few thousand steps of the statement: go on?
        return int(out.stopped or time.monotonic() > deadline)

    try:
        conn.execute("PRAGMA query_only=ON")
        conn.set_authorizer(authorize)
        # One step that builds a huge value (zeroblob(1e9)) never calls the progress
        # handler: no string or blob of a report may be longer than its output may be.
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(bounds.bytes, 1_000_000))
        conn.set_progress_handler(progress, 2000)
        return deliver(conn.execute(sql, params), render, bounds, out, deadline)
    except TimeoutError:
        raise ReportRefused(_timeout_message(bounds.timeout)) from None
    except sqlite3.Error as exc:
        if denied:
            raise ReportRefused(denied[0]) from None
        if out.stopped:
            raise Stopped from None
        if time.monotonic() > deadline and "interrupt" in str(exc):
            raise ReportRefused(_timeout_message(bounds.timeout)) from None
        if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in str(exc):
            raise ReportRefused("This report has more than one statement; a report is one "
                                "SELECT (reports are read-only).") from None
        if isinstance(exc, sqlite3.DataError) or "too big" in str(exc):
            raise ReportRefused(
                f"This report makes a value longer than {max(bounds.bytes, 1_000_000)} "
                "bytes, more than a report may show; narrow it ([DB] REPORTS_MAX_MB sets "
                "the limit).") from None
        raise ReportRefused(f"The database refused this report: {exc}") from None
    finally:
        conn.rollback()
        conn.close()


#: MySQL/MariaDB errors and what they mean for a report.
_MYSQL_TIMEOUTS = frozenset({1969, 3024, 1317, 2013})
_MYSQL_READ_ONLY = frozenset({1792, 1207})
_MYSQL_DENIED = frozenset({1142, 1143, 1044, 1227})

NO_ACCOUNT = (
    "Reports on MariaDB run only through a read-only report account, and none is set up: "
    "run `xvbd-admin reports-account -c /etc/xvbd/xvb.conf` (it makes the account and its "
    "secret-free views), put the REPORTS_URL it prints in [DB], and restart xvbd.")


def check_grants(grants: Sequence[str], main_db: str) -> None:
    """The report account may do nothing but SELECT in a schema that is not xvbd's own
    (its views); anything more and reports are refused, saying what to fix."""
    for line in grants:
        text = " ".join(line.split())
        if re.match(r"GRANT USAGE ON \*\.\* TO ", text, re.I):
            continue
        found = re.match(r"GRANT SELECT ON `((?:[^`]|``)+)`\.\* TO ", text, re.I)
        if found and found[1].replace("``", "`") != main_db and "WITH GRANT OPTION" not in \
                text.upper():
            continue
        raise ReportRefused(
            "The report account of [DB] REPORTS_URL may do more than read the report views "
            f"({text[:120]}); reports are refused until it may not. Make it with "
            "`xvbd-admin reports-account`, which grants SELECT on the views only.")


def run_mysql(url: DatabaseURL, main_db: str, sql: str, params: dict[str, int],
              render: Render, bounds: Bounds, out: Delivery) -> Outcome:
    """Run one statement in a read-only transaction on its own connection, rolled back,
    through the report account (its grants checked first)."""
    import pymysql
    import pymysql.cursors

    _module, kwargs = connect_kwargs(url, 5)
    kwargs.update(read_timeout=int(bounds.timeout) + 5, cursorclass=pymysql.cursors.SSCursor)
    deadline = time.monotonic() + bounds.timeout
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        raise ReportRefused(f"Cannot reach the reports database: {exc}; check "
                            "[DB] REPORTS_URL.") from None
    cursor = conn.cursor()
    try:
        cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
        check_grants([str(row[0]) for row in cursor.fetchall()], main_db)
        cursor.execute("SELECT VERSION()")
        version = str(cursor.fetchall()[0][0]).lower()
        if "mariadb" in version:
            cursor.execute(f"SET SESSION max_statement_time = {float(bounds.timeout):.3f}")
        else:
            cursor.execute(f"SET SESSION MAX_EXECUTION_TIME = {int(bounds.timeout * 1000)}")
        cursor.execute("START TRANSACTION READ ONLY")
        cursor.execute(sql, params)
        return deliver(cursor, render, bounds, out, deadline)
    except TimeoutError:
        raise ReportRefused(_timeout_message(bounds.timeout)) from None
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code in _MYSQL_TIMEOUTS:
            raise ReportRefused(_timeout_message(bounds.timeout)) from None
        if code in _MYSQL_READ_ONLY:
            raise ReportRefused(READ_ONLY) from None
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code in _MYSQL_DENIED:
            raise ReportRefused(f"The report account may not read that: {message}. Reports "
                                "read the secret-free views of the report schema (write "
                                "table names without a database).") from None
        raise ReportRefused(f"The database refused this report: {message}") from None
    finally:
        # A cut or failed read ends here: the server rolls the transaction back.  The rest
        # of an unbuffered result is not read (PyMySQL would read it all when collected).
        result = getattr(conn, "_result", None)
        if result is not None:
            result.unbuffered_active = False
        cursor.connection = None
        conn.close()


def run_report(url: DatabaseURL, main_db: str, text: str, start: int | None,
               stop: int | None, render: Render, bounds: Bounds, out: Delivery) -> Outcome:
    """On a thread: the text checks, then the statement on ``url``'s backend."""
    sql, params = bind(check_text(text, url.backend), url.backend, start, stop)
    if url.backend == "sqlite":
        assert url.path is not None
        return run_sqlite(str(url.path), sql, params, render, bounds, out)
    return run_mysql(url, main_db, sql, params, render, bounds, out)
