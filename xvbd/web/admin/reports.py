"""SQL reports: defined by the admin, run read-only, shown as a table or CSV."""

from __future__ import annotations

from xvbd.web.admin.base import AdminBase


class ReportPages(AdminBase):
    """(to be filled: /ai/reports)"""
