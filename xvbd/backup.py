"""``xvbd-admin backup`` and ``restore``: the database of ``[DB] URL`` to a file and back.

SQLite: SQLite's online backup API (``sqlite3.Connection.backup``) copies the pages of a
consistent snapshot while xvbd keeps running; the copy is a plain SQLite file, checked
(``PRAGMA integrity_check``) before the command says it is done.

MariaDB/MySQL: ``mariadb-dump`` (or ``mysqldump``) with ``--single-transaction``: one
consistent snapshot of the InnoDB tables without locking xvbd out; the dump is SQL text
with no ``CREATE DATABASE``, so it can be restored into a database of another name.

Restore refuses a database that already holds tables unless asked to (``force``): then
every table in it is dropped first, so what is left is exactly the backup.  Stop xvbd
before a restore.  A backup file of one backend is not restored into the other.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xvbd.config import DatabaseURL
from xvbd.store.migrations import HEAD, SchemaError, current_version, open_connection
from xvbd.store.migrations import with_transaction as _with_transaction

SQLITE_MAGIC = b"SQLite format 3\x00"
DUMP_HEAD = b"-- xvbd backup of "
DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")


class BackupError(Exception):
    """The backup or restore did not happen; the message says why and what to do."""


@dataclass(frozen=True)
class Outcome:
    path: Path
    tables: int
    version: int

    def describe(self) -> str:
        state = ("up to date" if self.version == HEAD
                 else f"run `xvbd-admin db upgrade` (this xvbd is at {HEAD})"
                 if self.version < HEAD else f"newer than this xvbd ({HEAD})")
        return f"{self.tables} tables, schema version {self.version} ({state})"


# ------------------------------------------------------------------ backup


def backup(url: DatabaseURL, dest: Path, connect_timeout: int = 5, *,
           force: bool = False) -> Outcome:
    """Write the database of ``url`` to ``dest`` (a new file unless ``force``)."""
    if dest.is_dir():
        raise BackupError(f"{dest} is a directory: give the backup file's name")
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists already: give another name, or --force to replace "
                          "it")
    if not dest.parent.is_dir():
        raise BackupError(f"the directory {dest.parent} does not exist")
    # Written beside the destination and renamed into place once complete: a failed backup
    # never leaves a file that looks like one.
    fd, partial_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    partial = Path(partial_name)
    try:
        if url.backend == "sqlite":
            outcome = _sqlite_backup(url, partial)
        else:
            outcome = _mysql_backup(url, partial, connect_timeout)
        os.chmod(partial, 0o600)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return Outcome(dest, outcome.tables, outcome.version)


def _sqlite_backup(url: DatabaseURL, dest: Path) -> Outcome:
    source = _open_existing(url)
    try:
        target = sqlite3.connect(str(dest))
        try:
            source.backup(target)  # pages copied in steps; a consistent snapshot in the end
            return _sqlite_verify(target, dest)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite backup of {url.path} failed: {exc}") from None
    finally:
        source.close()


def _sqlite_verify(conn: sqlite3.Connection, path: Path) -> Outcome:
    check = conn.execute("PRAGMA integrity_check").fetchone()
    if not check or check[0] != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {check}")
    tables = _sqlite_tables(conn)
    version = 0
    if "schema_version" in tables:
        version = int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version"
                                   ).fetchone()[0])
    return Outcome(path, len(tables), version)


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]


def _open_existing(url: DatabaseURL) -> sqlite3.Connection:
    assert url.path is not None
    if not url.path.exists():
        raise BackupError(f"the SQLite database {url.path} does not exist ([DB] URL)")
    try:
        return open_connection(url)  # type: ignore[no-any-return]
    except SchemaError as exc:
        raise BackupError(str(exc)) from None


def _mysql_backup(url: DatabaseURL, dest: Path, connect_timeout: int) -> Outcome:
    tables, version = _mysql_state(url, connect_timeout)
    tool = _tool(DUMP_TOOLS)
    with _client_options(url, connect_timeout) as options, dest.open("wb") as out:
        out.write(DUMP_HEAD + f"{url}: schema version {version}, {len(tables)} tables\n"
                  .encode())
        out.flush()
        done = subprocess.run(
            [tool, f"--defaults-extra-file={options}", "--single-transaction", "--quick",
             "--routines", "--triggers", "--hex-blob", "--no-tablespaces",
             "--default-character-set=utf8mb4", "--skip-comments", url.name],
            stdout=out, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}): "
                          f"{done.stderr.decode(errors='replace').strip()}")
    return Outcome(dest, len(tables), version)


def _mysql_state(url: DatabaseURL, connect_timeout: int) -> tuple[list[str], int]:
    try:
        conn = open_connection(url, connect_timeout)
    except SchemaError as exc:
        raise BackupError(str(exc)) from None
    try:
        def read(txn: Any) -> tuple[list[str], int]:
            rows = txn.all("SELECT table_name AS name FROM information_schema.tables "
                           "WHERE table_schema = DATABASE() ORDER BY table_name")
            return [str(r["name"]) for r in rows], current_version(txn)
        result: tuple[list[str], int] = _with_transaction(url, conn, read)
        return result
    finally:
        conn.close()


def _tool(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(f"neither {' nor '.join(names)} is installed: `apt install "
                      "mariadb-client`")


@contextmanager
def _client_options(url: DatabaseURL, connect_timeout: int) -> Iterator[str]:
    """An option file (mode 0600, removed after) holding the password: it never appears in
    the process list."""
    fd, name = tempfile.mkstemp(prefix="xvbd-client-", suffix=".cnf")
    try:
        with os.fdopen(fd, "w") as f:
            password = url.password.replace("\\", "\\\\").replace('"', '\\"')
            f.write(f'[client]\nhost="{url.host}"\nport={url.port}\nuser="{url.user}"\n'
                    f'password="{password}"\nprotocol=tcp\n')
        yield name
    finally:
        os.unlink(name)


# ------------------------------------------------------------------ restore


def restore(url: DatabaseURL, src: Path, connect_timeout: int = 5, *,
            force: bool = False) -> Outcome:
    """Put the backup ``src`` into the database of ``url``; refuse a database that holds
    tables unless ``force``."""
    try:
        with src.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {src}: {exc.strerror}") from None
    kind = "sqlite" if head == SQLITE_MAGIC else "mysql" if head == DUMP_HEAD[:len(head)] \
        else ""
    if not kind:
        raise BackupError(f"{src} is not a backup made by `xvbd-admin backup`")
    if kind != url.backend:
        names = {"sqlite": "SQLite", "mysql": "MariaDB/MySQL"}
        raise BackupError(f"{src} is a backup of an {names[kind]} database and [DB] URL is "
                          f"{names[url.backend]}: restore it into a database of its kind")
    if url.backend == "sqlite":
        return _sqlite_restore(url, src, force)
    return _mysql_restore(url, src, connect_timeout, force)


def _refuse_non_empty(url: DatabaseURL, tables: list[str]) -> None:
    shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
    raise BackupError(f"{url} is not empty ({len(tables)} tables: {shown}): restore into an "
                      "empty database, or add --force to replace everything in it")


def _sqlite_restore(url: DatabaseURL, src: Path, force: bool) -> Outcome:
    assert url.path is not None
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            _sqlite_verify(source, src)
            url.path.parent.mkdir(parents=True, exist_ok=True)
            target = sqlite3.connect(str(url.path))
            try:
                tables = _sqlite_tables(target)
                if tables and not force:
                    _refuse_non_empty(url, tables)
                # The backup API replaces every page of the target, WAL included.
                source.backup(target)
                done = _sqlite_verify(target, url.path)
                return Outcome(src, done.tables, done.version)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise BackupError(f"restoring {src} into {url.path} failed: {exc}") from None


def _mysql_restore(url: DatabaseURL, src: Path, connect_timeout: int, force: bool) -> Outcome:
    try:
        conn = open_connection(url, connect_timeout, create=True)
    except SchemaError as exc:
        raise BackupError(str(exc)) from None
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT table_name FROM information_schema.tables "
                       "WHERE table_schema = DATABASE() ORDER BY table_name")
        tables = [str(r[0]) for r in cursor.fetchall()]
        if tables and not force:
            _refuse_non_empty(url, tables)
        if tables:
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                cursor.execute("DROP TABLE `{}`".format(table.replace("`", "``")))
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        conn.commit()
    finally:
        conn.close()
    tool = _tool(CLIENT_TOOLS)
    with _client_options(url, connect_timeout) as options, src.open("rb") as dump:
        done = subprocess.run([tool, f"--defaults-extra-file={options}", "--binary-mode",
                               "--default-character-set=utf8mb4", url.name],
                              stdin=dump, capture_output=True,
                              check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed ({done.returncode}) restoring {src}: "
                          f"{done.stderr.decode(errors='replace').strip()}")
    tables, version = _mysql_state(url, connect_timeout)
    return Outcome(src, len(tables), version)
