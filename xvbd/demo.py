"""The demo tenant (``xvbd-admin demo-tenant``): the seed's example user, ready to call.

Public number 613, AccessCode 10001, PIN 911, private DID 100, and a small IVR:

    0  greeting menu
    ├─ 1  VoiceMail
    ├─ 2  Date/Time
    ├─ 3  FollowMe to two phones (nobody answers: the voicemail)
    └─ 9  sub-menu
          ├─ 1  Date/Time
          └─ 3  a greeting, then back
"""

from __future__ import annotations

from dataclasses import dataclass

from xvbd.store import Store
from xvbd.store.accounts import User

VOICE_NUMBER, ACCESS_CODE, PIN, DID = "613", "10001", "911", "100"
PHONES = ("79001234567", "79007654321")


@dataclass(frozen=True)
class Demo:
    user: User
    created: bool


async def seed_demo(store: Store, *, group_id: int = 1) -> Demo:
    """Create the demo tenant, or return the one already there."""
    existing = await store.accounts.find_user(VOICE_NUMBER, ACCESS_CODE)
    if existing is not None:
        return Demo(existing, False)
    user = await store.accounts.create_user(
        VOICE_NUMBER, ACCESS_CODE, group_id, pin=PIN, name="Demo tenant",
        email="demo@localhost", language="xvb.EN-Female", timezone="Europe/Moscow")
    await store.accounts.assign_did(DID, user.id)
    await store.accounts.set_did_language(VOICE_NUMBER, "xvb.EN-Female")
    ivr = store.ivr
    root = await ivr.create_root(user.id, "Playback", {"greeting": "system:demo-instruct"},
                                 name="Main menu")
    await ivr.add_child(user.id, root.id, "1", "VoiceMail", {}, name="Leave a message")
    await ivr.add_child(user.id, root.id, "2", "DateTime", {}, name="Date and time")
    await ivr.add_child(user.id, root.id, "3", "FollowMe",
                        {"phones": list(PHONES), "no_answer": "1"}, name="Find me")
    sub = await ivr.add_child(user.id, root.id, "9", "Playback",
                              {"greeting": "system:demo-moreinfo"}, name="More")
    await ivr.add_child(user.id, sub.id, "1", "DateTime", {}, name="Date and time")
    await ivr.add_child(user.id, sub.id, "3", "Playback", {"greeting": "system:demo-thanks"},
                        name="Thanks")
    return Demo(user, True)
