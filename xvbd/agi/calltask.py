"""Running one call's coroutine, with AGI replies handed straight to it.

A call awaits many AGI replies (tens per call, thousands per second on a busy node).  Going
through a Deferred for each costs more than the rest of the reply's handling, so the
protocol returns a :class:`PendingReply` and :func:`run_call` resumes the call's coroutine
with it directly.  Everything else the coroutine awaits (Deferreds of the database, of
other coroutines) works as under ``Deferred.fromCoroutine``, and a :class:`PendingReply`
awaited under any other driver falls back to a Deferred.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")


class PendingReply(Generic[T]):
    """An AGI reply on its way: resolved once by the protocol, awaited once by the call."""

    __slots__ = ("_deferred", "_done", "_error", "_resume", "_value")

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._resume: Any = None
        self._deferred: Deferred[T] | None = None

    @classmethod
    def failed(cls, error: BaseException) -> PendingReply[T]:
        pending: PendingReply[T] = cls()
        pending._done, pending._error = True, error
        return pending

    def resolve(self, value: T) -> None:
        self._settle(value, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if self._done:
            return
        self._done, self._value, self._error = True, value, error
        if self._resume is not None:
            resume, self._resume = self._resume, None
            resume()
        elif self._deferred is not None:
            if error is None:
                self._deferred.callback(value)
            else:
                self._deferred.errback(Failure(error))

    def as_deferred(self) -> Deferred[T]:
        if self._deferred is None:
            self._deferred = Deferred()
            if self._done:
                if self._error is None:
                    self._deferred.callback(self._value)
                else:
                    self._deferred.errback(Failure(self._error))
        return self._deferred

    def __await__(self) -> Generator[Any, Any, T]:
        if not self._done:
            sent = yield self
            if not self._done:  # a driver that does not know us bounced it back
                assert sent is self
                return (yield from self.as_deferred())
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]


class _Task:
    __slots__ = ("coro", "done")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.done: Deferred[Any] = Deferred()

    def step(self, failure: Failure | None = None) -> None:
        """Run the coroutine to its next wait; ``failure``: what the Deferred it waited on
        failed with, raised into it where it waits."""
        coro = self.coro
        while True:
            try:
                if failure is not None:
                    yielded, failure = failure.throwExceptionIntoGenerator(coro), None
                else:
                    yielded = coro.send(None)
            except StopIteration as stop:
                self.done.callback(stop.value)
                return
            except BaseException:
                self.done.errback(Failure())
                return
            if type(yielded) is PendingReply:
                if yielded._done:
                    continue
                yielded._resume = self.step
                return
            if isinstance(yielded, Deferred):
                if yielded.called and not yielded.paused:
                    continue
                yielded.addBoth(self._resume_after_deferred)
                return
            # Anything else is sent back, as Twisted does (a bare ``yield`` in a coroutine).

    def _resume_after_deferred(self, result: object) -> None:
        # A value: the awaiting Deferred.__iter__ reads it itself while this runs.  A
        # failure is raised into the coroutine here (Deferred.__iter__ could not read it
        # while the Deferred is still running its callbacks), and the Deferred keeps None,
        # so nothing is reported as unhandled.
        if isinstance(result, Failure):
            self.step(result)
        else:
            self.step()


def run_call(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Run ``coro`` like ``Deferred.fromCoroutine``; fires with its result."""
    task = _Task(coro)
    task.step()
    return task.done
