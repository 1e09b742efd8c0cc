"""The simplest hook, as the original's ``XVBHooks::Skel``: one line to the Asterisk console
when a call starts and one when it stops."""

from __future__ import annotations

from typing import Any


async def start(call: Any) -> None:
    await call.channel.verbose(
        f"Start call with type: {call.call_type} for ac: {call.access_code}")


async def stop(call: Any) -> None:
    duration = call.engine.clock.seconds() - call.started
    await call.channel.verbose(f"Stop call, duration: {duration}")
