"""VoiceMail (type 2, the original's Record): a beep, a recording up to the group's longest
message, kept with who called, when and for how long.

A full mailbox (the extension's or the user's limit) is refused with a polite prompt.  The
message row is written before the caller hears "saved"; a caller who hangs up to end the
message (the usual way) still leaves it.

The disk the messages go to: Asterisk writes the audio, and says nothing when the disk
fills under a recording (RECORD FILE goes on to its end and answers its file's position).
So xvbd
looks first: with less room than :data:`MIN_ROOM_SECONDS` of the format the caller is told
at once that no message can be taken now, and a message is never allowed longer than the
room left.  Afterwards a disk found full, or a file smaller than the position Asterisk
answered, marks the message cut, and it keeps the seconds really on disk.  Each case is
an alarm in the log (ERROR, with what to do, at most every :data:`ALARM_EVERY` seconds;
WARN in between) and a RESULT in the call's record: ``NO_ROOM``, ``NOT_RECORDED``
(Asterisk could not create the file, or the disk took nothing of it), ``CUT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.agi.protocol import Hangup
from xvbd.engine import prompts
from xvbd.engine.media import BYTES_PER_SECOND, message_path, seconds_of
from xvbd.engine.types import Next, SettingsError, register, within
from xvbd.ids import new_id
from xvbd.logs import LEVEL_GATE, NOTICES, logger
from xvbd.mail.compose import VoicemailDraft

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

log = logger("xvbd.voicemail")

MIN_SECONDS = 1
#: Less room than this many seconds of the format: no message is taken.
MIN_ROOM_SECONDS = 5
#: Bytes left free beside a recording (its header, the filesystem's own blocks).
ROOM_MARGIN = 64 * 1024
#: The full alarm (ERROR, with what to do) at most this often; WARN lines in between.
ALARM_EVERY = 300.0


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
        fmt = group.preferred_codec or call.engine.settings.file.ast_sound_format
        media = call.engine.media
        await media.tenant(call.user.id)  # Asterisk writes into it
        per_second = BYTES_PER_SECOND.get(fmt, BYTES_PER_SECOND["wav"])
        longest = group.max_message_duration or 3600
        try:
            fits = (await media.room(call.user.id) - ROOM_MARGIN) // per_second
        except OSError as exc:  # the recording itself will say whether the disk works
            fits = longest
            log.warn("could not read the free space of {dir}: {why}", dir=self._dir(call),
                     why=exc.strerror, **call.log_fields())
        if fits < MIN_ROOM_SECONDS:
            self._alarm(call, "no room for voicemail", f"{max(fits, 0)} s of {fmt} fit")
            return await self._not_taken(call, settings, "NO_ROOM")
        if not settings.greeting:
            await call.play(prompts.LEAVE_MESSAGE)
        # what is left of the call once the prompt is over, and of the disk
        limit = max(1, int(min(longest, call.time_left(), fits)))
        key = new_id()
        path = message_path(call.engine.settings.path.media_dir, call.user.id, key)
        started = call.engine.clock.seconds()
        try:
            recording = await call.channel.record_file(path, fmt, "#", limit * 1000,
                                                       beep=True)
            seconds, gone = seconds_of(recording.endpos, fmt), recording.ended_by == "hangup"
        except Hangup:
            seconds, gone = int(call.engine.clock.seconds() - started), True
        else:
            if recording.ended_by == "writefile":
                self._alarm(call, "Asterisk could not create the message file",
                            "it must exist and be writable by Asterisk's user; Asterisk's "
                            "log says why")
                return await self._not_taken(call, settings, "NOT_RECORDED")
        cut = False
        if seconds >= MIN_SECONDS:
            # Asterisk goes on recording when its writes fail and answers the position its
            # file reached (with what its write buffer still held): a message the disk cut
            # looks whole.  The disk full at the end, or a file smaller than that position,
            # says it was cut; the file's own size is then its length.
            size = await media.size(f"{path}.{fmt}")
            try:
                full = await media.room(call.user.id) < per_second
            except OSError:
                full = False
            if size is not None and (full or size < seconds * per_second // 2):
                cut, seconds = True, min(seconds, size // per_second)
                self._alarm(call, "the disk filled under a voicemail",
                            f"{seconds} s of it kept, {size} bytes")
        if seconds < MIN_SECONDS and cut:
            if gone:
                call.step_data = {"RESULT": "NOT_RECORDED"}
                raise Hangup("the disk left no message")
            return await self._not_taken(call, settings, "NOT_RECORDED")
        if seconds < MIN_SECONDS:
            call.step_data = {"RESULT": "SHORT"}
            if gone:
                raise Hangup("the caller left no message")
            await call.play(prompts.MESSAGE_TOO_SHORT)
            return self._after(settings)
        user = call.user
        mail = VoicemailDraft(
            call.engine.mail, user.id, user.email, user.timezone, user.access_code,
            ext.cdr_number, call.caller_id, call.called_id, seconds, int(started), path, fmt,
            group.max_email_attachment_bytes) if user.email else None
        message = await store.messages.add(
            user.id, extension_id=ext.id, file_name=path, file_format=fmt,
            duration=seconds, caller_id=call.caller_id, called_id=call.called_id,
            call_id=call.call_id, created_at=int(started), mail=mail)
        if mail is not None:
            call.engine.mail_queued()
        call.step_data = {"MESSAGE_ID": message.id, "DURATION": seconds}
        if cut:
            call.step_data["RESULT"] = "CUT"
        if LEVEL_GATE.enabled(NOTICES, call.access_code):  # no event built to be dropped
            log.info("voicemail {id} ({seconds} s) for user {user} from {caller}",
                     id=message.id, seconds=seconds, user=call.user.id, caller=call.caller_id,
                     **call.log_fields())
        if gone:
            raise Hangup("the caller hung up after the message")
        await call.play(prompts.MESSAGE_SAVED)
        return self._after(settings)

    async def _not_taken(self, call: Call, settings: Any, result: str) -> Next:
        """The caller is told no message can be taken now, and to call later."""
        call.step_data = {"RESULT": result}
        await call.play(prompts.ERROR)
        await call.play(prompts.TRY_LATER)
        return self._after(settings)

    @staticmethod
    def _dir(call: Call) -> str:
        assert call.user is not None
        return f"{call.engine.settings.path.media_dir}/u/{call.user.id}/messages"

    def _alarm(self, call: Call, what: str, detail: str) -> None:
        """The disk of the messages failed a call: the alarm with what to do (ERROR) once
        every :data:`ALARM_EVERY` s, a WARN line for each call in between."""
        media, now = call.engine.media, call.engine.clock.seconds()
        if media.alarmed_at is None or now - media.alarmed_at >= ALARM_EVERY:
            media.alarmed_at = now
            log.error("{what} in {dir} ({detail}): free space on that disk or mend it "
                      "([PATH] MEDIA_DIR); meanwhile callers' messages are refused or cut, "
                      "and their records say so (RESULT NO_ROOM, NOT_RECORDED or CUT)",
                      what=what, dir=self._dir(call), detail=detail, **call.log_fields())
        else:
            log.warn("{what} in {dir} ({detail})", what=what, dir=self._dir(call),
                     detail=detail, **call.log_fields())

    @staticmethod
    def _after(settings: Any) -> Next:
        return Next.UP if settings.after == "up" else Next.HANGUP


register(VoiceMailType())
