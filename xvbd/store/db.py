"""The database: an adbapi pool over SQLite or MariaDB/MySQL, and the one place that knows
how the two differ.

Repositories write SQL with ``?`` placeholders and call :meth:`Database.run_interaction`
with a plain function ``fn(txn, ...)``; it runs in a transaction on the pool's thread, never
on the reactor.  ``txn`` is a :class:`Txn`: ``execute`` translates placeholders for the
backend and rows come back as dicts, the same on both backends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from xvbd.config import DatabaseURL
from xvbd.store.audit import ACTOR, Actor
from xvbd.store.pool import QuietPool
from xvbd.timings import ThreadDurations

T = TypeVar("T")
Row = dict[str, Any]


class DatabaseUnavailable(Exception):
    """The database server cannot be reached or refused us; the message says what to check."""


class Dialect:
    """What differs between SQLite and MySQL, kept in one small object."""

    name = "sqlite"
    #: After a SELECT that must see (and lock) the latest row: SQLite has one writer anyway.
    for_update = ""
    #: Tokens the schema files use for the few DDL differences.
    ddl_tokens: dict[str, str] = {
        "{id}": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "{table_options}": "",
    }

    def sql(self, statement: str) -> str:
        return statement

    def insert_ignore(self, table: str, columns: Sequence[str], rows: int = 1) -> str:
        """An insert of ``rows`` rows that skips a row whose key is already stored."""
        return _insert_ignore("INSERT OR IGNORE", table, tuple(columns), rows)

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        return (f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")

    def is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def consecutive_ids(self, txn: Txn) -> bool:
        """Do the rows of one multi-row INSERT get consecutive autoincrement ids, in the
        order of their VALUES?  SQLite: always (one writer; each new id is one more than
        the largest ever given)."""
        return True

    def first_id(self, txn: Txn, rows: int) -> int:
        """The id of the first of ``rows`` rows the last INSERT made (SQLite reports the
        last one's)."""
        return txn.lastrowid - rows + 1


class MySQLDialect(Dialect):
    name = "mysql"
    for_update = " FOR UPDATE"
    ddl_tokens = {
        "{id}": "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
        "{table_options}": "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    }

    def sql(self, statement: str) -> str:
        return _to_format_style(statement)

    def insert_ignore(self, table: str, columns: Sequence[str], rows: int = 1) -> str:
        return _insert_ignore("INSERT IGNORE", table, tuple(columns), rows)

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = VALUES({c})" for c in columns if c not in key)
        return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {updates}"

    def is_duplicate(self, exc: BaseException) -> bool:
        import pymysql

        return isinstance(exc, pymysql.err.IntegrityError) and exc.args[:1] == (1062,)

    #: ``innodb_autoinc_lock_mode`` of the server, read once (it is only set at its start).
    _lock_mode: int | None = None

    def consecutive_ids(self, txn: Txn) -> bool:
        """InnoDB gives a multi-row INSERT consecutive ids in the "traditional" (0) and
        "consecutive" (1, MariaDB's default) lock modes; in "interleaved" (2) ids of
        concurrent inserts may mix."""
        if self._lock_mode is None:
            self._lock_mode = int(txn.scalar("SELECT @@innodb_autoinc_lock_mode"))
        return self._lock_mode in (0, 1)

    def first_id(self, txn: Txn, rows: int) -> int:
        return txn.lastrowid  # LAST_INSERT_ID(): the first row's


@lru_cache(maxsize=256)
def _insert_ignore(verb: str, table: str, columns: tuple[str, ...], rows: int) -> str:
    row = "(" + ", ".join("?" for _ in columns) + ")"
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"


@lru_cache(maxsize=1024)
def _to_format_style(statement: str) -> str:
    """``?`` placeholders to PyMySQL's ``%s`` (a literal ``%`` doubled).  Our SQL never has a
    ``?`` or ``%`` inside a string literal: values always travel as parameters."""
    return statement.replace("%", "%%").replace("?", "%s")


class Txn:
    """One transaction: translated ``execute`` and rows as dicts."""

    __slots__ = ("_cursor", "actor", "dialect")

    def __init__(self, cursor: Any, dialect: Dialect, actor: Actor | None = None) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self.actor = actor  # the person on whose behalf this transaction changes things

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Txn:
        self._cursor.execute(self.dialect.sql(statement), tuple(params))
        return self

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(self.dialect.sql(statement), [tuple(r) for r in rows])

    def _names(self) -> list[str]:
        return [d[0] for d in self._cursor.description or ()]

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return None if row is None else dict(zip(self._names(), row, strict=False))

    def fetchall(self) -> list[Row]:
        names = self._names()
        return [dict(zip(names, row, strict=False)) for row in self._cursor.fetchall()]

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(self.dialect.sql(statement), tuple(params))
        row = self._cursor.fetchone()
        return None if row is None else row[0]

    def one(self, statement: str, params: Sequence[Any] = ()) -> Row | None:
        return self.execute(statement, params).fetchone()

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.execute(statement, params).fetchall()

    @property
    def lastrowid(self) -> int:
        return int(self._cursor.lastrowid)

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


def _sqlite_open(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-65536")


def connect_kwargs(url: DatabaseURL, connect_timeout: int) -> tuple[str, dict[str, Any]]:
    """The DB-API module name and connect() arguments for ``url``."""
    if url.backend == "sqlite":
        assert url.path is not None
        return "sqlite3", {"database": str(url.path), "check_same_thread": False,
                           "timeout": 10.0}
    return "pymysql", {
        "host": url.host, "port": url.port, "user": url.user, "password": url.password,
        "database": url.name, "charset": url.charset, "autocommit": False,
        "connect_timeout": connect_timeout, "read_timeout": 60, "write_timeout": 60,
        "init_command": "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ZERO_DATE,"
                        "NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO', time_zone='+00:00'",
    }


def describe_connect_error(url: DatabaseURL, exc: BaseException) -> str:
    """A sentence an operator can act on when the database cannot be opened."""
    if url.backend == "sqlite":
        return (f"cannot open the SQLite database {url.path}: {exc}; check that its directory "
                "exists and is writable, or change [DB] URL")
    return (f"cannot connect to MariaDB/MySQL at {url.host}:{url.port} as {url.user!r} "
            f"(database {url.name!r}): {exc}; check that the server is running and that "
            "[DB] URL has the right host, port, user, password and database name")


class Database:
    """The shared pool.  ``run_interaction`` is the only way repositories touch it."""

    def __init__(self, url: DatabaseURL, *, pool_max: int = 8, connect_timeout: int = 5,
                 reactor: Any = None) -> None:
        self.url = url
        self.dialect: Dialect = MySQLDialect() if url.backend == "mysql" else Dialect()
        module, kwargs = connect_kwargs(url, connect_timeout)
        if url.backend == "sqlite":
            # One writer at a time is what SQLite allows; one thread makes that explicit and
            # avoids SQLITE_BUSY upgrades between threads.
            pool_min = pool_max = 1
            kwargs["cp_openfun"] = _sqlite_open
        else:
            pool_min = 1
            kwargs["cp_reconnect"] = True
            kwargs["cp_good_sql"] = "SELECT 1"
        if reactor is not None:
            kwargs["cp_reactor"] = reactor
        self._pool = QuietPool(module, cp_min=pool_min, cp_max=pool_max,
                               cp_noisy=False, **kwargs)
        from xvbd.store.groupcommit import GroupWrites  # it builds on this module

        #: The group commit every repository's small writes of the call path share
        #: (voicemail rows, CDR records): calls ending together, one transaction.
        self.writes = GroupWrites(self)

    @property
    def backend(self) -> str:
        return self.dialect.name

    @property
    def pool_waits(self) -> ThreadDurations:
        """Seconds each transaction waited for a pool thread (for ``/metrics``)."""
        return self._pool.waits

    @property
    def pool_queued(self) -> int:
        """Transactions waiting for a pool thread now."""
        return self._pool.queued

    def start(self) -> None:
        self._pool.start()

    def close(self) -> None:
        if self._pool.running:
            self._pool.close()

    async def run_interaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(txn, *args, **kwargs)`` in one transaction on a pool thread (on behalf
        of the :data:`~xvbd.store.audit.ACTOR` of the caller, if any)."""
        dialect = self.dialect
        actor = ACTOR.get()

        def interaction(transaction: Any) -> T:
            return fn(Txn(transaction, dialect, actor), *args, **kwargs)

        try:
            return await self._pool.runInteraction(interaction)
        except Exception as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(describe_connect_error(self.url, exc)) from exc
            raise


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import pymysql
    except ImportError:  # pragma: no cover - PyMySQL is a dependency
        return False
    if isinstance(exc, pymysql.err.OperationalError):
        return bool(exc.args) and exc.args[0] in _MYSQL_CONNECTION_ERRORS
    return isinstance(exc, pymysql.err.InterfaceError)


#: MySQL client/server error codes that mean "no usable connection" (not a bad query):
#: access denied, unknown database, can't connect, server gone away, lost connection.
_MYSQL_CONNECTION_ERRORS = frozenset({1045, 1049, 2002, 2003, 2006, 2013})
