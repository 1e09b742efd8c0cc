"""The MariaDB/MySQL report account (``xvbd-admin reports-account``): a schema of its own
(``<database>_reports``) holding one view per table of xvbd's database that leaves every
secret out (:func:`~xvbd.store.report_runner.is_secret`: no ``admins``, no ``web_sessions``,
no PIN, password hash, SIP secret, token or ``extensions.settings`` column), and a login
that may SELECT those views and nothing else.  Reports name the tables as they always did
(``FROM cdrs``): the account's default database is the views' schema.

The views run with their definer's rights (the administrator who ran the command), so the
report login needs no right on xvbd's own tables.  After ``xvbd-admin db upgrade`` the views
are made again (``--views-only``) so that new tables and columns appear in them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from xvbd.config import DatabaseURL
from xvbd.store.db import connect_kwargs
from xvbd.store.report_runner import is_secret

DEFAULT_LOGIN = "xvbd_reports"


class AccountError(Exception):
    """The account could not be made; the message says what to do."""


@dataclass(frozen=True)
class ReportAccount:
    url: DatabaseURL  # what [DB] REPORTS_URL is to be
    schema: str
    views: tuple[str, ...]
    left_out: tuple[str, ...]  # table or table.column, what no view shows

    def reports_url(self) -> str:
        """``url`` as text for xvb.conf (the password quoted for a URL)."""
        u = self.url
        return (f"mysql://{quote(u.user or '', safe='')}:{quote(u.password or '', safe='')}"
                f"@{u.host}:{u.port}/{u.name}")


def _name(text: str) -> str:
    return "`" + text.replace("`", "``") + "`"


def _text(conn: Any, text: str) -> str:
    return str(conn.escape(text))  # quoted


def reports_schema(database: str) -> str:
    return f"{database}_reports"[:64]


def make_views(cursor: Any, database: str, schema: str) -> tuple[list[str], list[str]]:
    """Make ``schema``'s secret-free views over ``database``'s tables (old ones dropped);
    the views made and what was left out."""
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {_name(schema)} CHARACTER SET utf8mb4 "
                   "COLLATE utf8mb4_bin")
    cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                   "AND TABLE_TYPE = 'VIEW'", (schema,))
    for (old,) in cursor.fetchall():
        cursor.execute(f"DROP VIEW IF EXISTS {_name(schema)}.{_name(old)}")
    cursor.execute("SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c "
                   "JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND "
                   "t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = %s AND "
                   "t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                   (database,))
    tables: dict[str, list[str]] = {}
    left_out: list[str] = []
    for table, column in cursor.fetchall():
        tables.setdefault(table, [])
        if is_secret(table, column):
            left_out.append(f"{table}.{column}")
        else:
            tables[table].append(column)
    made = []
    for table, columns in tables.items():
        if not columns:
            left_out = [c for c in left_out if not c.startswith(f"{table}.")] + [table]
            continue
        cursor.execute(
            f"CREATE SQL SECURITY DEFINER VIEW {_name(schema)}.{_name(table)} AS SELECT "
            f"{', '.join(_name(c) for c in columns)} FROM {_name(database)}.{_name(table)}")
        made.append(table)
    return made, left_out


def make_account(admin: DatabaseURL, database: str, *, login: str = DEFAULT_LOGIN,
                 host: str = "%", password: str | None = None, views_only: bool = False,
                 connect_timeout: int = 5) -> ReportAccount:
    """Make (or remake) the views and the login; ``admin`` may create users, databases
    and views and grant.  ``views_only`` leaves the login and its password alone."""
    import pymysql

    _module, kwargs = connect_kwargs(admin, connect_timeout)
    kwargs.update(database=None, autocommit=True)
    schema = reports_schema(database)
    try:
        conn = pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        raise AccountError(f"cannot connect to MariaDB as {admin.user!r}: {exc}") from None
    try:
        cursor = conn.cursor()
        views, left_out = make_views(cursor, database, schema)
        if not views:
            raise AccountError(f"the database {database!r} has no tables; run "
                               "`xvbd-admin db upgrade` first")
        account = f"{_text(conn, login)}@{_text(conn, host)}"
        if not views_only:
            password = password or secrets.token_urlsafe(24)
            cursor.execute(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY "
                           f"{_text(conn, password)}")
            cursor.execute(f"ALTER USER {account} IDENTIFIED BY {_text(conn, password)}")
            cursor.execute(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}")
            cursor.execute(f"GRANT SELECT ON {_name(schema)}.* TO {account}")
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else 0
        raise AccountError(
            f"MariaDB refused it ({code}: {exc.args[1] if len(exc.args) > 1 else exc}); the "
            f"user {admin.user!r} must be allowed to CREATE USER, CREATE DATABASE, CREATE "
            "VIEW and GRANT: run it with --admin-url mysql://root@HOST:PORT") from None
    finally:
        conn.close()
    url = replace(admin, user=login, password=password or "", name=schema)
    return ReportAccount(url, schema, tuple(views), tuple(left_out))


def drop_account(admin: DatabaseURL, database: str, login: str, host: str = "%") -> None:
    """Remove the login and the views' schema (the tests' cleanup)."""
    import pymysql

    _module, kwargs = connect_kwargs(admin, 5)
    kwargs.update(database=None, autocommit=True)
    conn = pymysql.connect(**kwargs)
    try:
        cursor = conn.cursor()
        cursor.execute(f"DROP USER IF EXISTS {_text(conn, login)}@{_text(conn, host)}")
        cursor.execute(f"DROP DATABASE IF EXISTS {_name(reports_schema(database))}")
    finally:
        conn.close()
