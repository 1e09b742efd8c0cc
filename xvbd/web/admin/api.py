"""The operator's JSON and XML API under ``/ai/api``."""

from __future__ import annotations

from xvbd.web.admin.base import AdminBase


class ApiRoutes(AdminBase):
    """(to be filled: /ai/api/...)"""
