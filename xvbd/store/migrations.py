"""Versioned schema files and the ``schema_version`` table.

``xvbd-admin db upgrade`` applies the pending ``schema/NNN_name.sql`` files in order; the
server checks at start that the database is exactly at :data:`HEAD` and refuses to run on an
older or newer one.  Both run outside the reactor, on a plain DB-API connection.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from xvbd.config import DatabaseURL
from xvbd.store.db import (
    Dialect,
    MySQLDialect,
    Txn,
    _sqlite_open,
    connect_kwargs,
    describe_connect_error,
)


class SchemaError(Exception):
    """The database cannot be used by this xvbd as it is; the message says what to run."""


@dataclass(frozen=True)
class SchemaFile:
    version: int
    name: str
    text: str

    def statements(self, dialect: Dialect) -> list[str]:
        body = self.text
        for token, value in dialect.ddl_tokens.items():
            body = body.replace(token, value)
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M) if s.strip()]


def schema_files() -> list[SchemaFile]:
    out = []
    for entry in resources.files("xvbd.store.schema").iterdir():
        match = re.fullmatch(r"(\d{3})_([a-z0-9_]+)\.sql", entry.name)
        if match:
            out.append(SchemaFile(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    out.sort(key=lambda f: f.version)
    versions = [f.version for f in out]
    if versions != list(range(1, len(out) + 1)):
        raise RuntimeError(f"schema files are not numbered 001, 002, ...: {versions}")
    return out


HEAD: int = len(schema_files())


def dialect_for(url: DatabaseURL) -> Dialect:
    return MySQLDialect() if url.backend == "mysql" else Dialect()


def current_version(txn: Txn) -> int:
    """The schema version recorded in the database; 0 for an empty database."""
    if txn.dialect.name == "mysql":
        exists = txn.scalar("SELECT COUNT(*) FROM information_schema.tables "
                            "WHERE table_schema = DATABASE() AND table_name = 'schema_version'")
    else:
        exists = txn.scalar("SELECT COUNT(*) FROM sqlite_master "
                            "WHERE type = 'table' AND name = 'schema_version'")
    if not exists:
        return 0
    return int(txn.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


def _create_version_table(txn: Txn) -> None:
    options = txn.dialect.ddl_tokens["{table_options}"]
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY,"
                f" name VARCHAR(100) NOT NULL, applied_at BIGINT NOT NULL) {options}")


def hash_clear_pins(txn: Txn) -> None:
    """``login_secrets``: every PIN kept in clear becomes its hash, then the clear column
    goes.  A few milliseconds a PIN (``passwords.PIN_N``), in the upgrade's transaction."""
    from xvbd.passwords import hash_pin

    for row in txn.all("SELECT id, pin FROM users WHERE pin <> ''"):
        txn.execute("UPDATE users SET pin_hash = ?, pin = '' WHERE id = ?",
                    (hash_pin(str(row["pin"])), row["id"]))
    txn.execute("ALTER TABLE users DROP COLUMN pin")


#: Python run right after the schema file of that name, in its transaction: what SQL alone
#: cannot do (a hash).  Keyed by name, so a file renumbered at a merge keeps its step.
PYTHON_STEPS: dict[str, Callable[[Txn], None]] = {"login_secrets": hash_clear_pins}


def apply_file(txn: Txn, schema: SchemaFile) -> None:
    for statement in schema.statements(txn.dialect):
        txn.execute(statement)
    step = PYTHON_STEPS.get(schema.name)
    if step is not None:
        step(txn)
    txn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (schema.version, schema.name, int(time.time())))


# ------------------------------------------------------------------ plain connections


def open_connection(url: DatabaseURL, connect_timeout: int = 5, *, create: bool = False) -> Any:
    """A DB-API connection for the CLI and the start-up check.

    With ``create`` the SQLite file's directory, or the MySQL database, is created when
    missing; without it a missing database is a :class:`SchemaError` naming the command.
    """
    _module, kwargs = connect_kwargs(url, connect_timeout)
    if url.backend == "sqlite":
        assert url.path is not None
        if not url.path.exists():
            if not create:
                raise SchemaError(f"the SQLite database {url.path} does not exist yet: "
                                  f"run `xvbd-admin db upgrade -c CONFIG` to create it")
            url.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(**kwargs)
            _sqlite_open(conn)
        except sqlite3.Error as exc:
            raise SchemaError(describe_connect_error(url, exc)) from None
        return conn
    import pymysql

    try:
        return pymysql.connect(**kwargs)
    except pymysql.err.OperationalError as exc:
        if create and exc.args and exc.args[0] == 1049:  # unknown database
            _create_mysql_database(url, connect_timeout)
            return pymysql.connect(**kwargs)
        raise SchemaError(describe_connect_error(url, exc)) from None
    except pymysql.err.MySQLError as exc:
        raise SchemaError(describe_connect_error(url, exc)) from None


def _create_mysql_database(url: DatabaseURL, connect_timeout: int) -> None:
    import pymysql

    _, kwargs = connect_kwargs(url, connect_timeout)
    kwargs.pop("database")
    conn = pymysql.connect(**kwargs)
    try:
        with conn.cursor() as cursor:
            name = url.name.replace("`", "``")
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                           "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    finally:
        conn.close()


def with_transaction(url: DatabaseURL, conn: Any, fn: Any) -> Any:
    cursor = conn.cursor()
    try:
        result = fn(Txn(cursor, dialect_for(url)))
        conn.commit()
        return result
    except BaseException:
        conn.rollback()
        raise
    finally:
        cursor.close()


def upgrade(url: DatabaseURL, connect_timeout: int = 5) -> tuple[int, list[SchemaFile]]:
    """Apply every pending schema file; return (version before, files applied)."""
    conn = open_connection(url, connect_timeout, create=True)
    try:
        before = with_transaction(url, conn, current_version)
        if before > HEAD:
            raise SchemaError(_newer_message(url, before))
        applied = []
        for schema in schema_files():
            if schema.version > before:
                with_transaction(url, conn, _create_version_table)
                with_transaction(url, conn, lambda txn, s=schema: apply_file(txn, s))
                applied.append(schema)
        return before, applied
    finally:
        conn.close()


def _newer_message(url: DatabaseURL, version: int) -> str:
    return (f"the database {url} is at schema version {version}, newer than this xvbd knows "
            f"({HEAD}): run the xvbd release that upgraded it, or a newer one")


def check_schema(url: DatabaseURL, connect_timeout: int = 5) -> int:
    """Start-up check: the database is reachable and exactly at :data:`HEAD`."""
    conn = open_connection(url, connect_timeout)
    try:
        version = with_transaction(url, conn, current_version)
    finally:
        conn.close()
    if version < HEAD:
        raise SchemaError(
            f"the database {url} is at schema version {version}, this xvbd needs {HEAD}: "
            f"run `xvbd-admin db upgrade -c CONFIG` (back it up first), then start again")
    if version > HEAD:
        raise SchemaError(_newer_message(url, version))
    return version
