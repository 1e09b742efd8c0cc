"""Dtmf2Email (type 9, the original's DtmfRX): the caller types digits after a prompt; they
are kept for the tenant with who called and when, and mailed to the account's addresses
(queued in the outbox in the same transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, register, within
from xvbd.engine.types.variables import ask_digits
from xvbd.mail.compose import DigitsDraft

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

THANKS = "auth-thankyou"


@dataclass(frozen=True)
class Dtmf2EmailSettings:
    greeting: str = ""
    max_digits: int = within(32, 1, 128)
    timeout: int = within(10, 1, 60)


class Dtmf2EmailType:
    name = "Dtmf2Email"
    number = 9
    settings = Dtmf2EmailSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None
        digits = await ask_digits(call, settings.greeting, settings.max_digits,
                                  settings.timeout)
        if not digits:
            call.step_data = {"DIGITS": "-"}
            return Next.UP
        user, now = call.user, int(call.engine.clock.seconds())
        mail = DigitsDraft(call.engine.mail, user.id, user.email, user.timezone,
                           ext.cdr_number, call.caller_id, digits, now) if user.email else None
        kept = await call.engine.store.features.add_dtmf(user.id, digits, call.caller_id,
                                                         ext.id, mail=mail)
        if mail is not None:
            call.engine.mail_queued()
        call.step_data = {"ID": kept.id, "DIGITS": digits}
        await call.play(THANKS)
        return Next.UP


register(Dtmf2EmailType())
