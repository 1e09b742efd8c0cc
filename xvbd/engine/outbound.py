"""The answered side of calls xvbd placed: the ``callblast`` and ``callback`` FastAGI
scripts (the shipped ``xvb-callblast`` / ``xvb-callback`` contexts run them with the
attempt's id and token as arguments).

The token proves the call is the attempt xvbd placed: a request with an unknown or
settled token is put down without a word.  The attempt's outcome is kept before anything
is played, so whatever happens next, the phone is not called again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xvbd.engine.entry import open_call, walk_from
from xvbd.engine.runner import play_greeting, walk
from xvbd.engine.types.playback import spoken
from xvbd.logs import logger

if TYPE_CHECKING:
    from xvbd.engine.call import Call

log = logger("xvbd.outbound")

#: AMD()'s verdicts; only MACHINE is a machine (NOTSURE and HANGUP are treated as people).
MACHINE = "MACHINE"


def _attempt_args(call: Call) -> tuple[int, str] | None:
    args = list(call.env.args)
    if len(args) < 2 or not args[0].isdigit() or not args[1]:
        return None
    return int(args[0]), args[1]


async def _put_down(call: Call, why: str) -> None:
    log.warn("{script} call on {channel} put down: {why}", script=call.env.script,
             channel=call.env.channel, why=why)
    call.result = "NOUSER"
    await call.channel.hangup()


async def play_message(call: Call, message: str, times: int = 1) -> None:
    """A callblast message: a sound reference, or ``tts:`` and the text to speak."""
    reference = await spoken(call, message[4:]) if message.startswith("tts:") else message
    for _ in range(max(1, times)):
        if reference and not call.channel.hung_up:
            await play_greeting(call, reference)


async def callblast(call: Call) -> None:
    """An answered callblast call: its message, then (a person, in a group with advanced
    callblast) the tenant's menu; an answering machine hears the message and the line goes
    down, whatever the group allows (``[CALLBLAST] CHECK_AMD``)."""
    from xvbd.engine.types.callblast import CallBlastSettings, settings_of

    engine = call.engine
    attempt = _attempt_args(call)
    if attempt is None:
        await _put_down(call, "no attempt id and token in the AGI arguments")
        return
    machine = False
    amd = ""
    if engine.settings.callblast.check_amd:
        amd = (await call.channel.get_variable("AMDSTATUS")) or ""
        machine = amd.upper() == MACHINE
    answered = await engine.store.outbound.answer_attempt(
        attempt[0], attempt[1], "machine" if machine else "answered", call.now(), call.call_id)
    if answered is None:
        await _put_down(call, f"callblast phone {attempt[0]} has no attempt with that token "
                        "(already settled, or not placed by xvbd)")
        return
    call.call_type = "callblast"
    call.called_id, call.caller_id = answered.phone.phone, call.env.callerid
    call.after.append(lambda: engine.store.outbound.set_duration(
        answered.result.id, int(call.stopped) - int(call.started)))  # as the CDR says
    user = await engine.store.accounts.get_user(answered.item.user_id)
    if user is None or not await open_call(call, user, user.access_code, inbound=False):
        return
    tree = await engine.directory.tree(user.id)
    ext = tree.by_id.get(answered.item.extension_id)
    settings = settings_of(ext) if ext is not None else CallBlastSettings()
    started = call.now()
    try:
        await play_message(call, answered.item.message or settings.message, settings.repeat)
    finally:
        data = {"ITEM": answered.item.id, "PHONE": answered.phone.phone,
                "RESULT": answered.result.result}
        if amd:
            data["AMD"] = amd
        call.record_step("CallBlast", ext.cdr_number if ext else "", started, call.now(),
                         data)
    assert call.group is not None
    if machine or not call.group.advanced_callblast or call.channel.hung_up:
        await call.channel.hangup()
        return
    target = tree.by_path.get(settings.target) if settings.target else tree.root
    if target is None:
        await call.channel.hangup()
        return
    await walk(call, tree, target)


async def callback(call: Call) -> None:
    """An answered callback: the caller who asked is served by the extension the tenant
    chose, billed as a CallBack call."""
    engine = call.engine
    attempt = _attempt_args(call)
    if attempt is None:
        await _put_down(call, "no request id and token in the AGI arguments")
        return
    request = await engine.store.outbound.finish_callback(
        attempt[0], attempt[1], "answered", call.now(), call_id=call.call_id)
    if request is None:
        await _put_down(call, f"callback request {attempt[0]} has no attempt with that "
                        "token (already settled, or not placed by xvbd)")
        return
    log.info("callback {id} of user {user} to {phone}: answered; served as call {call_id}",
             id=request.id, user=request.user_id, phone=request.phone, call_id=call.call_id)
    call.call_type = "callback"
    call.called_id, call.caller_id = request.phone, call.env.callerid
    user = await engine.store.accounts.get_user(request.user_id)
    if user is None or not await open_call(call, user, user.access_code, inbound=False):
        return
    await walk_from(call, user, request.target_path)
