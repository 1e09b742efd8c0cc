"""The walk through a tenant's extension tree.

Each visited extension runs its type; the type says where to go next (a child, back up to
the parent menu, another extension, or the end).  Every visit leaves its CDR record, even
when the caller hangs up in the middle or the extension fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xvbd.agi.protocol import AGIError
from xvbd.engine import prompts
from xvbd.engine.media import BadSoundName, resolve
from xvbd.engine.types import REGISTRY, Next, SettingsError, extension_allowed, settings_for
from xvbd.logs import LEVEL_GATE, VERBOSE, logger

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension

log = logger("xvbd.engine")

#: Visits without the caller doing anything that would end a runaway loop of GOTOs.
MAX_VISITS = 500


async def walk(call: Call, tree: Tree, start: Extension) -> None:
    current: Extension | None = start
    for _ in range(MAX_VISITS):
        if current is None:
            return
        if await call.out_of_time():
            call.result = "TIMEUP"
            await call.say_goodbye(prompts.GOODBYE)
            return
        step = await visit(call, tree, current)
        if step.kind == "hangup":
            if not call.channel.hung_up:
                await call.channel.hangup()
            return
        if step.kind == "goto":
            current = step.target
        else:
            current = tree.parent(current)
    log.warn("call {call_id} visited {n} extensions without end; stopped", n=MAX_VISITS,
             **call.log_fields())


async def visit(call: Call, tree: Tree, ext: Extension) -> Next:
    """Run one extension: its greeting (a Playback record of its own), then its type."""
    if LEVEL_GATE.enabled(VERBOSE, call.access_code):
        log.debug("call {call_id}: extension {path} ({type})", path=ext.cdr_number,
                  type=ext.type, xvb_kind="verbose", **call.log_fields())
    kind = REGISTRY.get(ext.type)
    if kind is None or not await _allowed(call, tree, ext):
        if kind is None:
            log.error("extension {path} of user {user} has an unknown type {type!r}",
                      path=ext.cdr_number, user=ext.user_id, type=ext.type)
        await call.play(prompts.NOT_AVAILABLE)
        return Next.UP
    try:
        settings = settings_for(kind, ext)
    except SettingsError as exc:
        log.warn("extension {path} of user {user} ({type}) has bad settings: {error}",
                 path=ext.cdr_number, user=ext.user_id, type=ext.type, error=str(exc))
        await call.play(prompts.NOT_AVAILABLE)
        return Next.UP
    greeting = getattr(settings, "greeting", "")
    if greeting and kind.name != "Playback":
        started = call.now()
        try:
            await play_greeting(call, greeting)
        finally:
            call.record_step("Playback", ext.cdr_number, started, call.now())
    call.step_data = {}
    started = call.now()
    try:
        return await kind.run(call, ext, settings, tree)
    except AGIError:  # the caller left, or Asterisk refused a command: the call ends
        raise
    except Exception:
        log.failure("extension {path} ({type}) of user {user} failed on call {call_id}",
                    path=ext.cdr_number, type=ext.type, user=ext.user_id, **call.log_fields())
        call.step_data["ERROR"] = "internal"
        await call.play(prompts.ERROR)
        return Next.UP if ext.parent_id is not None else Next.HANGUP
    finally:
        call.record_step(kind.name, ext.cdr_number, started, call.now(),
                         call.step_data or None)


async def play_greeting(call: Call, reference: str, escape_digits: str = "") -> str:
    """Play a tenant's greeting; return the key that interrupted it ('' if none)."""
    assert call.user is not None
    try:
        name = resolve(reference, call.engine.settings.path.media_dir, call.user.id)
    except BadSoundName as exc:
        log.warn("greeting of user {user} not played: {error}", user=call.user.id,
                 error=str(exc))
        return ""
    return (await call.play(name, escape_digits)).digit


async def _allowed(call: Call, tree: Tree, ext: Extension) -> bool:
    assert call.group is not None
    limits = await call.engine.directory.type_limits(call.group.id)
    return extension_allowed(call.group, limits, tree, ext)
