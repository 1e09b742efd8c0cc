"""Node stats: calls in progress (the shared node counter) and load averages, published for
the Nodes list; a SERVER_ID missing from the list is added."""

from __future__ import annotations

from twisted.internet.task import Clock

from tests.support.db import on_both_backends
from xvbd.counters import LocalCounters
from xvbd.nodestats import NodeStats, node_key


class NodeStatsTests:
    async def test_publishes_calls_and_load(self) -> None:
        clock = Clock()
        clock.advance(1_800_000_000)
        counters = LocalCounters(clock)
        for _ in range(3):
            await counters.acquire(node_key("FCC-NN"), 0)
        stats = NodeStats("FCC-NN", self.store.accounts, counters, 10, clock,
                          loadavg=lambda: (0.5, 0.25, 0.125))
        self.assertIsNone(await self.store.accounts.get_node("FCC-NN"))
        await stats.publish()
        node = await self.store.accounts.get_node("FCC-NN")
        self.assertEqual((node.comment, node.stat_calls, node.stat_la_1, node.stat_la_5,
                          node.stat_la_10), ("added by xvbd", 3, 0.5, 0.25, 0.125))
        self.assertGreater(node.stat_at, 0)


NodeStatsOnSQLite, NodeStatsOnMariaDB = on_both_backends(NodeStatsTests)
