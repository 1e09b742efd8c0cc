"""The caller hangs up in the middle of every kind of command, in each of the three ways
Asterisk reports it: the stop work (CDR summary, counters) runs exactly once and xvbd
closes the socket itself."""

from __future__ import annotations

import itertools
import re

from tests.peers.agi import DEAD_OK, Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase

SCENARIOS = [  # (the command the caller leaves in, the keys pressed before, called number)
    ("^ANSWER", [], "100"),
    ("^SET VARIABLE __XVB_AC", [], "100"),
    ("^STREAM FILE welcome", [], "100"),
    ("^WAIT FOR DIGIT", [None], "100"),
    ("^GET DATA agent-user", [], "613"),
    ("^GET DATA agent-pass", ["10001"], "613"),
    ("^RECORD FILE", ["1"], "100"),
    ("^EXEC Dial", ["3"], "100"),
    ("^SAY DATETIME", ["2"], "100"),
    ("^STREAM FILE vm-goodbye", [None, None, None], "100"),
]
MODES = ["sighup", "exit", "nosighup"]


class HangupTests(EngineCase):
    async def test_hang_up_anywhere(self) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        group = await acc.create_group("g", 1, dialout_context="xvb-dialout", hooks="skel",
                                       max_inbound_calls=5)
        user = await acc.create_user("613", "10001", group.id, pin="911",
                                     max_inbound_calls=5)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        await ivr.add_child(user.id, root.id, "1", "VoiceMail", {})
        await ivr.add_child(user.id, root.id, "2", "DateTime", {})
        await ivr.add_child(user.id, root.id, "3", "FollowMe", {"phones": ["79001"]})
        summaries = 0
        for (pattern, keys, number), mode in itertools.product(SCENARIOS, MODES):
            with self.subTest(command=pattern, mode=mode):
                peer = await self.call(Caller(keys=list(keys), hangup_on=pattern,
                                              hangup_mode=mode), args=(number,))
                left_in = next(i for i, c in enumerate(peer.commands)
                               if re.search(pattern, c))
                # Only the question "is the caller still there?" may follow (a -1 is
                # also what a missing file gets), and what a dead channel still takes;
                # without AGISIGHUP nothing says HANGUP: the next command finds out.
                after = [c for c in peer.commands[left_in + 1:]
                         if not c.startswith(DEAD_OK) and c != "CHANNEL STATUS"]
                self.assertLessEqual(len(after), 1 if mode == "nosighup" else 0,
                                     f"commands after the hang-up: {after}")
                self.assertEqual(peer.closed_by_server, mode != "exit")
                lines = self.cdr_lines()
                self.assertEqual(sum(", TYPE=XVB," in line for line in lines), summaries + 1)
                summaries += 1
                self.assertEqual(await self.counters.current(f"calls:group:{group.id}"), 0)
                self.assertEqual(await self.counters.current(f"calls:user:{user.id}"), 0)
                self.assertEqual(self.factory.sessions, set())
        stored = await self.store.cdrs.all(limit=1000)
        self.assertEqual(len([r for r in stored if r.type == "XVB"]), summaries,
                         "the DB sink has every summary too")

    async def test_the_caller_ends_an_answered_call_and_its_record_says_answered(self) -> None:
        """Asterisk answers the Dial with -1 and says HANGUP in the same breath; the
        DIALSTATUS asked for next (a dead channel still answers it) is still read."""
        acc, ivr = self.store.accounts, self.store.ivr
        group = await acc.create_group("g", 1, dialout_context="xvb-dialout")
        user = await acc.create_user("613", "10001", group.id)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        await ivr.add_child(user.id, root.id, "9", "MultiDialout", {"phones": ["79001"]})
        peer = await self.call(Caller(keys=["9"], dial=["ANSWER"], hangup_on="^EXEC Dial"),
                               args=("100",))
        self.assertIn("GET VARIABLE DIALSTATUS", peer.commands)
        line = next(x for x in self.cdr_lines() if "TYPE=MultiDialout" in x)
        self.assertIn("STATUS=ANSWER", line)


HangupsOnSQLite, HangupsOnMariaDB = on_both_backends(HangupTests)
