"""This node's stats for the admin's Nodes list and for node limits: calls now (the shared
node counter), load averages 1/5/10, and when, every ``[TIMEOUT] NODE_STATS`` seconds."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import TimerService

from xvbd.counters import Counters
from xvbd.logs import logger
from xvbd.store.accounts import Accounts

log = logger("xvbd.nodes")


def node_key(server_id: str) -> str:
    """The shared counter of a node's calls in progress."""
    return f"calls:node:{server_id}"


class NodeStats(TimerService):
    def __init__(self, server_id: str, accounts: Accounts, counters: Counters, interval: float,
                 clock: Any, loadavg: Any = os.getloadavg) -> None:
        super().__init__(interval, self.publish)
        self.clock = clock
        self.server_id = server_id
        self.accounts = accounts
        self.counters = counters
        self.loadavg = loadavg
        self._checked = False

    async def publish(self) -> None:
        try:
            if not self._checked:
                self._checked = True
                if await self.accounts.get_node(self.server_id) is None:
                    log.info("SERVER_ID {id} was not in the Nodes list; added it (give it "
                             "its addresses and limits there)", id=self.server_id)
                    await self.accounts.put_node(self.server_id, comment="added by xvbd")
            calls = await self.counters.current(node_key(self.server_id))
            la_1, la_5, la_10 = self.loadavg()
            await self.accounts.record_node_stats(self.server_id, calls, la_1, la_5, la_10)
        except Exception as exc:
            log.warn("node stats not published ({error}); next try in {n} s",
                     error=str(exc), n=self.step)
