"""CallBlast (type 18), the auto-informer: its items (a message, a list of phones, a
schedule, retries) are called by the CallBlast scheduler (``xvbd/outbound/callblast.py``);
the answered calls run :func:`xvbd.engine.outbound.callblast`.

A caller who reaches the extension in the tree hears the message of its first active item
(or the extension's own), so the tenant can check what the callees will hear, then goes back
up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xvbd.engine.types import Next, SettingsError, register, settings_for, within

if TYPE_CHECKING:
    from xvbd.engine.call import Call
    from xvbd.engine.directory import Tree
    from xvbd.store.ivr import Extension


@dataclass(frozen=True)
class CallBlastSettings:
    message: str = ""   # the message of items that have none of their own
    target: str = ""    # where a person goes after the message, with advanced callblast
                        # ('' = the root menu)
    repeat: int = within(1, 1, 5)  # times the message is played


def settings_of(ext: Extension) -> CallBlastSettings:
    """The extension's settings; the defaults when they are broken (the message still
    plays)."""
    try:
        settings: CallBlastSettings = settings_for(REGISTRY_ENTRY, ext)
        return settings
    except SettingsError:
        return CallBlastSettings()


class CallBlastType:
    name = "CallBlast"
    number = 18
    settings = CallBlastSettings

    async def run(self, call: Call, ext: Extension, settings: Any, tree: Tree) -> Next:
        from xvbd.engine.outbound import play_message

        assert call.user is not None
        items = await call.engine.store.callblast.list_items(call.user.id, ext.id)
        active = [item for item in items if item.status == "active" and item.message]
        if active:
            await play_message(call, active[0].message)
            call.step_data = {"ITEM": active[0].id}
        elif settings.message:
            await play_message(call, settings.message)
        return Next.UP


REGISTRY_ENTRY = register(CallBlastType())
