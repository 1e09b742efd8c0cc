"""``make run`` for real: the Makefile's own recipe (``xvbd-admin db upgrade``, then
``twistd -n --pidfile= xvbd -c CONFIG``) on a configuration of the test's own; stopping the
server (SIGTERM, or SIGINT as from a terminal) is a clean stop, and make says 0.

Before, twistd killed itself again with the signal once it had stopped, so make reported
``*** [Makefile:…: run] Terminated`` and exit status 2.  (A Ctrl-C typed at the terminal
also reaches make itself, and GNU make then always ends by that signal, status 130,
whatever the recipe did: that is make's rule, not the server's.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.process import ROOT, STARTED, environment, write_config

VENV = Path(sys.executable).parent.parent


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_make_run_exits_0_after_a_clean_stop(tmp_path: Path, signum: int) -> None:
    if shutil.which("make") is None or not Path("/proc/self/stat").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("make (and /proc) are needed for this test")
        pytest.skip("needs make and /proc")
    conf = write_config(tmp_path, f"sqlite:{tmp_path / 'xvbd.sqlite3'}",
                        f"[PATH]\nMEDIA_DIR = {tmp_path / 'media'}\nTMP_DIR = {tmp_path / 'tmp'}\n")
    out_path = tmp_path / "make.out"
    with out_path.open("wb") as out:
        # -o install: the recipe of run as written, without reinstalling the package into
        # the shared virtualenv (PYTHONPATH runs the checkout's code).
        make = subprocess.Popen(["make", "-f", str(ROOT / "Makefile"), "-o", "install", "run",
                                 f"VENV={VENV}", f"CONFIG={conf}"], cwd=tmp_path,
                                env=environment(), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not STARTED.search(out_path.read_text(errors="replace")):
                assert make.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, out_path.read_text()
                time.sleep(0.05)
            (twistd,) = children_of(make.pid)
            sent = time.monotonic()
            os.kill(twistd, signum)
            status = make.wait(20)
            took = time.monotonic() - sent
        finally:
            if make.poll() is None:
                for child in children_of(make.pid):
                    os.kill(child, signal.SIGKILL)
                make.kill()
                make.wait()
    output = out_path.read_text(errors="replace")
    print(f"make run after {signal.Signals(signum).name}: status {status} in {took:.3f} s")
    assert "applied 001_initial" in output, "the recipe upgraded the database first"
    assert "xvbd stopped" in output and "Server Shut Down" in output, output
    assert status == 0, output
    assert "***" not in output, output
    assert took < 5
