"""A PIN that guards one extension (DISA, a conference room): asked a few times on the
call, its wrong tries counted across calls so that no caller can guess it call after call."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from xvbd.engine import prompts

if TYPE_CHECKING:
    from xvbd.engine.call import Call

#: Wrong PINs for one extension in :data:`WINDOW` seconds before it refuses every caller.
FAILURES, WINDOW = 5, 900.0
MAX_DIGITS = 16


async def ask_extension_pin(call: Call, key: str, pin: str, *,
                            first: str = prompts.ENTER_PIN,
                            again: str = prompts.PIN_INCORRECT) -> bool:
    """Ask for ``pin`` ([ATTEMPTS] PASSWORD tries); wrong ones count under ``key``.  False
    when the caller did not get in (told why, the step's STATUS THROTTLED or BADPIN)."""
    counters = call.engine.counters
    digit_ms = call.engine.settings.timeout.digit
    prompt = first
    for _ in range(call.engine.settings.attempts.password):
        if await counters.hits(key, WINDOW) >= FAILURES:
            call.step_data = {"STATUS": "THROTTLED"}
            await call.say_goodbye(prompts.TRY_LATER)
            return False
        typed = await call.ask(prompt, digit_ms * 3, MAX_DIGITS, secret=True)
        if typed and hmac.compare_digest(typed.encode(), pin.encode()):
            return True
        if typed:
            await counters.hit(key, WINDOW)
        prompt = again
    call.step_data = {"STATUS": "BADPIN"}
    await call.say_goodbye(prompts.TOO_MANY_TRIES)
    return False
