"""``xvbd-admin``: the operator's command line.

  xvbd-admin db upgrade -c FILE        apply pending schema files
  xvbd-admin db status -c FILE         show the schema version
  xvbd-admin admin-password -c FILE    set (or import from htpasswd) the admin web password
  xvbd-admin check-config -c FILE      validate and print the effective settings
  xvbd-admin demo-tenant -c FILE       create the demo tenant to call
  xvbd-admin reports-account -c FILE   MariaDB: the read-only report login and its views
  xvbd-admin check -c FILE             is this machine ready: one OK/FAIL line per item
  xvbd-admin backup -c FILE DEST       the database to a file (SQLite online backup, dump)
  xvbd-admin restore -c FILE SRC       a backup into the database (empty unless --force)
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from typing import Any

from xvbd.config import ConfigError, Settings, load_settings, render_settings
from xvbd.store.migrations import (
    HEAD,
    SchemaError,
    check_schema,
    current_version,
    open_connection,
    upgrade,
    with_transaction,
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DATABASE = 0, 1, 2, 3


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _settings(path: str) -> Settings:
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        raise CommandError("the configuration has errors:\n  " + "\n  ".join(exc.problems),
                           EXIT_CONFIG) from None
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return settings


def _settings_at_head(path: str) -> Settings:
    """The settings, once the database they name is known to be at this xvbd's schema."""
    settings = _settings(path)
    try:
        check_schema(settings.db.url, settings.db.connect_timeout)
    except SchemaError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from None
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    print(f"# {settings.source}: OK (effective settings, secrets hidden)")
    print(render_settings(settings), end="")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    try:
        before, applied = upgrade(settings.db.url, settings.db.connect_timeout)
    except SchemaError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from None
    if not applied:
        print(f"{settings.db.url}: schema is up to date (version {before})")
    for schema in applied:
        print(f"{settings.db.url}: applied {schema.version:03d}_{schema.name}")
    if applied and settings.db.url.backend == "mysql" and settings.db.reports_url:
        print("the report views follow the schema once made again: run "
              "`xvbd-admin reports-account --views-only`")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    try:
        conn = open_connection(settings.db.url, settings.db.connect_timeout)
        try:
            version = with_transaction(settings.db.url, conn, current_version)
        finally:
            conn.close()
    except SchemaError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from None
    state = ("up to date" if version == HEAD
             else f"needs `xvbd-admin db upgrade` (code is at {HEAD})")
    print(f"{settings.db.url}: schema version {version}, {state}")
    return EXIT_OK if version == HEAD else EXIT_DATABASE


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New admin password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the two passwords differ; nothing changed")
    if len(password) < 8:
        raise CommandError("the password must have at least 8 characters; nothing changed")
    return password


def _htpasswd_hash(path: str, login: str) -> str:
    """The bcrypt hash of ``login`` in an htpasswd file (``login:$2y$…``)."""
    from xvbd.passwords import is_bcrypt

    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    for line in lines:
        name, sep, stored = line.strip().partition(":")
        if sep and name == login:
            if not is_bcrypt(stored):
                raise CommandError(f"{path}: the entry of {login!r} is not a bcrypt hash "
                                   "($2y$…); make it with htpasswd -B, or set a password")
            return stored
    raise CommandError(f"{path} has no line for {login!r} (use --login)")


def cmd_admin_password(args: argparse.Namespace) -> int:
    from xvbd.passwords import hash_password

    settings = _settings_at_head(args.config)
    if args.import_htpasswd:
        password_hash = _htpasswd_hash(args.import_htpasswd, args.login)
    else:
        password_hash = hash_password(_read_password(args.password_stdin))
    _run_async(lambda store: store.accounts.set_admin_password_hash(args.login, password_hash),
               settings)
    print(f"the admin web password of {args.login!r} is set")
    return EXIT_OK


def cmd_demo_tenant(args: argparse.Namespace) -> int:
    from xvbd.demo import ACCESS_CODE, DID, PIN, VOICE_NUMBER, seed_demo

    settings = _settings_at_head(args.config)
    demo = _run_async(seed_demo, settings)
    state = "created" if demo.created else "already there"
    print(f"demo tenant {state}: user {demo.user.id}, public number {VOICE_NUMBER}, "
          f"AccessCode {ACCESS_CODE}, PIN {PIN}, DID {DID}")
    return EXIT_OK


