"""Guessing of access codes and PINs, counted by what the caller cannot change.

A call's *source* is where it came from as Asterisk saw it, never what its caller id says:

* the SIP peer's address (the dialplan's ``XVB_PEER``, from ``CHANNEL(pjsip,remote_addr)``)
  without its port; an IPv6 peer by its /64, which one host can fill at will;
* from a gateway of ``[COMMON] PSTN_GW`` the gateway *and* the caller id: the gateway is
  shared by everyone on the telephone network and vouches for the number, so locking the
  gateway would lock every caller out (the address alone would be a lockout anyone could
  set off for everyone);
* without an address (a Local channel, DAHDI, a PJSIP channel the dialplan did not look
  at) the channel technology and endpoint: ``PJSIP/trunk-0000001`` is ``PJSIP/trunk``,
  ``Local/613@from-provider-00000001;2`` is ``Local/613@from-provider``.

Wrong codes and PINs from one source, on any number, lock that source out after
``[ATTEMPTS] SOURCE_FAILURES``; wrong PINs of one account (or of one extension's PIN) from
one source lock that source out of that PIN after ``PIN_FAILURES``.  A lockout is a row of
``store.lockouts`` (read by every xvbd, listed on ``/ai/lockouts``), logged once as a WARN
and journaled; a source locked out again soon is locked out for longer.

No lockout is per account or per number alone: an attacker must never be able to lock the
owner out.  Against guessing from many sources at once, an account with
``GUARD_FAILURES`` wrong PINs (or a public number with as many wrong codes) from all
sources together gives callers from sources that never got in there one try per call,
while the sources it was reached from before (remembered :data:`KNOWN_FOR`) are not
touched.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import TYPE_CHECKING

from xvbd.engine import prompts
from xvbd.logs import logger
from xvbd.store.lockouts import Lockout, describe

if TYPE_CHECKING:
    from xvbd.engine.call import Call

log = logger("xvbd.guard")

#: How long a source that got into an account (or through a public number) is known there.
KNOWN_FOR = 90 * 86400.0

_UNIQUE = re.compile(r"-[0-9a-fA-F]+$")  # Asterisk's suffix that makes a channel name unique


def channel_source(channel: str) -> str:
    """``PJSIP/trunk-0000001`` -> ``PJSIP/trunk``; ``Local/613@ctx-00000001;2`` ->
    ``Local/613@ctx``; ``DAHDI/1-1`` -> ``DAHDI/1``."""
    name = channel.strip().split(";", 1)[0]
    if "/" not in name:
        return name or "unknown channel"
    return _UNIQUE.sub("", name) or name


def address_source(peer: str) -> str:
    """The peer's address without its port (``[2001:db8::1]:5060``, ``192.0.2.7:5060``);
    an IPv6 address by its /64; '' when ``peer`` is not an address."""
    text = peer.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def source_of(channel: str, peer: str, callerid: str, from_gateway: bool) -> str:
    """The call's source (see the module's text); ``from_gateway``: ``peer`` is one of
    ``[COMMON] PSTN_GW``."""
    address = address_source(peer)
    if not address:
        return channel_source(channel)
    if from_gateway:
        return f"{address} caller {callerid or 'unknown'}"
    return address


def account_target(voice_number: str, access_code: str) -> str:
    return f"{voice_number}#{access_code}"


def _key(kind: str, name: str) -> str:
    return f"authfail:{kind}:{name}"


async def refused(call: Call, target: str = "") -> bool:
    """True (the caller told to try later, ``call.result`` THROTTLED) when the call's
    source is locked out of ``target`` (or of everything) now."""
    lockout = await call.engine.store.lockouts.active(call.source, target, call.now())
    if lockout is None:
        return False
    log.info("call {call_id} from {source} (caller id {caller}) refused: {what} is locked "
             "out until {until} (lockout {id})", source=call.source, caller=call.caller_id,
             what=lockout.what, until=_when(lockout.ends_at), id=lockout.id,
             **call.log_fields())
    await _tell(call)
    return True


async def failed(call: Call, target: str = "", *, user_id: int | None = None,
                 guard: str = "") -> bool:
    """Count one wrong code (``target`` '') or PIN (``target`` the account or extension)
    from the call's source, and on ``guard`` (the account or number, all sources together).
    True when this one locked the source out: the caller is told, the call is done."""
    attempts = call.engine.settings.attempts
    counters = call.engine.counters
    window = attempts.failure_window
    source = call.source
    if guard:
        together = await counters.hit(guard, window)
        if together == attempts.guard_failures:
            log.warn("{guard}: {n} failures from all sources within {min:g} min; callers from "
                     "sources that never got in there now get one try per call (those that "
                     "did are not touched). Nothing to do; the lockouts of single sources are "
                     "on /ai/lockouts.", guard=guard.removeprefix("authfail:"),
                     n=together, min=window / 60)
    from_source = await counters.hit(_key("source", source), window)
    at_target = await counters.hit(_key("pin", f"{target}@{source}"), window) if target else 0
    if from_source == attempts.source_failures:
        await counters.reset(_key("source", source))
        if target:
            await counters.reset(_key("pin", f"{target}@{source}"))
        await _lock(call, "", None, from_source)
        return True
    if target and at_target == attempts.pin_failures:
        await counters.reset(_key("pin", f"{target}@{source}"))
        await _lock(call, target, user_id, at_target)
        return True
    return False


async def passed(call: Call, target: str, known: str) -> None:
    """The right PIN (or code) from the call's source: its wrong tries at ``target`` are
    forgotten (not the source's others), and the source is known at ``known``."""
    counters = call.engine.counters
    if target:
        await counters.reset(_key("pin", f"{target}@{call.source}"))
    await counters.mark(f"known:{known}@{call.source}", KNOWN_FOR)


async def slowed(call: Call, guard: str, known: str) -> bool:
    """Whether the call gets one try only: ``guard`` has had many failures lately and the
    call's source never got in at ``known``."""
    counters = call.engine.counters
    return (await counters.hits(guard, call.engine.settings.attempts.failure_window) >=
            call.engine.settings.attempts.guard_failures and
            not await counters.marked(f"known:{known}@{call.source}"))


async def _lock(call: Call, target: str, user_id: int | None, failures: int) -> None:
    attempts = call.engine.settings.attempts
    lockout = await call.engine.store.lockouts.lock(
        source=call.source, target=target, user_id=user_id, called_id=call.called_id,
        caller_id=call.env.callerid, failures=failures, first=attempts.lockout,
        longest=attempts.lockout_max, now=call.now())
    _warn(call, lockout)
    await _tell(call)


def _warn(call: Call, lockout: Lockout) -> None:
    log.warn("lockout {id}: {line}, {length}; the last try was call {call_id} to {called} "
             "(caller id {caller}). A source that keeps failing is locked out longer each "
             "time. If it is a customer's own phone system, lift it on the operator's web "
             "(Lockouts, /ai/lockouts); otherwise nothing to do.", id=lockout.id,
             line=describe(lockout), length=_length(lockout.ends_at - lockout.started_at),
             called=call.called_id, caller=call.env.callerid or "unknown",
             **call.log_fields())


async def _tell(call: Call) -> None:
    """Try later; a call not yet anyone's ends THROTTLED (one that is keeps its result)."""
    if call.user is None:
        call.result = "THROTTLED"
    await call.say_goodbye(prompts.TRY_LATER)


def _when(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _length(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
