"""Date/Time (type 15): says the date, the time or both in the caller's language, in the
tenant's timezone (Asterisk's SAY DATETIME).

Asterisk says what a format tells it, letter by letter (``main/say.c``), and says nothing
for an empty format, so a format is always sent: the tenant's own, or the language's
default for what the tenant chose to say.  Asterisk picks its rules by the first two
letters of the channel's language (``ru_xvb.RU-Female`` for the pack ``xvb.RU-Female``:
``xvbd.engine.languages``); it has no Russian date rules, so its default date rules read
every format here, with the language's own rules for the numbers in them: ``A`` weekday,
``B`` month, ``d`` day of the month (an ordinal), ``Y`` year, ``I`` hour of 12 and ``p``
a.m./p.m., ``k`` hour of 24, ``M`` minutes (``oh`` before one digit, ``o'clock`` on the
hour), a quoted word is a sound file.  The packs hold each language's recordings of those
words (``digits/…``).  In Russian the day comes before the month, the hours count to 24,
and the year is left out (said by the English date rules it would be ungrammatical).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.languages import language_code
from xvbd.engine.types import Next, SettingsError, register

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
#: What Asterisk's default rules read: their letters, spaces, and 'sound/files'.
_FORMAT = re.compile(r"(?:[AaBbhmdeYIlHkMNPpQqRST ]|'[A-Za-z0-9_/-]+')+")
SAY = ("both", "date", "time")
#: By the language's code (``xvb.RU-Female``, ``ru``, ``ru_RU``: RU): date, time, both.
FORMATS = {
    "EN": {"date": "ABdY", "time": "IMp", "both": "ABdY 'digits/at' IMp"},
    "RU": {"date": "AdB", "time": "kM", "both": "AdB 'digits/at' kM"},
}
DEFAULT_LANGUAGE = "EN"


def say_format(language: str, say: str) -> str:
    """The format that says ``say`` (date, time, both) in ``language`` (a pack's name, or
    Asterisk's language)."""
    formats = FORMATS.get(language_code(language).upper()) or FORMATS[DEFAULT_LANGUAGE]
    return formats[say]


@dataclass(frozen=True)
class DateTimeSettings:
    greeting: str = ""
    say: str = "both"  # what is said: both, date or time
    format: str = ""  # Asterisk's say format ('' = the language's, for ``say``)
    timezone: str = ""  # '' = the user's timezone

    def __post_init__(self) -> None:
        if self.say not in SAY:
            raise SettingsError(f"say is one of {', '.join(SAY)}, got {self.say!r}")
        if self.format and not _FORMAT.fullmatch(self.format):
            raise SettingsError(
                f"format is Asterisk's letters (A weekday, B month, d day, Y year, I or k "
                f"hour, M minutes, p a.m./p.m.), spaces and 'sound/files'; got "
                f"{self.format!r}; leave it empty for the language's own")
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
        language = call.language or call.env.get("language")
        fmt = settings.format or say_format(language, settings.say)
        await call.channel.say_datetime(call.now(), "", fmt, zone)
        call.step_data = {"TZ": zone}
        return Next.UP


register(DateTimeType())
