"""The tenant's self-service web under ``/ui``: their IVR, greetings, messages, calls."""

from __future__ import annotations

from xvbd.web.tenant.account import AccountPages
from xvbd.web.tenant.api import TenantApi
from xvbd.web.tenant.base import Tenant
from xvbd.web.tenant.calls import CallPages
from xvbd.web.tenant.lists import ListPages


class TenantApp(TenantApi, CallPages, ListPages, AccountPages):
    """All the tenant's pages on one Klein app (``TenantApp(...).app.resource()``); the API
    builds on the IVR, message and greeting pages."""


__all__ = ["Tenant", "TenantApp"]
