"""Logging: the ``[DEBUG] LEVEL`` bitmask on Twisted's logger, and the FILE / SYSLOG targets.

The original's levels are bits: 0 fatal (always), 1 errors, 2 warnings, 4 notices, 8 DTMF,
16 debug, 64 verbose, 128 pedantic.  xvbd code logs through :func:`logger`, whose events pass
:data:`GATE` before they reach Twisted's global publisher (and so twistd's own log).  A debug
event may say which finer kind it is with ``xvb_kind`` ('dtmf', 'verbose', 'pedantic').  The
access codes in ``[DEBUG] FULL`` get verbose logs: events carrying ``access_code`` of one of
them pass up to the verbose level whatever LEVEL says.
"""

from __future__ import annotations

import os
import socket
import syslog
import time
from typing import Any

from twisted.application.service import Service
from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    Logger,
    LogLevel,
    PredicateResult,
    eventAsText,
    formatEvent,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from xvbd.config import DebugSettings

ERRORS, WARNINGS, NOTICES, DTMF, DEBUG, VERBOSE, PEDANTIC = 1, 2, 4, 8, 16, 64, 128
_DEBUG_KINDS = {"dtmf": DTMF, "verbose": VERBOSE, "pedantic": PEDANTIC}
_LEVEL_BITS = {LogLevel.error: ERRORS, LogLevel.warn: WARNINGS, LogLevel.info: NOTICES}


def bit_for(event: dict[str, Any]) -> int:
    """The LEVEL bit an event needs (0: always shown)."""
    level = event.get("log_level", LogLevel.info)
    if level == LogLevel.critical:
        return 0
    if level == LogLevel.debug:
        return _DEBUG_KINDS.get(event.get("xvb_kind", ""), DEBUG)
    return _LEVEL_BITS.get(level, NOTICES)


@implementer(ILogFilterPredicate)
class LevelGate:
    """The predicate of the bitmask; reconfigured in place when the settings are loaded."""

    def __init__(self, level: int = ERRORS | WARNINGS | NOTICES,
                 full: frozenset[str] = frozenset()) -> None:
        self.configure(level, full)

    def configure(self, level: int, full: frozenset[str] = frozenset()) -> None:
        self.level = level
        self.full = full

    def enabled(self, bit: int, access_code: str = "") -> bool:
        """Would an event of ``bit`` pass?  For the call path, to skip building events
        nobody will see."""
        return bool(self.level & bit) or (access_code in self.full and bit <= VERBOSE)

    def __call__(self, event: dict[str, Any]) -> PredicateResult:
        if event.get("xvb_always"):  # the start-up and stop lines, whatever LEVEL says
            return PredicateResult.yes
        bit = bit_for(event)
        if bit == 0 or self.enabled(bit, event.get("access_code", "")):
            return PredicateResult.yes
        return PredicateResult.no


LEVEL_GATE = LevelGate()
GATE = FilteringLogObserver(globalLogPublisher, [LEVEL_GATE])


def logger(namespace: str) -> Logger:
    """A Twisted ``Logger`` whose events pass the LEVEL gate."""
    return Logger(namespace=namespace, observer=GATE)


_SYSLOG_PRIORITY = {LogLevel.critical: syslog.LOG_CRIT, LogLevel.error: syslog.LOG_ERR,
                    LogLevel.warn: syslog.LOG_WARNING, LogLevel.info: syslog.LOG_NOTICE,
                    LogLevel.debug: syslog.LOG_DEBUG}


@implementer(ILogObserver)
class SyslogObserver:
    """Events to syslog: the local daemon (``/dev/log``) or, with a host, RFC 3164 datagrams
    over UDP (sent without blocking; a datagram the socket cannot take now is dropped)."""

    def __init__(self, host: str = "") -> None:
        self._sock: socket.socket | None = None
        if host:
            name, _, port = host.partition(":")
            self._address = (name, int(port or 514))
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        else:
            syslog.openlog("xvbd", syslog.LOG_PID, syslog.LOG_DAEMON)
        self._hostname = socket.gethostname()

    def __call__(self, event: dict[str, Any]) -> None:
        text = (formatEvent(event) or "").replace("\n", " ")
        if event.get("log_failure") is not None:
            text += " | " + eventAsText(event, includeTimestamp=False).replace("\n", " | ")
        priority = _SYSLOG_PRIORITY.get(event.get("log_level", LogLevel.info), syslog.LOG_INFO)
        if self._sock is None:
            syslog.syslog(priority, text)
            return
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(event.get("log_time")))
        pri = syslog.LOG_DAEMON | priority
        line = f"<{pri}>{stamp} {self._hostname} xvbd[{os.getpid()}]: {text}"
        try:
            self._sock.sendto(line.encode("utf-8", "replace")[:8192], self._address)
        except OSError:
            pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        else:
            syslog.closelog()


class LoggingService(Service):
    """Applies ``[DEBUG]``: the LEVEL gate, and the FILE / SYSLOG observers while running."""

    name = "logging"

    def __init__(self, settings: DebugSettings) -> None:
        self.settings = settings
        LEVEL_GATE.configure(settings.level, frozenset(settings.full))
        self._observers: list[Any] = []
        self._closers: list[Any] = []

    def startService(self) -> None:
        super().startService()
        if "FILE" in self.settings.send_to:
            path = self.settings.file
            path.parent.mkdir(parents=True, exist_ok=True)
            logfile = LogFile(path.name, str(path.parent), rotateLength=50_000_000,
                              maxRotatedFiles=10)
            self._add(textFileLogObserver(logfile), logfile.close)  # type: ignore[arg-type]
        if "SYSLOG" in self.settings.send_to:
            observer = SyslogObserver(self.settings.host)
            self._add(observer, observer.close)

    def _add(self, observer: Any, closer: Any) -> None:
        globalLogPublisher.addObserver(observer)
        self._observers.append(observer)
        self._closers.append(closer)

    def stopService(self) -> None:
        for observer in self._observers:
            globalLogPublisher.removeObserver(observer)
        for close in self._closers:
            close()
        self._observers.clear()
        self._closers.clear()
        super().stopService()
