"""What /healthz reports besides the database: the reactor's lag on a test clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from xvbd.health import ReactorLag


class ReactorLagTests(SynchronousTestCase):
    def test_a_reactor_on_time_then_blocked(self) -> None:
        clock = Clock()
        lag = ReactorLag(clock)
        lag.startService()
        self.addCleanup(lag.stopService)
        self.assertEqual(lag.health(), {"last_ms": 0.0, "max_1min_ms": 0.0})
        for _ in range(5):
            clock.advance(1.0)
        self.assertEqual(lag.health(), {"last_ms": 0.0, "max_1min_ms": 0.0})
        clock.advance(3.25)  # a step held the reactor 2.25 s past the timer's time
        self.assertEqual(lag.health(), {"last_ms": 2250.0, "max_1min_ms": 2250.0})
        clock.advance(1.0)
        self.assertEqual(lag.health(), {"last_ms": 0.0, "max_1min_ms": 2250.0})
        for _ in range(60):  # a minute later the worst has passed out of the window
            clock.advance(1.0)
        self.assertEqual(lag.health()["max_1min_ms"], 0.0)

    def test_stopping_leaves_no_timer(self) -> None:
        clock = Clock()
        lag = ReactorLag(clock)
        lag.startService()
        lag.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
