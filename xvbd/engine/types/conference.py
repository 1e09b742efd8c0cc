"""Chat-Room (type 7, the original's Conference): a conference room through the group's
conference context (ConfBridge there, or a bridge elsewhere), with an optional PIN and a
limit of members (``XVB_CONF_MAX`` for the context's bridge profile)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine import prompts
from xvbd.engine.dialing import dial
from xvbd.engine.pins import ask_extension_pin
from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

GET_PIN = "conf-getpin"
BAD_PIN = "conf-invalidpin"


@dataclass(frozen=True)
class ConferenceSettings:
    greeting: str = ""
    room: str = ""  # the room's number in the context ('' = the extension's id)
    pin: str = ""
    max_members: int = within(0, 0, 1000)  # 0: no limit of ours

    def __post_init__(self) -> None:
        if self.room and not self.room.isdigit():
            raise SettingsError("room is digits")
        if self.pin and not self.pin.isdigit():
            raise SettingsError("a room PIN is digits")


class ConferenceType:
    name = "Conference"
    number = 7
    settings = ConferenceSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.group is not None
        context = call.group.conference_context
        if not context:
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        if settings.pin and not await ask_extension_pin(
                call, f"authfail:conf:{ext.id}", settings.pin, first=GET_PIN, again=BAD_PIN):
            return Next.HANGUP
        room = settings.room or str(ext.id)
        if settings.max_members:
            await call.channel.set_variable("__XVB_CONF_MAX", settings.max_members)
        status = await dial(call, [room], 30, context)
        call.step_data = {"ROOM": room, "STATUS": status}
        if status != "ANSWER":
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        return Next.HANGUP


register(ConferenceType())
