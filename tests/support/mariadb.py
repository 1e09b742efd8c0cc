"""A MariaDB server process of a test's own (its own data directory and port), that the
test kills as a crash would and starts again on the same data: for outages of the
database under a running xvbd, without touching the shared server other tests use."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from xvbd.config import DatabaseURL, database_url


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MariaDBServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "mariadb-data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.binary = binary

    @property
    def url(self) -> DatabaseURL:
        return database_url(f"mysql://root@127.0.0.1:{self.port}/xvbd")

    @property
    def url_text(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/xvbd"

    def start(self) -> MariaDBServer:
        if not self.data.exists():
            subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=root",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, capture_output=True, timeout=120)
        log = (self.directory / "mariadb.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.directory / 'mariadb.sock'}",
             "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
             f"--pid-file={self.directory / 'mariadb.pid'}"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.query("CREATE DATABASE IF NOT EXISTS xvbd CHARACTER SET utf8mb4 "
                           "COLLATE utf8mb4_bin", database=None)
                return self
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError("mariadbd exited: " +
                                       (self.directory / "mariadb.log").read_text()) from None
                time.sleep(0.1)
        raise RuntimeError(f"mariadbd did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL, as a crash: clients see their connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def query(self, sql: str, *args: Any, database: str | None = "xvbd") -> list[tuple[Any, ...]]:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                               database=database, connect_timeout=2, autocommit=True)
        try:
            cursor = conn.cursor()
            cursor.execute(sql, args or None)
            return list(cursor.fetchall())
        finally:
            conn.close()
