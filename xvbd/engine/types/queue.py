"""Queue (type 13): callers wait in an Asterisk queue for the extension's phones (up to the
group's "Maximum Phones for FollowMe & Queues"), with music on hold, a longest wait, their
position announced, and a digit to leave for another extension.

The queue lives in Asterisk's realtime tables (``xvb_q_<extension id>``), written from the
settings when they change; a caller leaving by the exit digit lands in the shipped context
of that digit (``xvb-queue-exit-0`` …), which xvbd sees and turns into a jump to
``exit_target``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.agi.channel import ALL_DIGITS
from xvbd.engine import prompts
from xvbd.engine.dialing import BRIDGE_SECONDS, limited_phones, valid_phone
from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

EXIT_CONTEXT = "xvb-queue-exit"
_DIGIT_NAMES = {"*": "star", "#": "hash"}


def exit_context(digit: str) -> str:
    """The shipped context a caller leaves a queue through by ``digit``.  Asterisk takes a
    caller out of the queue on any key its context has an extension for, so each digit has
    a context of its own, with that one extension: other keys leave nobody."""
    return f"{EXIT_CONTEXT}-{_DIGIT_NAMES.get(digit, digit)}"


@dataclass(frozen=True)
class QueueSettings:
    greeting: str = ""
    phones: tuple[str, ...] = ()
    moh: str = "default"
    max_wait: int = within(300, 0, 86400)  # seconds in the queue (0: as long as the call)
    ring_seconds: int = within(15, 5, 600)  # per member
    announce_position: bool = True
    exit_digit: str = ""
    exit_target: str = ""
    no_answer: str = ""  # where a caller goes when nobody answers in time

    def __post_init__(self) -> None:
        for phone in self.phones:
            if not valid_phone(phone):
                raise SettingsError(f"a phone is digits, * # and +, got {phone!r}")
        if self.exit_digit and (len(self.exit_digit) != 1 or self.exit_digit not in ALL_DIGITS):
            raise SettingsError(f"exit_digit is one DTMF digit, got {self.exit_digit!r}")
        if self.exit_digit and not self.exit_target:
            raise SettingsError("exit_digit needs an exit_target")


class QueueType:
    name = "Queue"
    number = 13
    settings = QueueSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.group is not None and call.user is not None
        phones = limited_phones(settings.phones, call.group.max_followme_phones,
                                f"queue {ext.cdr_number} of user {ext.user_id}")
        context = call.group.dialout_context
        if not phones or not context:
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        name = await self._realtime(call, ext, settings, phones, context)
        if call.charge is not None:
            await call.charge.ensure(settings.max_wait + BRIDGE_SECONDS)
        wait = settings.max_wait or 0
        if call.time_left() != float("inf"):
            wait = int(min(wait or call.time_left(), call.time_left()))
        await call.channel.exec_("Queue", name, "t", "", "", max(wait, 1) if wait else "")
        status = await call.channel.get_variable("QUEUESTATUS") or ""
        where = await call.channel.get_variable("CONTEXT")
        if where and where.startswith(EXIT_CONTEXT):
            digit = await call.channel.get_variable("EXTEN") or ""
            call.step_data = {"QUEUE": name, "STATUS": "EXIT", "DIGIT": digit}
            target = tree.by_path.get(settings.exit_target)
            return Next.goto(target) if target is not None else Next.UP
        call.step_data = {"QUEUE": name, "STATUS": status or "ANSWERED"}
        if not status:
            return Next.HANGUP
        await call.play(prompts.NOBODY_AVAILABLE)
        target = tree.by_path.get(settings.no_answer) if settings.no_answer else None
        return Next.goto(target) if target is not None else Next.UP

    async def _realtime(self, call: Call, ext: Extension, settings: Any, phones: list[str],
                        context: str) -> str:
        assert call.user is not None
        options = {"musiconhold": settings.moh, "timeout": settings.ring_seconds,
                   "strategy": "ringall", "ringinuse": "no",
                   "context": exit_context(settings.exit_digit) if settings.exit_digit
                   else None,
                   "announce_position": "yes" if settings.announce_position else "no",
                   "announce_frequency": 30 if settings.announce_position else 0,
                   "joinempty": "yes", "leavewhenempty": "no"}
        members = [f"Local/{phone}@{context}/n" for phone in phones]
        return await call.engine.store.queues.put(call.user.id, ext.id, options, members)


register(QueueType())
