"""The demo tenant (``xvbd-admin demo-tenant``): the seed's example user, ready to call.

Public number 613, AccessCode 10001, PIN 911, private DID 100, and an IVR with every
extension type:

    0  greeting menu
    ├─ 1  VoiceMail
    ├─ 2  Date/Time
    ├─ 3  FollowMe to two phones (nobody answers: the voicemail)
    ├─ 4  Schedule: weekdays 9-18 the sub-menu, else the voicemail
    ├─ 5  Company directory (Ivanov 21, Petrova 22)
    ├─ 6  Voting (1 or 2)
    ├─ 7  Queue of two phones (0 leaves for the voicemail)
    ├─ 8  DISA (PIN 1234)
    ├─ 0  Chat-room 1
    └─ 9  sub-menu
          ├─ 1  Date/Time
          ├─ 2  Pause, 2 s
          ├─ 3  a greeting, then back
          ├─ 4  User variable "code" (digits)
          ├─ 5  Stored variable "code" said back
          ├─ 6  Goto If: the caller's "code" 42 -> 9*1, else 9*3
          ├─ 7  Callback request (lands in the main menu)
          ├─ 8  Dtmf2Email
          ├─ 9  MultiDialout to the two phones
          └─ 0  CallBlast: an announcement to the two phones (paused: it calls them only
                once the tenant sets it active and the node has AMI)
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
    await ivr.add_child(user.id, root.id, "4", "Schedule", {
        "rules": [{"days": "12345", "start": "09:00", "end": "18:00", "target": "9"}],
        "default": "1"}, name="Office hours")
    directory = await ivr.add_child(user.id, root.id, "5", "Directory", {}, name="Employees")
    await store.features.add_directory_entry(user.id, directory.id, "21", "Ivanov",
                                             [PHONES[0]])
    await store.features.add_directory_entry(user.id, directory.id, "22", "Petrova",
                                             [PHONES[1]])
    await ivr.add_child(user.id, root.id, "6", "Voting",
                        {"question": "system:demo-enterkeywords", "options": "12"},
                        name="Poll")
    await ivr.add_child(user.id, root.id, "7", "Queue",
                        {"phones": list(PHONES), "exit_digit": "0", "exit_target": "1"},
                        name="Sales queue")
    await ivr.add_child(user.id, root.id, "8", "DISA", {"pin": "1234"}, name="Dial out")
    await ivr.add_child(user.id, root.id, "0", "Conference", {"room": "1"}, name="Chat")
    sub = await ivr.add_child(user.id, root.id, "9", "Playback",
                              {"greeting": "system:demo-moreinfo"}, name="More")
    await ivr.add_child(user.id, sub.id, "1", "DateTime", {}, name="Date and time")
    await ivr.add_child(user.id, sub.id, "2", "Pause", {"seconds": 2}, name="A pause")
    await ivr.add_child(user.id, sub.id, "3", "Playback", {"greeting": "system:demo-thanks"},
                        name="Thanks")
    await ivr.add_child(user.id, sub.id, "4", "UserVar", {"name": "code"}, name="Type a code")
    await ivr.add_child(user.id, sub.id, "5", "DBVar", {"name": "code", "mode": "say"},
                        name="The stored code")
    goto = await ivr.add_child(user.id, sub.id, "6", "GotoIf", {
        "conditions": [{"kind": "var", "name": "code", "value": "42", "target": "9*1"}],
        "default": "9*3"}, name="If the code is 42")
    # Examples of the web types, reached by no key (a Goto If target may name them): the
    # URLs are placeholders for the tenant's own.
    await ivr.add_child(user.id, goto.id, "1", "WebVar", {
        "name": "rate", "url": "https://example.com/rate.json?caller=%CALLERID%",
        "json_path": "rate", "ttl": 300, "fallback": "0"}, name="Today's rate")
    await ivr.add_child(user.id, goto.id, "2", "WebRequest", {
        "url": "https://example.com/notify?did=%DID%&caller=%CALLERID%&code=%VAR:code%",
        "answer": "text", "variable": "notice", "failure": "9*3"}, name="Tell our server")
    await ivr.add_child(user.id, goto.id, "3", "Calendar", {
        "url": "https://example.com/office-hours.ics", "on": "9*1", "off": "9*3",
        "events": [{"keyword": "holiday", "target": "9*3"}]}, name="Office hours calendar")
    await ivr.add_child(user.id, sub.id, "7", "Callback", {"target": ""}, name="Call me back")
    await ivr.add_child(user.id, sub.id, "8", "Dtmf2Email", {}, name="Leave digits")
    await ivr.add_child(user.id, sub.id, "9", "MultiDialout", {"phones": list(PHONES)},
                        name="Ring both")
    blast = await ivr.add_child(user.id, sub.id, "0", "CallBlast",
                                {"message": "system:demo-thanks", "target": "9"},
                                name="Announcement")
    item = await store.callblast.create_item(user.id, blast.id, name="Thanks to the clients",
                                             message="system:demo-thanks",
                                             settings={"retries": 1}, phones=list(PHONES))
    await store.callblast.update_item(user.id, item.id, status="paused")
    return Demo(user, True)
