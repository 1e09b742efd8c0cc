"""Calls out of a call: through the tenant's group dialout context only, to numbers of the
DTMF alphabet only, carrying the tenant's access code (``XVB_AC``, set for every call)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from xvbd.logs import logger

if TYPE_CHECKING:
    from xvbd.engine.call import Call

log = logger("xvbd.dialing")

PHONE = re.compile(r"[0-9*#+]{1,32}")
BRIDGE_SECONDS = 3600  # what a prepaid call holds before it is bridged, when it can


def valid_phone(number: str) -> bool:
    return bool(PHONE.fullmatch(number))


async def dial(call: Call, phones: list[str], ring: int, context: str = "") -> str:
    """Ring ``phones`` at once through the group's dialout context (or ``context``) for
    ``ring`` seconds (0: ``[TIMEOUT] DIALOUT``); DIALSTATUS."""
    assert call.group is not None
    context = context or call.group.dialout_context
    ring = ring or call.engine.settings.timeout.dialout
    if call.charge is not None:  # hold what a long talk needs, if the balance has it
        await call.charge.ensure(ring + BRIDGE_SECONDS)
    ring = max(1, int(min(ring, call.time_left())))
    target = "&".join(f"Local/{phone}@{context}" for phone in phones)
    options = ""
    if call.time_left() != math.inf:
        options = f"L({max(1000, int(call.time_left() * 1000))})"
    await call.channel.exec_("Dial", target, ring, options)
    return (await call.channel.get_variable("DIALSTATUS")) or "UNKNOWN"


def limited_phones(phones: tuple[str, ...], limit: int, where: str) -> list[str]:
    """The phones a group lets an extension ring (its FollowMe & Queues limit)."""
    chosen = list(phones)
    if 0 <= limit < len(chosen):
        log.warn("{where} lists {n} phones; the group allows {limit}", where=where,
                 n=len(chosen), limit=limit)
        chosen = chosen[:limit]
    return chosen
