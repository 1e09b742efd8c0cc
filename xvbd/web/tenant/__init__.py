"""The tenant's self-service web under ``/ui``: their IVR, greetings, messages, calls."""

from __future__ import annotations

from xvbd.web.tenant.account import AccountPages
from xvbd.web.tenant.base import Tenant, TenantBase
from xvbd.web.tenant.greetings import GreetingPages
from xvbd.web.tenant.ivr import IvrPages
from xvbd.web.tenant.lists import ListPages
from xvbd.web.tenant.messages import MessagePages


class TenantApp(ListPages, GreetingPages, MessagePages, IvrPages, AccountPages, TenantBase):
    """All the tenant's pages on one Klein app (``TenantApp(...).app.resource()``)."""


__all__ = ["Tenant", "TenantApp"]
