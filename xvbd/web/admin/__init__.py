"""The operator's web under ``/ai``: every screen of the admin (and of partners)."""

from __future__ import annotations

from xvbd.web.admin.api_catalog import CatalogApi
from xvbd.web.admin.base import AdminBase, Principal
from xvbd.web.admin.catalog import CatalogPages
from xvbd.web.admin.cdrs import CdrPages
from xvbd.web.admin.lockouts import LockoutPages
from xvbd.web.admin.mail import MailPages
from xvbd.web.admin.reports import ReportPages
from xvbd.web.admin.users import UserPages


class AdminApp(CatalogApi, MailPages, LockoutPages, ReportPages, CdrPages, UserPages, CatalogPages,
               AdminBase):
    """All the operator's pages on one Klein app (``AdminApp(...).app.resource()``)."""


__all__ = ["AdminApp", "Principal"]
