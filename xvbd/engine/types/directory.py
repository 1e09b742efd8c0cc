"""Company directory (type 4): the employees list — found by their number, or by the first
letters of their name on the phone's keypad — then their phones are rung.

Each match is offered in turn (their recorded name, or their number said), and 1 takes it;
no match is said so.  Entries live in directory_entries (the tenant's web page keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine import prompts
from xvbd.engine.dialing import dial, limited_phones
from xvbd.engine.media import BadSoundName, resolve
from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.features import DirectoryEntry
    from xvbd.store.ivr import Extension

INTRO = "dir-intro"  # "… enter the first three letters of your party's last name"
NO_MATCH = "dir-nomatch"
IS_THIS = "if-correct-press"  # "if this is correct, press …"


@dataclass(frozen=True)
class DirectorySettings:
    greeting: str = ""
    search: str = "both"  # "number", "name" or "both"
    letters: int = within(3, 1, 10)
    ring_seconds: int = within(0, 0, 600)  # 0: [TIMEOUT] DIALOUT

    def __post_init__(self) -> None:
        if self.search not in ("number", "name", "both"):
            raise SettingsError(f"search is number, name or both, got {self.search!r}")


def matches(entries: list[DirectoryEntry], typed: str, search: str) -> list[DirectoryEntry]:
    by_number = [e for e in entries if e.number == typed] if search != "name" else []
    if by_number:
        return by_number
    if search == "number":
        return []
    return [e for e in entries if e.name_keys.startswith(typed)]


class DirectoryType:
    name = "Directory"
    number = 4
    settings = DirectorySettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None and call.group is not None
        entries = await call.engine.directory.directory_entries(call.user.id, ext.id)
        longest = max([len(e.number) for e in entries] + [settings.letters])
        prompt = "silence/1" if settings.greeting else INTRO
        typed = await call.ask(prompt, call.engine.settings.timeout.digit * 2, longest)
        found = matches(entries, typed, settings.search) if typed else []
        for entry in found[:9]:
            await self._announce(call, entry)
            if await call.channel.wait_for_digit(3000) == "1":
                return await self._ring(call, ext, entry, settings)
        call.step_data = {"TYPED": typed, "FOUND": len(found)}
        await call.play(NO_MATCH)
        return Next.UP

    async def _announce(self, call: Call, entry: DirectoryEntry) -> None:
        assert call.user is not None
        if entry.recording:
            try:
                await call.play(resolve(entry.recording, call.engine.settings.path.media_dir,
                                        call.user.id))
            except BadSoundName:
                await call.channel.say_digits(entry.number)
        else:
            await call.channel.say_digits(entry.number)
        await call.play(IS_THIS)

    async def _ring(self, call: Call, ext: Extension, entry: DirectoryEntry,
                    settings: Any) -> Next:
        assert call.group is not None
        phones = limited_phones(tuple(entry.phone_list()), call.group.max_followme_phones,
                                f"employee {entry.number} of user {ext.user_id}")
        if not phones or not call.group.dialout_context:
            call.step_data = {"EMPLOYEE": entry.number, "STATUS": "NOPHONES"}
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        await call.play(prompts.HOLD_WHILE_TRYING)
        status = await dial(call, phones, settings.ring_seconds)
        call.step_data = {"EMPLOYEE": entry.number, "STATUS": status}
        if status == "ANSWER":
            return Next.HANGUP
        await call.play(prompts.NOBODY_AVAILABLE)
        return Next.UP


register(DirectoryType())
