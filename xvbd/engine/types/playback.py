"""Playback (type 1): a greeting, and a menu of the extension's children by their numbers.

The caller may press a key during the greeting or after it.  A number selects a child, ``*``
goes back to the parent menu (at the root: plays the menu again), ``#`` plays it again.
Silence or a wrong number replays the menu, ``[ATTEMPTS] IVR_INPUT`` times at most, then the
call ends politely.  An extension with no children plays its greeting and goes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.agi.channel import ALL_DIGITS
from xvbd.engine import prompts
from xvbd.engine.types import Next, SettingsError, register, within
from xvbd.engine.types.variables import expand
from xvbd.logs import logger

log = logger("xvbd.playback")

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class PlaybackSettings:
    greeting: str = ""  # system:NAME or user:NAME
    tts: str = ""  # text spoken when there is no greeting file and the group allows TTS
    timeout: int = within(5, 1, 60)  # seconds to wait for a choice after the greeting
    default: str = ""  # the child taken when the caller presses nothing ('' = ask again)

    def __post_init__(self) -> None:
        if self.default and not self.default.isdigit():
            raise SettingsError(f"default is a child's number, got {self.default!r}")


class PlaybackType:
    name = "Playback"
    number = 1
    settings = PlaybackSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        from xvbd.engine.runner import play_greeting

        greeting = settings.greeting or await spoken(call, settings.tts)
        children, longest = tree.menu(ext)
        if not children:
            if greeting:
                await play_greeting(call, greeting)
            return Next.UP if ext.parent_id is not None else Next.HANGUP
        digit_ms = call.engine.settings.timeout.digit
        tries = call.engine.settings.attempts.ivr_input
        while tries > 0:
            if await call.out_of_time():
                call.result = "TIMEUP"
                break
            asked = call.engine.clock.seconds()
            entered = ""
            if greeting:
                entered = await play_greeting(call, greeting, ALL_DIGITS)
            if not entered:
                entered = await call.channel.wait_for_digit(settings.timeout * 1000)
            while entered and entered not in "*#" and _longer_exists(entered, children):
                more = await call.channel.wait_for_digit(digit_ms)
                if not more or more == "#":
                    break
                entered += more
                if len(entered) >= longest:
                    break
            call.note_dtmf(entered, call.engine.clock.seconds() - asked)
            if entered == "*":
                if ext.parent_id is not None:
                    return Next.UP
                continue
            if entered == "#":
                continue
            if entered in children:
                return Next.goto(children[entered])
            if not entered and settings.default in children:
                return Next.goto(children[settings.default])
            tries -= 1
            if entered and tries > 0:
                await call.play(prompts.INVALID_CHOICE)
        await call.say_goodbye(prompts.GOODBYE)
        return Next.HANGUP


async def spoken(call: Call, text: str) -> str:
    """A TTS greeting as a sound reference, where the group allows it; '' otherwise."""
    assert call.group is not None
    if not text:
        return ""
    if not call.group.allow_tts:
        return ""
    if len(text.encode("utf-8")) > call.group.max_tts_string_bytes > 0:
        log.warn("a TTS greeting of user {user} is longer than the group's {limit} bytes; "
                 "not spoken", user=call.user.id if call.user else "?",
                 limit=call.group.max_tts_string_bytes)
        return ""
    if call.engine.tts is None:
        return ""
    text = await expand(text, call)  # %VAR:x%, %DBVAR:x%, %CALLERID% …
    path = await call.engine.tts.file_for(text, call.language)
    return f"file:{path}" if path else ""


def _longer_exists(entered: str, children: dict[str, Any]) -> bool:
    return any(n.startswith(entered) and len(n) > len(entered) for n in children)


register(PlaybackType())
