"""The process's service plumbing, without a reactor: ordered stop and the AGI drain."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from xvbd.agi.server import FastAGIFactory
from xvbd.services import OrderedMultiService


class Recorder(Service):
    def __init__(self, name: str, log: list[str], gate: Deferred[None] | None = None) -> None:
        self.name = name
        self.log = log
        self.gate = gate

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.log.append(f"{self.name} stopping")
        if self.gate is None:
            self.log.append(f"{self.name} stopped")
            return None
        return self.gate.addCallback(lambda _: self.log.append(f"{self.name} stopped"))


class OrderedStopTests(TestCase):
    def test_children_stop_one_after_another_in_reverse(self) -> None:
        log: list[str] = []
        gate: Deferred[None] = Deferred()
        top = OrderedMultiService()
        for service in (Recorder("store", log), Recorder("cdr", log), Recorder("agi", log, gate)):
            service.setServiceParent(top)
        top.startService()
        done = top.stopService()
        self.assertEqual(log, ["agi stopping"], "nothing else stops while the calls drain")
        gate.callback(None)
        self.successResultOf(done)
        self.assertEqual(log, ["agi stopping", "agi stopped", "cdr stopping", "cdr stopped",
                               "store stopping", "store stopped"])


class FakeSession:
    """A session as the factory sees it; ``close`` is what xvbd does to end a call."""

    env = None

    def __init__(self, factory: FastAGIFactory) -> None:
        self.factory = factory
        self.closed = 0
        factory.session_started(self)

    def hang_up(self) -> None:
        self.factory.session_ended(self)

    def close(self) -> None:
        self.closed += 1
        self.hang_up()


class DrainTests(TestCase):
    def test_calls_that_end_within_the_grace_are_left_alone(self) -> None:
        clock = Clock()
        factory = FastAGIFactory(object, clock)
        call = FakeSession(factory)
        done = Deferred.fromCoroutine(factory.drain(10))
        clock.advance(3)
        self.assertNoResult(done)
        call.hang_up()
        self.successResultOf(done)
        self.assertEqual(call.closed, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_calls_still_up_after_the_grace_are_finished(self) -> None:
        clock = Clock()
        factory = FastAGIFactory(object, clock)
        calls = [FakeSession(factory), FakeSession(factory)]
        done = Deferred.fromCoroutine(factory.drain(5))
        clock.advance(4.9)
        self.assertNoResult(done)
        clock.advance(0.2)
        self.successResultOf(done)
        self.assertEqual([c.closed for c in calls], [1, 1])
        self.assertEqual(factory.sessions, set())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_nothing_to_drain(self) -> None:
        self.successResultOf(Deferred.fromCoroutine(FastAGIFactory(object, Clock()).drain(5)))
