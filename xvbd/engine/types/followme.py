"""FindMe/FollowMe (type 3, the original's Dialout): ring the user's phones, one after
another or all at once, through the group's dialout context.

The outgoing legs carry the tenant's access code: the channel variable ``XVB_AC`` is set
inheritable for every authenticated call, and the shipped dialout context adds the SIP
header ``XVB-AC`` from it.  Nobody answering goes to the ``no_answer`` extension (a
voicemail, say) or back to the menu.

The CDR record names the last phone tried and its DIALSTATUS (``PHONE=``, ``STATUS=``) and
every attempt, in order, as ``ATTEMPTS=phone:DIALSTATUS:seconds …`` (phones rung together
joined by ``&``; seconds from the Dial to its end, ringing and talk).
"""

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
class FollowMeSettings:
    greeting: str = ""
    phones: tuple[str, ...] = ()
    mode: str = "sequential"  # or "parallel": all phones ring at once
    ring_seconds: int = within(0, 0, 600)  # per attempt; 0: [TIMEOUT] DIALOUT
    no_answer: str = ""  # path of the extension to go to when nobody answers

    def __post_init__(self) -> None:
        for phone in self.phones:
            if not valid_phone(phone):
                raise SettingsError(f"a phone is digits, * # and +, got {phone!r}")
        if self.mode not in ("sequential", "parallel"):
            raise SettingsError(f"mode is sequential or parallel, got {self.mode!r}")


class FollowMeType:
    name = "FollowMe"
    number = 3
    settings = FollowMeSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.group is not None
        context = call.group.dialout_context
        phones = limited_phones(settings.phones, call.group.max_followme_phones,
                                f"extension {ext.cdr_number} of user {ext.user_id}")
        if not phones or not context:
            call.step_data = {"STATUS": "NOPHONES" if context else "NOCONTEXT"}
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        await call.play(prompts.HOLD_WHILE_TRYING)
        groups = [phones] if settings.mode == "parallel" else [[p] for p in phones]
        attempts: list[str] = []
        for group in groups:
            if await call.out_of_time():
                break
            started = call.engine.clock.seconds()
            status = await dial(call, group, settings.ring_seconds)
            tried = "&".join(group)
            attempts.append(f"{tried}:{status}:{int(call.engine.clock.seconds() - started)}")
            call.step_data = {"PHONE": tried, "STATUS": status, "ATTEMPTS": " ".join(attempts)}
            if status == "ANSWER":
                return Next.HANGUP
        await call.play(prompts.NOBODY_AVAILABLE)
        target = tree.by_path.get(settings.no_answer) if settings.no_answer else None
        return Next.goto(target) if target is not None else Next.UP


register(FollowMeType())
