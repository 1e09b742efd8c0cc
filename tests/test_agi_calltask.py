"""The call's coroutine driver: values and failures of Deferreds that fire later reach the
coroutine as they do under ``Deferred.fromCoroutine``; AGI replies are handed straight in."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from xvbd.agi.calltask import PendingReply, run_call


class Trouble(Exception):
    pass


class RunCallTests(SynchronousTestCase):
    def test_a_later_failure_is_raised_where_the_call_waits(self) -> None:
        later: Deferred[int] = Deferred()
        seen: list[str] = []

        async def call() -> str:
            try:
                await later
            except Trouble as exc:
                seen.append(f"caught {exc}")
            reply: PendingReply[str] = PendingReply()
            reply.resolve("200 result=0")
            return await reply

        done = run_call(call())
        self.assertNoResult(done)
        later.errback(Trouble("the database went away"))
        self.assertEqual(self.successResultOf(done), "200 result=0")
        self.assertEqual(seen, ["caught the database went away"])
        self.assertEqual(self.flushLoggedErrors(), [], "nothing left unhandled")

    def test_a_later_value_and_a_failure_not_caught(self) -> None:
        first: Deferred[int] = Deferred()
        second: Deferred[int] = Deferred()

        async def call() -> int:
            value = await first
            return value + await second

        done = run_call(call())
        first.callback(2)
        self.assertNoResult(done)
        second.errback(Trouble("no"))
        self.failureResultOf(done, Trouble)

    def test_a_reply_resolved_later_resumes_the_call(self) -> None:
        reply: PendingReply[str] = PendingReply()

        async def call() -> str:
            return await reply

        done = run_call(call())
        self.assertNoResult(done)
        reply.resolve("200 result=1")
        self.assertEqual(self.successResultOf(done), "200 result=1")
