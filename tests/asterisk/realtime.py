"""Asterisk realtime for the tier: the shipped samples of ``etc/asterisk/realtime/``
installed into the private Asterisk as the README tells an operator, pointing at the rig's
database.

An operator copies one directory's files and edits the values under its ``; EDIT`` lines
(paths, addresses, credentials); so does :func:`install_realtime`, and nothing else: a
marked value it does not know, or a value it knows that is not marked, fails the install,
so the samples and the tier cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.asterisk.pbx import SHIPPED, Asterisk
from xvbd.config import DatabaseURL

SAMPLES = SHIPPED / "realtime"

#: The realtime drivers the samples are for, and the directory of each.
DRIVERS = {"sqlite3": "sqlite", "mysql": "mariadb", "odbc": "odbc"}

_SETTING = re.compile(r"^(\s*)([A-Za-z_][\w-]*)(\s*=>?\s*)(.*)$")


def install_realtime(asterisk: Asterisk, url: DatabaseURL, *, driver: str = "") -> None:
    """Write the realtime configuration for ``url`` into ``asterisk``'s files (before it
    starts): the sample of ``driver`` (``sqlite3`` on SQLite; ``mysql``, the default, or
    ``odbc`` on MariaDB) with its marked values set."""
    driver = driver or ("sqlite3" if url.backend == "sqlite" else "mysql")
    if (driver == "sqlite3") != (url.backend == "sqlite") or driver not in DRIVERS:
        raise ValueError(f"no realtime sample for driver {driver!r} on {url.backend}")
    values = _values(asterisk, url, driver)
    unused = set(values)
    for sample in sorted((SAMPLES / DRIVERS[driver]).iterdir()):
        text, edited = edit_marked(sample.read_text(), values, where=sample)
        unused -= edited
        asterisk.extra_files[sample.name] = text
    if unused:
        raise AssertionError(f"{SAMPLES / DRIVERS[driver]} marks no {', '.join(sorted(unused))}"
                             " to edit")
    # As on an Asterisk installed with its own samples: the drivers not used here have
    # their file, with nothing enabled (res_config_sqlite3 logs an ERROR without it,
    # res_odbc a WARNING).
    asterisk.extra_files.setdefault("res_config_sqlite3.conf", "")
    asterisk.extra_files.setdefault("res_odbc.conf", "")


def _values(asterisk: Asterisk, url: DatabaseURL, driver: str) -> dict[str, str]:
    if driver == "sqlite3":
        assert url.path is not None
        return {"dbfile": str(Path(url.path).resolve())}
    where = {"host": url.host or "127.0.0.1", "port": str(url.port or 3306),
             "name": url.name or "", "user": url.user or "", "password": url.password or ""}
    if driver == "mysql":
        return {"dbhost": where["host"], "dbport": where["port"], "dbname": where["name"],
                "dbuser": where["user"], "dbpass": where["password"]}
    # The data source in a file of its own (res_odbc.conf names it), not /etc/odbc.ini.
    return {"ODBCINI": str(asterisk.etc / "odbc.ini"), "dsn": "xvb",
            "username": where["user"], "password": where["password"],
            "Server": where["host"], "Port": where["port"], "Database": where["name"]}


def edit_marked(text: str, values: dict[str, str], *, where: Path) -> tuple[str, set[str]]:
    """``text`` with the settings under its ``; EDIT`` comments set from ``values``, and the
    names it set.  After an EDIT comment (and the comment lines that go on with it) come
    the settings to edit, up to the next blank or comment line."""
    out: list[str] = []
    edited: set[str] = set()
    marked = in_comment = False  # under an EDIT comment; still in that comment
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(";"):
            if stripped.startswith("; EDIT"):
                marked = in_comment = True
            elif not in_comment:
                marked = False
        elif not stripped:
            marked = in_comment = False
        else:
            in_comment = False
            if marked:
                setting = _SETTING.match(line)
                if setting is None or setting[2] not in values:
                    raise AssertionError(f"{where}: {line!r} is marked to edit, and the tier "
                                         "does not know its value")
                line = f"{setting[1]}{setting[2]}{setting[3]}{values[setting[2]]}".rstrip()
                edited.add(setting[2])
        out.append(line)
    return "\n".join(out) + "\n", edited

