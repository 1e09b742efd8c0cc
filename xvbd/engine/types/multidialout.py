"""MultiDialout (type 31): several phones ring at once; the first to answer takes the call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine import prompts
from xvbd.engine.dialing import dial, limited_phones, valid_phone
from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class MultiDialoutSettings:
    greeting: str = ""
    phones: tuple[str, ...] = ()
    ring_seconds: int = within(0, 0, 600)  # 0: [TIMEOUT] DIALOUT

    def __post_init__(self) -> None:
        for phone in self.phones:
            if not valid_phone(phone):
                raise SettingsError(f"a phone is digits, * # and +, got {phone!r}")


class MultiDialoutType:
    name = "MultiDialout"
    number = 31
    settings = MultiDialoutSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.group is not None
        phones = limited_phones(settings.phones, call.group.max_followme_phones,
                                f"extension {ext.cdr_number} of user {ext.user_id}")
        if not phones or not call.group.dialout_context:
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        status = await dial(call, phones, settings.ring_seconds)
        call.step_data = {"PHONES": "&".join(phones), "STATUS": status}
        if status == "ANSWER":
            return Next.HANGUP
        await call.play(prompts.NOBODY_AVAILABLE)
        return Next.UP


register(MultiDialoutType())
