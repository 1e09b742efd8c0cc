"""Storage: one schema on SQLite or MariaDB/MySQL, repositories by domain."""

from __future__ import annotations

import time
from collections.abc import Callable

from xvbd.ids import new_id
from xvbd.store.accounts import Accounts
from xvbd.store.apikeys import ApiKeys
from xvbd.store.billing import Billing
from xvbd.store.callblast import Callblast
from xvbd.store.cdr import CDRs
from xvbd.store.db import Database
from xvbd.store.features import Features
from xvbd.store.ivr import IVR
from xvbd.store.journal import Journal
from xvbd.store.lockouts import Lockouts
from xvbd.store.messages import Messages
from xvbd.store.outbound import Outbound
from xvbd.store.outbox import Outbox
from xvbd.store.processes import Processes
from xvbd.store.queues import Queues
from xvbd.store.reports import Reports
from xvbd.store.sessions import PasswordResets, Sessions
from xvbd.store.sip import SIP


class Store:
    """Every repository over one :class:`Database`."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time,
                 instance: str = "") -> None:
        """``instance``: this process's name in the heartbeats (a new id when not given)."""
        self.db = db
        self.instance = instance or new_id()
        self.accounts = Accounts(db, clock)
        self.billing = Billing(db, clock, self.instance)
        self.processes = Processes(db, clock)
        self.ivr = IVR(db, clock)
        self.messages = Messages(db, clock)
        self.cdrs = CDRs(db, clock)
        self.journal = Journal(db, clock)
        self.reports = Reports(db, clock)
        self.sip = SIP(db, clock)
        self.callblast = Callblast(db, clock)
        self.features = Features(db, clock)
        self.queues = Queues(db)
        self.outbound = Outbound(db, clock)
        self.sessions = Sessions(db, clock)
        self.lockouts = Lockouts(db, clock)
        self.password_resets = PasswordResets(db, clock)
        self.outbox = Outbox(db, clock)
        self.api_keys = ApiKeys(db, clock)


__all__ = ["Database", "Store"]
