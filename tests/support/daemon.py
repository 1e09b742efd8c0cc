"""Run the real process as an operator does: ``twistd xvbd -c FILE`` in twistd's daemon mode
(it forks twice, detaches into a session of its own, writes a pidfile and a logfile, sets the
umask 0077 and, given ``--uid``/``--gid``, switches user).

The daemon is nobody's child, so its exit status is lost to the test; here twistd is started
by a small reaper, a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``): the daemon,
orphaned by twistd's forks, becomes the reaper's child and the reaper reports its exit
status and the moment it exited (``time.monotonic()``, the same clock in every process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.process import BIN, STARTED, environment

REAPER = r"""
import ctypes, json, os, subprocess, sys, time
def say(**what):
    print(json.dumps(what), flush=True)
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    say(error="prctl(PR_SET_CHILD_SUBREAPER) failed")
    sys.exit(1)
say(twistd=subprocess.run(sys.argv[1:]).returncode)
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    say(pid=pid, status=os.waitstatus_to_exitcode(status), at=time.monotonic())
"""


class Daemon:
    """A daemonized xvbd in ``cwd``: ``twistd.pid``, ``twistd.log`` and the reaper's report
    there; ``args`` go to twistd before ``xvbd`` (``--uid``, ``--umask`` …)."""

    def __init__(self, conf: Path, cwd: Path, *args: str) -> None:
        if not sys.platform.startswith("linux"):
            import pytest

            pytest.skip("the daemon's exit status is collected with a Linux child subreaper")
        self.cwd = cwd
        self.pidfile = cwd / "twistd.pid"
        self.logfile = cwd / "twistd.log"
        self.report_path = cwd / "reaper.out"
        self._report = self.report_path.open("wb")
        command = [str(BIN / "twistd"), f"--pidfile={self.pidfile}",
                   f"--logfile={self.logfile}", *args, "xvbd", "-c", str(conf)]
        self.reaper = subprocess.Popen([sys.executable, "-c", REAPER, *command], cwd=cwd,
                                       env=environment(), stdout=self._report,
                                       stderr=subprocess.STDOUT)
        self.pid = 0
        self.agi_port = self.web_port = 0

    def reports(self) -> list[dict[str, Any]]:
        lines = self.report_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def wait_report(self, key: str, timeout: float, pid: int | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for report in self.reports():
                if key in report and (pid is None or report.get("pid") == pid):
                    return report
            time.sleep(0.02)
        raise AssertionError(f"no {key} report within {timeout} s: {self.reports()}\n"
                             f"{self.log()}")

    def start(self, timeout: float = 30.0) -> Daemon:
        """twistd's foreground part returns once the daemon has started the application
        (ports open); then the start-up line gives the ports."""
        started = self.wait_report("twistd", timeout)
        assert started["twistd"] == 0, (started, self.report_path.read_text(), self.log())
        self.pid = int(self.pidfile.read_text())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = STARTED.search(self.log())
            if match:
                self.agi_port, self.web_port = int(match[3]), int(match[5])
                return self
            if self.exited() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not start:\n{self.log()}")

    def exited(self) -> dict[str, Any] | None:
        for report in self.reports():
            if report.get("pid") == self.pid:
                return report
        return None

    def signal(self, signum: int) -> float:
        """Send ``signum`` to the daemon; the monotonic time it was sent."""
        sent = time.monotonic()
        os.kill(self.pid, signum)
        return sent

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; (the daemon's exit status, seconds from the signal to its exit)."""
        sent = self.signal(signal.SIGTERM)
        report = self.wait_report("status", timeout, pid=self.pid)
        return report["status"], report["at"] - sent

    def kill(self) -> None:
        """After the test: nothing left running, whatever happened."""
        if self.pid and self.exited() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.reaper.wait(10)
        except subprocess.TimeoutExpired:
            self.reaper.kill()
            self.reaper.wait()
        self._report.close()
