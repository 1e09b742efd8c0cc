"""The whole suite's rules: hypothesis keeps no example database and its caches under the
system's temporary directory (never ``.hypothesis/`` in the working copy), and a run that leaves new files in the working
copy fails, naming them: tests write only in their temporary directories."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

settings.register_profile("xvbd", database=None)
settings.load_profile("xvbd")
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "xvbd-test-hypothesis")

ROOT = Path(__file__).resolve().parent.parent
#: What installing and linting make (not the tests), and Python's own caches.
NOT_TESTS = (".venv/", "build/", "xvbd.egg-info/", ".mypy_cache/", ".ruff_cache/",
             "__pycache__/", "dropin.cache")


def new_files() -> set[str] | None:
    """Untracked and ignored paths of the working copy (None when git cannot say)."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--ignored",
                               "--untracked-files=all"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {line[3:] for line in done.stdout.splitlines()
            if line[:2] in ("??", "!!") and not any(part in line for part in NOT_TESTS)}


BEFORE = pytest.StashKey[set[str] | None]()


def pytest_sessionstart(session: Any) -> None:
    session.config.stash[BEFORE] = new_files()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    before = session.config.stash.get(BEFORE, None)
    after = new_files()
    if before is None or after is None:
        return
    written = sorted(after - before)
    if written:
        shown = "\n".join(f"  {path}" for path in written[:40])
        report = session.config.pluginmanager.get_plugin("terminalreporter")
        message = ("the tests wrote into the working copy; a test must write only in its "
                   f"temporary directory (tmp_path, self.mktemp()):\n{shown}")
        if report is not None:
            report.write_line(message, red=True)
        else:
            print(message)
        session.exitstatus = 1
