"""VoiceMail (type 2, the original's Record): a beep, a recording up to the group's longest
message, kept with who called, when and for how long.

A full mailbox (the extension's or the user's limit) is refused with a polite prompt.  The
message row is written before the caller hears "saved"; a caller who hangs up to end the
message (the usual way) still leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.agi.protocol import Hangup
from xvbd.engine import prompts
from xvbd.engine.media import message_path, seconds_of
from xvbd.engine.types import Next, SettingsError, register, within
from xvbd.ids import new_id
from xvbd.logs import LEVEL_GATE, NOTICES, logger

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

log = logger("xvbd.voicemail")

MIN_SECONDS = 1


@dataclass(frozen=True)
class VoiceMailSettings:
    greeting: str = ""
    max_messages: int = within(0, 0)  # this mailbox's own limit; 0: the group's
    after: str = "hangup"  # after the message: "hangup" or "up" (back to the menu)

    def __post_init__(self) -> None:
        if self.after not in ("hangup", "up"):
            raise SettingsError(f"after is hangup or up, got {self.after!r}")


class VoiceMailType:
    name = "VoiceMail"
    number = 2
    settings = VoiceMailSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        assert call.user is not None and call.group is not None
        store, group = call.engine.store, call.group
        per_ext = group.max_messages_per_ext
        if settings.max_messages:
            per_ext = min(per_ext, settings.max_messages) if per_ext > 0 else settings.max_messages
        total_limit = group.max_messages_total
        here, total, _ = (await store.messages.counts(call.user.id, ext.id)
                          if per_ext > 0 or total_limit > 0 else (0, 0, 0))
        if (per_ext > 0 and here >= per_ext) or (total_limit > 0 and total >= total_limit):
            call.step_data = {"RESULT": "FULL"}
            await call.play(prompts.MAILBOX_FULL)
            return self._after(settings)
        if not settings.greeting:
            await call.play(prompts.LEAVE_MESSAGE)
        fmt = group.preferred_codec or call.engine.settings.file.ast_sound_format
        await call.engine.media.tenant(call.user.id)  # Asterisk writes into it
        key = new_id()
        path = message_path(call.engine.settings.path.media_dir, call.user.id, key)
        limit = group.max_message_duration or 3600
        limit = max(1, int(min(limit, call.time_left())))
        started = call.engine.clock.seconds()
        try:
            recording = await call.channel.record_file(path, fmt, "#", limit * 1000,
                                                       beep=True)
            seconds, gone = seconds_of(recording.endpos, fmt), recording.ended_by == "hangup"
        except Hangup:
            seconds, gone = int(call.engine.clock.seconds() - started), True
        if seconds < MIN_SECONDS:
            call.step_data = {"RESULT": "SHORT"}
            if gone:
                raise Hangup("the caller left no message")
            await call.play(prompts.MESSAGE_TOO_SHORT)
            return self._after(settings)
        message = await store.messages.add(
            call.user.id, extension_id=ext.id, file_name=path, file_format=fmt,
            duration=seconds, caller_id=call.caller_id, called_id=call.called_id,
            call_id=call.call_id, created_at=int(started))
        call.step_data = {"MESSAGE_ID": message.id, "DURATION": seconds}
        if LEVEL_GATE.enabled(NOTICES, call.access_code):  # no event built to be dropped
            log.info("voicemail {id} ({seconds} s) for user {user} from {caller}",
                     id=message.id, seconds=seconds, user=call.user.id, caller=call.caller_id,
                     **call.log_fields())
        if gone:
            raise Hangup("the caller hung up after the message")
        await call.play(prompts.MESSAGE_SAVED)
        return self._after(settings)

    @staticmethod
    def _after(settings: Any) -> Next:
        return Next.UP if settings.after == "up" else Next.HANGUP


register(VoiceMailType())
