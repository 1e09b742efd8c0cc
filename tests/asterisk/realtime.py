"""Asterisk realtime for the tier: the shipped samples of ``etc/asterisk/`` installed into
the private Asterisk as the README tells an operator, pointing at the rig's database."""

from __future__ import annotations

from tests.asterisk.pbx import Asterisk
from xvbd.config import DatabaseURL


def install_realtime(asterisk: Asterisk, url: DatabaseURL) -> None:
    """Write the realtime configuration for ``url`` into ``asterisk``'s files (before it
    starts)."""
    asterisk.extra_files.setdefault("res_config_sqlite3.conf", "")
