"""The Asterisk tier's fixture: ``rig`` on SQLite and on MariaDB (see ``rig.py``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.asterisk.rig import Rig, need_asterisk, stopped_and_checked
from tests.support.db import mysql_disabled


@pytest.fixture(params=["sqlite", "mysql"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    need_asterisk()
    if request.param == "mysql" and mysql_disabled():
        pytest.skip("XVBD_TEST_MYSQL=off: the MariaDB half is skipped")
    # A short path: Asterisk's control socket must fit a Unix socket name (108 bytes).
    tmp = Path(tempfile.mkdtemp(prefix="xvbt-"))
    made = Rig(tmp, request.param)
    yield made
    stopped_and_checked(request, made, tmp, "the rig's files")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call_failed = report.failed  # type: ignore[attr-defined]
