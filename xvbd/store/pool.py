"""The database pool: Twisted's ``adbapi.ConnectionPool``, with a lost connection told
once, in words, instead of two tracebacks per transaction.

With ``cp_reconnect`` (MariaDB), adbapi rolls back a failed transaction, checks the
connection with ``cp_good_sql`` and, when that fails, drops the connection so the thread
connects anew next time.  It logs each failed rollback with its traceback and raises
``ConnectionLost``, which it then logs again: two tracebacks for every query that met a
dead server, while the query's own error (which :class:`~xvbd.store.db.Database` turns
into a sentence) reaches the caller anyway.  Here the connection is dropped the same way,
without the noise; at most one WARN line a minute.

The pool also times how long each transaction waited for a free pool thread (``waits``)
and counts those waiting now (``queued``), for ``/metrics``.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.enterprise import adbapi
from twisted.internet import threads

from xvbd.logs import logger
from xvbd.timings import ThreadDurations

log = logger("xvbd.db")


class _Connection(adbapi.Connection):
    def rollback(self) -> None:
        if not self._pool.reconnect:
            self._connection.rollback()  # type: ignore[union-attr]
            return
        try:
            self._connection.rollback()  # type: ignore[union-attr]
            cursor = self._connection.cursor()  # type: ignore[union-attr]
            cursor.execute(self._pool.good_sql)
            cursor.close()
            self._connection.commit()  # type: ignore[union-attr]
            return
        except Exception as exc:
            self._pool.connection_lost(exc)
        # A connection that cannot roll back is dropped: this thread connects anew next
        # time.  Nothing is raised: the transaction's own error is what the caller gets.
        self._pool.disconnect(self._connection)


class QuietPool(adbapi.ConnectionPool):  # type: ignore[misc]
    """``adbapi.ConnectionPool`` whose lost connections are logged once (see above)."""

    connectionFactory = _Connection

    #: Seconds between two warnings of lost connections (each pooled one is lost in turn).
    WARN_EVERY = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._warned_at = -self.WARN_EVERY
        #: Seconds each transaction waited for a pool thread (observed on that thread).
        self.waits = ThreadDurations()
        self._submitted = 0  # transactions handed to the pool (on the reactor's thread)

    @property
    def queued(self) -> int:
        """Transactions waiting for a pool thread now."""
        return max(0, self._submitted - self.waits.count)

    def runInteraction(self, interaction: Any, *args: Any, **kw: Any) -> Any:
        """adbapi's, with the time the transaction waits for a thread measured."""
        self._submitted += 1
        return threads.deferToThreadPool(self._reactor, self.threadpool, self._timed,
                                         time.perf_counter(), interaction, *args, **kw)

    def _timed(self, queued_at: float, interaction: Any, *args: Any, **kw: Any) -> Any:
        self.waits.observe(time.perf_counter() - queued_at)
        return self._runInteraction(interaction, *args, **kw)

    def connection_lost(self, exc: Exception) -> None:
        """A pooled connection failed its check after a failed transaction (a pool
        thread calls this)."""
        now = time.monotonic()
        if now - self._warned_at >= self.WARN_EVERY:
            self._warned_at = now
            log.warn("a database connection was lost ({why}); xvbd connects again as "
                     "needed", why=str(exc) or type(exc).__name__)
