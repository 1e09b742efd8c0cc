"""CDRs of every user (the admin's), with filters, pages and CSV export."""

from __future__ import annotations

from xvbd.web.admin.base import AdminBase


class CdrPages(AdminBase):
    """(to be filled: /ai/cdrs)"""
