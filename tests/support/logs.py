"""What xvbd logs while a test runs, caught from Twisted's global log publisher."""

from __future__ import annotations

from typing import Any

from twisted.logger import formatEvent, globalLogPublisher


class Tracebacks:
    """A context: the events logged with a failure (a traceback) while it is open, as
    ``"format: failure"`` lines."""

    def __enter__(self) -> list[str]:
        self.seen: list[str] = []
        globalLogPublisher.addObserver(self.observe)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self.observe)

    def observe(self, event: dict[str, Any]) -> None:
        if "log_failure" in event:
            self.seen.append(f"{event.get('log_format')}: {event['log_failure']}")


def warnings_into(case: Any) -> list[str]:
    """The WARN lines logged from now until ``case`` (a trial TestCase) ends."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event["log_level"].name == "warn":
            lines.append(formatEvent(event))
    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines
