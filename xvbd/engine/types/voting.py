"""Voting (type 10): a question, the options by digit, one vote per caller id per poll.  A
caller who voted before hears their vote; results are kept for the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.agi.channel import ALL_DIGITS
from xvbd.engine import prompts
from xvbd.engine.runner import play_greeting
from xvbd.engine.types import Next, SettingsError, register, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

THANKS = "auth-thankyou"
YOU_VOTED = "you-entered"
ANONYMOUS = "privacy-unident"  # "the party you are calling does not accept unidentified …"


@dataclass(frozen=True)
class VotingSettings:
    question: str  # the sound that asks (system:NAME or user:NAME)
    options: str = "12"  # the digits that are votes
    greeting: str = ""
    timeout: int = within(10, 1, 60)

    def __post_init__(self) -> None:
        if not self.options or any(o not in ALL_DIGITS for o in self.options):
            raise SettingsError(f"options are DTMF digits, got {self.options!r}")


class VotingType:
    name = "Voting"
    number = 10
    settings = VotingSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None
        features = call.engine.store.features
        caller = call.env.callerid
        if not caller:
            call.step_data = {"STATUS": "ANONYMOUS"}
            await call.play(ANONYMOUS)
            return Next.UP
        before = await features.vote_of(call.user.id, ext.id, caller)
        if before is not None:
            call.step_data = {"VOTE": before.choice, "NEW": 0}
            await call.play(YOU_VOTED)
            await call.channel.say_digits(before.choice)
            return Next.UP
        for _ in range(call.engine.settings.attempts.ivr_input):
            asked = call.engine.clock.seconds()
            choice = await play_greeting(call, settings.question, settings.options)
            if not choice:
                choice = await call.channel.wait_for_digit(settings.timeout * 1000)
            call.note_dtmf(choice, call.engine.clock.seconds() - asked)
            if choice and choice in settings.options:
                vote, new = await features.vote(call.user.id, ext.id, caller, choice)
                call.step_data = {"VOTE": vote.choice, "NEW": int(new)}
                if not new:
                    await call.play(YOU_VOTED)
                    await call.channel.say_digits(vote.choice)
                else:
                    await call.play(THANKS)
                return Next.UP
            if choice:
                await call.play(prompts.INVALID_CHOICE)
        call.step_data = {"VOTE": "-"}
        return Next.UP


register(VotingType())
