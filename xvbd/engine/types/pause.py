"""Pause (type 32): silence for a few seconds, then on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class PauseSettings:
    seconds: int = within(1, 1, 60)
    greeting: str = ""


class PauseType:
    name = "Pause"
    number = 32
    settings = PauseSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        seconds = max(1, int(min(settings.seconds, call.time_left())))
        await call.channel.exec_("Wait", seconds)
        call.step_data = {"SECONDS": seconds}
        return Next.UP


register(PauseType())
