"""[DEBUG] LEVEL on Twisted's logger: each bit lets its kind of event through."""

from __future__ import annotations

import socket
from pathlib import Path

from twisted.logger import LogLevel, globalLogPublisher

from xvbd.config import DebugSettings
from xvbd.logs import LevelGate, LoggingService, SyslogObserver, logger


def passes(gate: LevelGate, level: LogLevel, **extra: object) -> bool:
    return gate({"log_level": level, **extra}).name == "yes"


def test_each_bit_opens_its_kind() -> None:
    gate = LevelGate(0)
    assert passes(gate, LogLevel.critical), "fatal errors are always logged"
    for level in (LogLevel.error, LogLevel.warn, LogLevel.info, LogLevel.debug):
        assert not passes(gate, level)
    cases = [(1, LogLevel.error, {}), (2, LogLevel.warn, {}), (4, LogLevel.info, {}),
             (8, LogLevel.debug, {"xvb_kind": "dtmf"}), (16, LogLevel.debug, {}),
             (64, LogLevel.debug, {"xvb_kind": "verbose"}),
             (128, LogLevel.debug, {"xvb_kind": "pedantic"})]
    for bit, level, extra in cases:
        gate.configure(bit)
        assert passes(gate, level, **extra), bit
        gate.configure(255 & ~bit)
        assert not passes(gate, level, **extra), bit


def test_full_access_codes_get_verbose_logs() -> None:
    gate = LevelGate(1 | 2, frozenset({"10001"}))
    assert passes(gate, LogLevel.debug, xvb_kind="verbose", access_code="10001")
    assert passes(gate, LogLevel.debug, xvb_kind="dtmf", access_code="10001")
    assert not passes(gate, LogLevel.debug, xvb_kind="pedantic", access_code="10001")
    assert not passes(gate, LogLevel.debug, xvb_kind="verbose", access_code="10002")


def test_file_target_gets_gated_events(tmp_path: Path) -> None:
    service = LoggingService(DebugSettings(level=1 | 2, full=(), send_to=frozenset({"FILE"}),
                                           file=tmp_path / "log" / "x.log", host=""))
    service.startService()
    try:
        log = logger("xvbd.test")
        log.error("an error {n}", n=1)
        log.info("a notice that LEVEL 3 hides")
    finally:
        service.stopService()
        LoggingService(DebugSettings(7, (), frozenset(), tmp_path / "x", ""))  # restore gate
    text = (tmp_path / "log" / "x.log").read_text()
    assert "an error 1" in text and "a notice" not in text


def test_syslog_to_a_host_sends_rfc3164_datagrams() -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(2)
    observer = SyslogObserver(f"127.0.0.1:{collector.getsockname()[1]}")
    try:
        observer({"log_level": LogLevel.warn, "log_format": "disk {pct}% full", "pct": 91,
                  "log_time": 0})
        datagram = collector.recv(2048).decode()
    finally:
        observer.close()
        collector.close()
    assert datagram.startswith("<28>")  # daemon (3) * 8 + warning (4)
    assert datagram.endswith("]: disk 91% full") and " xvbd[" in datagram


def test_xvbd_loggers_reach_the_global_publisher() -> None:
    seen: list[dict[str, object]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        logger("xvbd.test").warn("visible")
        logger("xvbd.test").debug("hidden at the default LEVEL 7")
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert [e["log_format"] for e in seen if e.get("log_namespace") == "xvbd.test"] == ["visible"]


def test_the_start_up_line_shows_at_any_level() -> None:
    gate = LevelGate(0)
    assert passes(gate, LogLevel.info, xvb_always=True)
    assert not passes(gate, LogLevel.info)
