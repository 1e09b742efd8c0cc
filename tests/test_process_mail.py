"""Voicemail to e-mail in the real process: the demo tenant (demo@localhost) leaves a
message while the relay (aiosmtpd, a process of its own) is down; once it is back, the
real twistd sends the mail once, with the recording, and marks the message e-mailed.  On
SQLite and on MariaDB."""

from __future__ import annotations

import time
from pathlib import Path

from tests.peers.agi import Caller, environment
from tests.support.process import Server, admin, call_process, write_config
from tests.support.smtp import SMTPServer
from tests.test_process import database, url_text  # noqa: F401 - the fixture
from xvbd.config import DatabaseURL
from xvbd.store import migrations

RECORDED = 44 + 5 * 16000


def emailed(url: DatabaseURL) -> list[int]:
    if url.backend == "sqlite":
        import sqlite3

        with sqlite3.connect(str(url.path)) as conn:
            return [r[0] for r in conn.execute("SELECT emailed_at FROM messages")]
    import pymysql

    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           database=url.name)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT emailed_at FROM messages")
            return [r[0] for r in cursor.fetchall()]
    finally:
        conn.close()


def test_a_voicemail_is_mailed_once_when_the_relay_is_back(database: DatabaseURL,  # noqa: F811
                                                          tmp_path: Path) -> None:
    smtp = SMTPServer(tmp_path / "smtp")
    migrations.upgrade(database)
    conf = write_config(tmp_path, url_text(database), extra=f"""
[EMAIL]
SERVER = 127.0.0.1:{smtp.port}
RETRY_MIN = 1
RETRY_MAX = 2
POLL = 1
""")
    assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
    server = Server(conf, tmp_path)
    try:
        server.wait_started()
        call_process(server.agi_port, environment("ivr", args=("613", "10.9.9.9")),
                     Caller(keys=["10001", "911", "2", "1", "#"], record_seconds=5,
                            record_file_bytes=RECORDED))
        time.sleep(1.5)  # a try or two fail: nothing listens
        assert emailed(database) == [0]
        smtp.start()
        deadline = time.monotonic() + 15
        while not smtp.received() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # time for a second copy, were one to come
        got = smtp.received()
        code, _ = server.terminate()
    finally:
        server.kill()
        smtp.stop()
    assert code == 0, server.output()
    assert len(got) == 1, server.output()
    (mail,) = got
    assert mail.rcpt_tos == ["demo@localhost"]
    assert mail.message["Subject"] == "New message in mailbox"
    (part,) = mail.message.iter_attachments()
    assert part.get_content_type() == "audio/wav" and len(part.get_content()) == RECORDED
    assert emailed(database)[0] > 0
    log = (tmp_path / "xvbd.log").read_text()
    assert "not sent (try 1 of 10)" in log and "Connection refused" in log, log
    assert "sent to demo@localhost" in log
