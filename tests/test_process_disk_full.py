"""The CDR file on a disk that fills up under the real process (a small tmpfs of the test's
own, filled with a file and freed again): calls go on, the records are held and written
when space returns, an alarm is logged once, and the process still stops cleanly."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.db import drop_database, mysql_disabled, new_database_url
from tests.support.disk import fill, mount_small_disk, unmount
from tests.support.process import Server, admin, write_config
from tests.test_process_mariadb_away import call
from tests.test_process_shared import url_text
from xvbd.store import migrations


def _summaries(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if "TYPE=XVB" in line]


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_full_disk_under_the_cdr_file(tmp_path: Path, backend: str) -> None:
    if backend == "mysql" and mysql_disabled():
        pytest.skip("XVBD_TEST_MYSQL=off")
    disk = tmp_path / "disk"
    mount_small_disk(disk)
    url = new_database_url(backend, str(tmp_path / "db"))
    try:
        migrations.upgrade(url)
        text = url_text(url) if backend == "mysql" else f"sqlite:{url.path}"
        conf = write_config(tmp_path, text)
        conf.write_text(conf.read_text().replace(
            f"FILE = {tmp_path / 'xvbd.cdr'}", f"FILE = {disk / 'xvbd.cdr'}"))
        assert admin("demo-tenant", "-c", str(conf), cwd=tmp_path).returncode == 0
        server = Server(conf, tmp_path).wait_started()
        cdr = disk / "xvbd.cdr"
        log = tmp_path / "xvbd.log"
        try:
            call(server.agi_port)
            deadline = time.monotonic() + 10
            while len(_summaries(cdr)) < 1:
                assert time.monotonic() < deadline, "the first call's record"
                time.sleep(0.1)
            filler = fill(disk)
            # the disk is full (the file's last page may still take a few lines): callers
            # are served as before until, and after, the sink meets the full disk
            made = 0
            while "No space left on device" not in log.read_text():
                assert made < 30, "no alarm in the log"
                commands, heard = call(server.agi_port)
                assert "STREAM FILE demo-instruct" in commands[-1] and heard < 2.0, commands
                made += 1
                time.sleep(0.05)
            for _ in range(2):
                commands, heard = call(server.agi_port)
                assert "STREAM FILE demo-instruct" in commands[-1] and heard < 2.0, commands
                made += 1
            health = json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{server.web_port}/healthz", timeout=5).read())
            assert health["status"] == "ok", health  # calls are served
            (file_sink, *_) = health["cdr"]
            assert file_sink["sink"] == "FILE" and file_sink["held_lines"] > 0, health
            written = len(_summaries(cdr))
            assert written < 1 + made, "some records wait for space"
            filler.unlink()  # space returns: the held records are written, in order
            deadline = time.monotonic() + 20
            while len(_summaries(cdr)) < 1 + made:
                assert time.monotonic() < deadline, \
                    f"held records never written: {log.read_text()[-2000:]}"
                time.sleep(0.2)
            lines = cdr.read_text().splitlines()
            assert len(lines) == len(set(lines)), "each line once"
            # full again at the stop: what could not be written goes into the log
            filler = fill(disk)
            for _ in range(30):  # until one call's lines are held
                call(server.agi_port)
                time.sleep(0.3)
                if "held in memory" in log.read_text().split("takes records again")[-1]:
                    break
            else:
                raise AssertionError("the disk never filled again")
            code, _ = server.terminate(timeout=10)
            assert code == 0
        finally:
            server.kill()
            unmount(disk)
        text_log = log.read_text()
        assert text_log.count("cannot be written (") == 2, text_log[-3000:]  # once a spell
        assert text_log.count("takes records again") == 1
        kept = text_log.split("could still not be written at stop;", 1)[1]
        assert "TYPE=XVB" in kept, "the held records are in the log"
        assert "Traceback" not in text_log
    finally:
        drop_database(url)
