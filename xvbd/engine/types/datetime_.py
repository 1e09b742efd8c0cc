"""Date/Time (type 15): says the date and time in the caller's language, in the tenant's
timezone (Asterisk's SAY DATETIME)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, SettingsError, register

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


@dataclass(frozen=True)
class DateTimeSettings:
    greeting: str = ""
    format: str = ""  # Asterisk's say format ('' = the language's default)
    timezone: str = ""  # '' = the user's timezone

    def __post_init__(self) -> None:
        if self.timezone and not _TIMEZONE.fullmatch(self.timezone):
            raise SettingsError(f"timezone is a zone name like Europe/Moscow, got "
                                f"{self.timezone!r}")


class DateTimeType:
    name = "DateTime"
    number = 15
    settings = DateTimeSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None
        zone = settings.timezone or call.user.timezone or "UTC"
        if not _TIMEZONE.fullmatch(zone):
            zone = "UTC"
        await call.channel.say_datetime(call.now(), "", settings.format, zone)
        call.step_data = {"TZ": zone}
        return Next.UP


register(DateTimeType())