def cmd_reports_account(args: argparse.Namespace) -> int:
    from xvbd.config import BadValue, database_url
    from xvbd.store.report_account import AccountError, make_account

    settings = _settings_at_head(args.config)
    main = settings.db.url
    if main.backend != "mysql":
        print(f"{main}: SQLite needs no report account (SQLite itself refuses every read "
              "of a secret); leave [DB] REPORTS_URL empty")
        return EXIT_OK
    try:
        admin_url = database_url(args.admin_url) if args.admin_url else main
    except BadValue as exc:
        raise CommandError(f"--admin-url: {exc}", EXIT_CONFIG) from None
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < 12:
            raise CommandError("the password must have at least 12 characters; nothing "
                               "changed")
    try:
        account = make_account(admin_url, main.name, login=args.login, host=args.host,
                               password=password, views_only=args.views_only,
                               connect_timeout=settings.db.connect_timeout)
    except AccountError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from None
    print(f"{account.schema}: {len(account.views)} views; left out: "
          f"{', '.join(account.left_out)}")
    if args.views_only:
        print(f"the views are made again; the login {args.login!r} is unchanged")
        return EXIT_OK
    print(f"the login {args.login!r}@{args.host!r} may SELECT those views, nothing else.")
    print("Put this line in the [DB] section of the configuration and restart xvbd:")
    print(f"REPORTS_URL = {account.reports_url()}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from xvbd.opscheck import report, run_checks

    _, items = run_checks(args.config, all_nodes=args.all_nodes)
    return EXIT_OK if report(items, print) else EXIT_FAILED


def cmd_backup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xvbd.backup import BackupError, backup

    settings = _settings(args.config)
    try:
        done = backup(settings.db.url, Path(args.dest), settings.db.connect_timeout,
                      force=args.force)
    except BackupError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from None
    print(f"{settings.db.url}: backed up to {done.path}: {done.describe()}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xvbd.backup import BackupError, restore

    settings = _settings(args.config)
    try:
        done = restore(settings.db.url, Path(args.src), settings.db.connect_timeout,
                       force=args.force)
    except BackupError as exc:
        raise CommandError(str(exc), EXIT_DATABASE) from None
    print(f"{settings.db.url}: restored from {done.path}: {done.describe()}")
    return EXIT_OK


def _run_async(job: Any, settings: Settings) -> Any:
    """Run ``job(store)`` (a coroutine function) on a reactor, for commands that reuse the
    repositories."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    from xvbd.store import Database, Store

    result: list[Any] = []

    async def main(reactor: Any) -> None:
        db = Database(settings.db.url, pool_max=1, connect_timeout=settings.db.connect_timeout,
                      reactor=reactor)
        db.start()
        try:
            result.append(await job(Store(db, clock=reactor.seconds)))
        finally:
            db.close()

    try:
        react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
    except SystemExit as exc:
        if exc.code:
            raise CommandError("the command failed; see the messages above") from None
    return result[0] if result else None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="xvbd-admin", description="Manage an xvbd installation.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", default="etc/xvb.conf",
                       help="the xvb.conf to use (default: etc/xvb.conf)")
        return p

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    with_config(db_sub.add_parser("upgrade", help="apply pending schema files")
                ).set_defaults(run=cmd_db_upgrade)
    with_config(db_sub.add_parser("status", help="show the schema version")
                ).set_defaults(run=cmd_db_status)
    pw = with_config(sub.add_parser("admin-password", help="set the admin web password"))
    pw.add_argument("--login", default="admin", help="the admin login (default: admin)")
    pw.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of standard input")
    pw.add_argument("--import-htpasswd", metavar="FILE",
                    help="take the login's bcrypt hash from an htpasswd file (it is replaced "
                         "by scrypt at the first login)")
    pw.set_defaults(run=cmd_admin_password)
    with_config(sub.add_parser("demo-tenant", help="create the demo tenant (613 / 10001)")
                ).set_defaults(run=cmd_demo_tenant)
    ra = with_config(sub.add_parser(
        "reports-account", help="MariaDB: make the read-only report login and its "
                                "secret-free views; prints [DB] REPORTS_URL"))
    ra.add_argument("--login", default="xvbd_reports",
                    help="the report login (default: xvbd_reports)")
    ra.add_argument("--host", default="%",
                    help="where the login may connect from, as MariaDB writes it (default: "
                         "%%, anywhere; e.g. localhost or 10.0.0.%%)")
    ra.add_argument("--password-stdin", action="store_true",
                    help="read its password from standard input (default: a random one)")
    ra.add_argument("--views-only", action="store_true",
                    help="only make the views again (after `db upgrade`); the login stays")
    ra.add_argument("--admin-url", metavar="URL",
                    help="connect as this user to make them (one that may CREATE USER and "
                         "GRANT; default: [DB] URL)")
    ra.set_defaults(run=cmd_reports_account)
    with_config(sub.add_parser("check-config", help="validate and print the settings")
                ).set_defaults(run=cmd_check_config)
    check = with_config(sub.add_parser(
        "check", help="check the configuration, database, Redis, AMI, directories, programs"))
    check.add_argument("--all-nodes", action="store_true",
                       help="also log in to the AMI of every node of the Nodes list (at its "
                            "Asterisk IP and [ASTERISK] AMI_PORT, with this file's user)")
    check.set_defaults(run=cmd_check)
    bk = with_config(sub.add_parser("backup", help="back the database up into a file"))
    bk.add_argument("dest", metavar="DEST", help="the backup file to write")
    bk.add_argument("--force", action="store_true", help="replace DEST if it exists")
    bk.set_defaults(run=cmd_backup)
    rs = with_config(sub.add_parser("restore", help="restore a backup into the database"))
    rs.add_argument("src", metavar="SRC", help="a file made by `xvbd-admin backup`")
    rs.add_argument("--force", action="store_true",
                    help="replace everything in a database that is not empty")
    rs.set_defaults(run=cmd_restore)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"xvbd-admin: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
