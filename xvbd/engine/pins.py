"""A PIN that guards one extension (DISA, a conference room): asked a few times on the
call, its wrong tries counted across calls by the call's source (``engine/guard.py``), so
that no caller can guess it call after call, and no caller can shut the owner out of it."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from xvbd.engine import guard, prompts

if TYPE_CHECKING:
    from xvbd.engine.call import Call

MAX_DIGITS = 16


def extension_target(call: Call, key: str) -> str:
    """What the operator reads for the extension ``key`` (``authfail:disa:12``):
    ``613#10001 disa:12``."""
    number = call.user.voice_number if call.user is not None else call.called_id
    return f"{number}#{call.access_code} {key.removeprefix('authfail:')}"


async def ask_extension_pin(call: Call, key: str, pin: str, *,
                            first: str = prompts.ENTER_PIN,
                            again: str = prompts.PIN_INCORRECT) -> bool:
    """Ask for ``pin`` ([ATTEMPTS] PASSWORD tries); wrong ones count against the call's
    source at ``key`` ([ATTEMPTS] PIN_FAILURES lock that source out of it) and everywhere
    (SOURCE_FAILURES).  False when the caller did not get in (told why, the step's STATUS
    THROTTLED or BADPIN)."""
    digit_ms = call.engine.settings.timeout.digit
    target = extension_target(call, key)
    user_id = call.user.id if call.user is not None else None
    prompt = first
    for _ in range(call.engine.settings.attempts.password):
        if await guard.refused(call, target):
            call.step_data = {"STATUS": "THROTTLED"}
            return False
        typed = await call.ask(prompt, digit_ms * 3, MAX_DIGITS, secret=True)
        if typed and hmac.compare_digest(typed.encode(), pin.encode()):
            await guard.passed(call, "", key)  # earlier wrong ones still count
            return True
        if typed and await guard.failed(call, target, user_id=user_id):
            call.step_data = {"STATUS": "THROTTLED"}
            return False
        prompt = again
    call.step_data = {"STATUS": "BADPIN"}
    await call.say_goodbye(prompts.TOO_MANY_TRIES)
    return False
