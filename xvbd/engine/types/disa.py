"""DISA (type 11): after a PIN, the caller dials out — through the group's dialout context
only, to numbers of digits, *, # and + only.  Wrong PINs count across calls (as access codes
do); a number refused by the dialout context is said to be unreachable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine import prompts
from xvbd.engine.dialing import dial, valid_phone
from xvbd.engine.pins import ask_extension_pin
from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

ENTER_NUMBER = "vm-enter-num-to-call"
REFUSED = "cannot-complete-as-dialed"


@dataclass(frozen=True)
class DisaSettings:
    greeting: str = ""
    pin: str = ""
    ring_seconds: int = within(0, 0, 600)  # 0: [TIMEOUT] DIALOUT

    def __post_init__(self) -> None:
        if self.pin and not self.pin.isdigit():
            raise SettingsError("a DISA PIN is digits")


class DisaType:
    name = "DISA"
    number = 11
    settings = DisaSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.group is not None
        if not call.group.dialout_context:
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        if settings.pin and not await ask_extension_pin(call, f"authfail:disa:{ext.id}",
                                                        settings.pin):
            return Next.HANGUP
        digit_ms = call.engine.settings.timeout.digit
        number = await call.ask(ENTER_NUMBER, digit_ms * 3, 32)
        if not valid_phone(number):
            call.step_data = {"NUMBER": number or "-", "STATUS": "REFUSED"}
            await call.play(REFUSED)
            return Next.UP
        status = await dial(call, [number], settings.ring_seconds)
        call.step_data = {"NUMBER": number, "STATUS": status}
        if status == "ANSWER":
            return Next.HANGUP
        await call.play(REFUSED if status in ("CHANUNAVAIL", "CONGESTION") else
                        prompts.NOBODY_AVAILABLE)
        return Next.UP


register(DisaType())
