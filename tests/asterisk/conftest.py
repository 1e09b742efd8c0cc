"""The Asterisk tier's fixture: ``rig`` on SQLite and on MariaDB (see ``rig.py``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.asterisk.pbx import NoAsterisk, find_binary
from tests.asterisk.rig import Rig
from tests.support.db import mysql_disabled


def _need_asterisk() -> None:
    try:
        find_binary()
    except NoAsterisk as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Asterisk tier is required under CI=true: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(params=["sqlite", "mysql"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    _need_asterisk()
    if request.param == "mysql" and mysql_disabled():
        pytest.skip("XVBD_TEST_MYSQL=off: the MariaDB half is skipped")
    # A short path: Asterisk's control socket must fit a Unix socket name (108 bytes).
    tmp = Path(tempfile.mkdtemp(prefix="xvbt-"))
    made = Rig(tmp, request.param)
    yield made
    passed = not getattr(request.node, "rep_call_failed", True)
    try:
        made.stop()
        if passed:
            made.check_logs()
    except BaseException:
        passed = False
        raise
    finally:
        if passed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"the rig's files are kept in {tmp}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call_failed = report.failed  # type: ignore[attr-defined]
