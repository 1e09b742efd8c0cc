"""Group commit: items gather while a batch is written; a failing batch fails only the
items that cannot be written."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from xvbd.store.groupcommit import GroupCommit


class GroupCommitTests(TestCase):
    def setUp(self) -> None:
        self.batches: list[list[int]] = []
        self.gates: list[Deferred[None]] = []

    async def write(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        gate: Deferred[None] = Deferred()
        self.gates.append(gate)
        await gate
        if any(i < 0 for i in items):
            raise ValueError("a negative item")
        return [i * 10 for i in items]

    def test_items_gather_while_a_batch_is_written(self) -> None:
        commit: GroupCommit[int, int] = GroupCommit(self.write)
        first = commit.submit(1)
        later = [commit.submit(n) for n in (2, 3, 4)]
        self.assertEqual(self.batches, [[1]])
        idle = commit.when_idle()
        self.gates[0].callback(None)
        self.assertEqual(self.successResultOf(first), 10)
        self.assertEqual(self.batches, [[1], [2, 3, 4]], "the three share one transaction")
        self.assertNoResult(idle)
        self.gates[1].callback(None)
        self.assertEqual([self.successResultOf(d) for d in later], [20, 30, 40])
        self.successResultOf(idle)
        self.successResultOf(commit.when_idle())

    def test_one_bad_item_fails_alone(self) -> None:
        commit: GroupCommit[int, int] = GroupCommit(self.write)
        first = commit.submit(1)
        good, bad, other = commit.submit(2), commit.submit(-1), commit.submit(3)
        self.gates[0].callback(None)
        self.gates[1].callback(None)  # the batch [2, -1, 3] fails ...
        while len(self.gates) < 5 or not self.gates[-1].called:  # ... each is tried alone
            self.gates[-1].callback(None)
        self.assertEqual(self.batches, [[1], [2, -1, 3], [2], [-1], [3]])
        self.assertEqual((self.successResultOf(first), self.successResultOf(good),
                          self.successResultOf(other)), (10, 20, 30))
        self.failureResultOf(bad, ValueError)
