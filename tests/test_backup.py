"""``xvbd-admin backup`` / ``restore``, for real: the command line as a subprocess, on a
real SQLite file and a real MariaDB database of the test's own, every row compared after a
round trip."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.support.db import drop_database, new_database_url
from tests.support.process import admin
from xvbd.config import DatabaseURL
from xvbd.store import migrations
from xvbd.store.migrations import open_connection


def _new(backend: str, where: Path, request: pytest.FixtureRequest) -> DatabaseURL:
    from twisted.trial.unittest import SkipTest

    try:
        url = new_database_url(backend, str(where))
    except SkipTest as exc:
        pytest.skip(str(exc))
    request.addfinalizer(lambda: drop_database(url))
    return url


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def url_text(url: DatabaseURL) -> str:
    if url.backend == "sqlite":
        return f"sqlite:{url.path}"
    auth = f"{url.user}:{url.password}" if url.password else url.user
    return f"mysql://{auth}@{url.host}:{url.port}/{url.name}"


def config(directory: Path, url: DatabaseURL) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "xvb.conf"
    conf.write_text(f"[DB]\nURL = {url_text(url)}\n")
    return conf


def tables(url: DatabaseURL) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, read straight from the database."""
    conn = open_connection(url)
    try:
        cursor = conn.cursor()
        if url.backend == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                           "AND name NOT LIKE 'sqlite_%'")
        else:
            cursor.execute("SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema = DATABASE()")
        names = sorted(str(r[0]) for r in cursor.fetchall())
        out = {}
        for name in names:
            quoted = f'"{name}"' if url.backend == "sqlite" else f"`{name}`"
            cursor.execute(f"SELECT * FROM {quoted}")
            out[name] = sorted((tuple(row) for row in cursor.fetchall()), key=repr)
        return out
    finally:
        conn.close()


def execute(url: DatabaseURL, statement: str, commit: bool = True) -> Any:
    conn = open_connection(url)
    cursor = conn.cursor()
    cursor.execute(statement)
    if commit:
        conn.commit()
        conn.close()
        return None
    return conn


def test_round_trip_keeps_every_row(backend: str, tmp_path: Path,
                                    request: pytest.FixtureRequest) -> None:
    source = _new(backend, tmp_path / "a", request)
    migrations.upgrade(source)
    conf = config(tmp_path / "a", source)
    seeded = admin("demo-tenant", "-c", str(conf), cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    execute(source, "INSERT INTO nodes (id, asterisk_ip) VALUES ('COMMITTED', '192.0.2.7')")
    # A writer in the middle of a transaction: the backup neither waits for it nor sees it.
    writer = execute(source, "INSERT INTO nodes (id) VALUES ('UNCOMMITTED')", commit=False)
    try:
        dest = tmp_path / "backup.dump"
        done = admin("backup", "-c", str(conf), str(dest), cwd=tmp_path)
    finally:
        writer.rollback()
        writer.close()
    assert done.returncode == 0, done.stderr
    assert f"backed up to {dest}" in done.stdout
    assert f"schema version {migrations.HEAD} (up to date)" in done.stdout
    assert dest.stat().st_mode & 0o077 == 0, "a backup holds password hashes: owner only"
    before = tables(source)
    assert ("COMMITTED", ) == next(r[:1] for r in before["nodes"] if r[0] == "COMMITTED")
    assert not any(r[0] == "UNCOMMITTED" for r in before["nodes"])
    assert before["users"], "the demo tenant is in the source"

    target = _new(backend, tmp_path / "b", request)
    if backend == "sqlite":
        target.path.unlink(missing_ok=True)  # type: ignore[union-attr]
    conf_b = config(tmp_path / "b", target)
    restored = admin("restore", "-c", str(conf_b), str(dest), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert f"restored from {dest}" in restored.stdout
    after = tables(target)
    assert after == before
    assert not any(r[0] == "UNCOMMITTED" for r in after["nodes"])
    # The restored database is one xvbd starts on: its schema is at HEAD.
    assert migrations.check_schema(target) == migrations.HEAD

    # Again into the same, now full, database: refused, and nothing changed.
    execute(target, "INSERT INTO nodes (id) VALUES ('AFTER-RESTORE')")
    refused = admin("restore", "-c", str(conf_b), str(dest), cwd=tmp_path)
    assert refused.returncode == 3
    assert "is not empty" in refused.stderr and "--force" in refused.stderr
    assert any(r[0] == "AFTER-RESTORE" for r in tables(target)["nodes"])
    # With --force it is exactly the backup again.
    forced = admin("restore", "-c", str(conf_b), str(dest), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert tables(target) == before


def test_backup_never_overwrites_without_force(tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    source = _new("sqlite", tmp_path / "a", request)
    migrations.upgrade(source)
    conf = config(tmp_path / "a", source)
    dest = tmp_path / "backup.sqlite3"
    dest.write_text("an older backup")
    refused = admin("backup", "-c", str(conf), str(dest), cwd=tmp_path)
    assert refused.returncode == 3 and "exists already" in refused.stderr
    assert dest.read_text() == "an older backup"
    forced = admin("backup", "-c", str(conf), str(dest), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(dest) as copy:
        assert copy.execute("SELECT MAX(version) FROM schema_version").fetchone() == (
            migrations.HEAD,)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")], \
        "no partial file is left beside the backup"


def test_restore_refuses_what_is_not_a_backup_of_its_kind(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    lite = _new("sqlite", tmp_path / "a", request)
    migrations.upgrade(lite)
    lite_conf = config(tmp_path / "a", lite)
    backup = tmp_path / "lite.backup"
    assert admin("backup", "-c", str(lite_conf), str(backup), cwd=tmp_path).returncode == 0
    junk = tmp_path / "notes.txt"
    junk.write_text("SELECT 1;\n")
    empty = tmp_path / "empty" / "xvbd.sqlite3"
    empty_conf = config(tmp_path / "empty", DatabaseURL("sqlite", path=empty))
    not_backup = admin("restore", "-c", str(empty_conf), str(junk), cwd=tmp_path)
    assert not_backup.returncode == 3
    assert "is not a backup made by `xvbd-admin backup`" in not_backup.stderr
    assert not empty.exists()

    maria = _new("mysql", tmp_path / "m", request)
    maria_conf = config(tmp_path / "m", maria)
    other_kind = admin("restore", "-c", str(maria_conf), str(backup), cwd=tmp_path)
    assert other_kind.returncode == 3
    assert "is a backup of an SQLite database and [DB] URL is MariaDB/MySQL" in \
        other_kind.stderr
    assert tables(maria) == {}
