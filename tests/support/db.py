"""Test databases: every test gets its own, on SQLite and on MariaDB.

MariaDB is reached at ``XVBD_TEST_MYSQL`` (default ``mysql://root@127.0.0.1:3306``).  A
developer without MariaDB may set ``XVBD_TEST_MYSQL=off`` to skip those tests; under CI
(``CI=true``) that is refused, so a missing MariaDB turns the run red instead of green.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from xvbd.config import DatabaseURL, database_url
from xvbd.store import Database, Store, migrations

MYSQL_SERVER = os.environ.get("XVBD_TEST_MYSQL", "mysql://root@127.0.0.1:3306").rstrip("/")
_serial = itertools.count()


def mysql_disabled() -> bool:
    if MYSQL_SERVER.lower() != "off":
        return False
    if os.environ.get("CI") == "true":
        raise RuntimeError("XVBD_TEST_MYSQL=off is not allowed under CI: the suite must run "
                           "on MariaDB too")
    return True


def _server_connection() -> Any:
    import pymysql

    url = database_url(f"{MYSQL_SERVER}/mysql")
    return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           connect_timeout=5, autocommit=True)


def new_database_url(backend: str, workdir: str | None = None) -> DatabaseURL:
    """A fresh, empty database of ``backend`` ('sqlite' or 'mysql')."""
    if backend == "sqlite":
        directory = Path(workdir or tempfile.mkdtemp(prefix="xvbd-test-"))
        directory.mkdir(parents=True, exist_ok=True)
        return database_url(f"sqlite:{directory / 'xvbd.sqlite3'}")
    if mysql_disabled():
        raise SkipTest("XVBD_TEST_MYSQL=off: MariaDB tests skipped")
    name = f"xvbd_t_{os.getpid()}_{next(_serial)}_{uuid.uuid4().hex[:6]}"
    conn = _server_connection()
    try:
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                              "COLLATE utf8mb4_bin")
    finally:
        conn.close()
    return database_url(f"{MYSQL_SERVER}/{name}")


def drop_database(url: DatabaseURL) -> None:
    if url.backend == "sqlite":
        assert url.path is not None
        for suffix in ("", "-wal", "-shm"):
            Path(str(url.path) + suffix).unlink(missing_ok=True)
        return
    conn = _server_connection()
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{url.name}`")
    finally:
        conn.close()


class DatabaseCase:
    """Mixin for trial test cases: ``self.url``, ``self.db`` and ``self.store`` on a new,
    migrated database of ``self.backend``; dropped after the test."""

    backend = "sqlite"
    migrate = True

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="xvbd-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)  # type: ignore[attr-defined]
        self.url = new_database_url(self.backend, str(self.tmp / "db"))
        self.addCleanup(drop_database, self.url)  # type: ignore[attr-defined]
        if self.migrate:
            migrations.upgrade(self.url)
        self.db = Database(self.url, pool_max=4)
        self.db.start()
        self.addCleanup(self.db.close)  # type: ignore[attr-defined]
        self.store = Store(self.db)


def report_account(case: Any) -> DatabaseURL:
    """MariaDB: the report account of ``case``'s database (``xvbd-admin reports-account``'s
    views and login), dropped after the test; its URL, for ``[DB] REPORTS_URL``."""
    from xvbd.store.report_account import drop_account, make_account

    login = f"r{uuid.uuid4().hex[:12]}"
    account = make_account(case.url, case.url.name, login=login)
    case.addCleanup(drop_account, case.url, case.url.name, login)
    return account.url


def on_both_backends(mixin: type) -> tuple[type, type]:
    """Two trial TestCases running ``mixin``'s tests on SQLite and on MariaDB."""
    from twisted.trial.unittest import TestCase

    name = mixin.__name__
    bases = (mixin, TestCase) if issubclass(mixin, DatabaseCase) else (DatabaseCase, mixin,
                                                                      TestCase)
    sqlite = type(f"{name}OnSQLite", bases, {"backend": "sqlite"})
    mysql = type(f"{name}OnMariaDB", bases, {"backend": "mysql"})
    sqlite.__module__ = mysql.__module__ = mixin.__module__
    return sqlite, mysql
