"""Callback request (type 14): the caller asks to be called back; the request (their number,
the extension to land in) is kept for the callback dialer.  The caller's own number is used
when it is a phone number, else they type one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine import prompts
from xvbd.engine.dialing import valid_phone
from xvbd.engine.types import Next, register, within
from xvbd.engine.types.variables import ask_digits

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

THANKS = "auth-thankyou"


@dataclass(frozen=True)
class CallbackSettings:
    greeting: str = ""
    target: str = ""  # the extension the call back lands in ('' = the root)
    ask_number: bool = False  # always ask, even when the caller id is a number
    ring_timeout: int = within(30, 5, 180)  # seconds the call back rings
    retries: int = within(2, 0, 10)  # more attempts after a busy or unanswered one
    retry_interval: int = within(120, 30, 86400)  # seconds between attempts
    caller_id: str = ""  # the number shown ('' = the tenant's number)


class CallbackType:
    name = "Callback"
    number = 14
    settings = CallbackSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None
        number = call.env.callerid
        if settings.ask_number or not valid_phone(number):
            number = await ask_digits(call, settings.greeting, 20, 10)
        if not valid_phone(number):
            call.step_data = {"STATUS": "NONUMBER"}
            await call.play(prompts.NOT_AVAILABLE)
            return Next.UP
        request = await call.engine.store.features.request_callback(
            call.user.id, number, settings.target, ext.id)
        call.step_data = {"ID": request.id, "PHONE": number}
        call.after.append(call.engine.callback_requested)
        await call.play(THANKS)
        return Next.HANGUP


register(CallbackType())
