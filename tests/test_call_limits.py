"""The group's limits at call time: concurrent calls per group and per user, the longest
call, types a group does not allow; hooks; CDR lines byte for byte."""

from __future__ import annotations

import re

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import T0, EngineCase


class LimitTests(EngineCase):
    async def tenant(self, user_limit: int = 0, **group: object) -> int:
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1, dialout_context="xvb-dialout", **group)).id
        user = await acc.create_user("613", "10001", gid, max_inbound_calls=user_limit)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        await ivr.add_child(user.id, root.id, "1", "VoiceMail", {})
        await ivr.add_child(user.id, root.id, "2", "DateTime", {})
        await ivr.add_child(user.id, root.id, "3", "FollowMe", {"phones": ["79001"]})
        return gid

    async def _second_call_while_the_first_holds(self) -> tuple[str, str]:
        first = await self.start(Caller(keys=[None], hold_on="^WAIT FOR DIGIT"), args=("100",))
        await first.holding
        second = await self.call(Caller(keys=["*"]), args=("100",), wait_idle=False)
        first.release()
        await first.done
        await self.factory.when_idle()
        third = await self.call(Caller(keys=["*"]), args=("100",))
        self.assertEqual(self.calls[2].result, "OK", "the slot is free again")
        self.assertEqual(third.commands[-1], "HANGUP")
        return self.calls[1].result, second.commands[-2]

    async def test_the_groups_concurrent_calls(self) -> None:
        await self.tenant(max_inbound_calls=1)
        self.assertEqual(await self._second_call_while_the_first_holds(),
                         ("BUSY", 'STREAM FILE tt-allbusy ""'))

    async def test_the_users_concurrent_calls(self) -> None:
        await self.tenant(user_limit=1, max_inbound_calls=10)
        self.assertEqual(await self._second_call_while_the_first_holds(),
                         ("BUSY", 'STREAM FILE tt-allbusy ""'))

    async def test_no_limit_means_no_limit(self) -> None:
        await self.tenant()
        result, _ = await self._second_call_while_the_first_holds()
        self.assertEqual(result, "OK")

    async def test_the_longest_call_ends_politely(self) -> None:
        await self.tenant(max_call_duration=10)
        peer = await self.call(Caller(), args=("100",))
        self.assertEqual(peer.commands.count("WAIT FOR DIGIT 5000"), 2)
        self.assertEqual(peer.commands[-2:], ['STREAM FILE vm-goodbye ""', "HANGUP"])
        self.assertEqual(self.result, "TIMEUP")

    async def test_time_left_bounds_recordings_and_dials(self) -> None:
        await self.tenant(max_call_duration=60, max_message_duration=600)
        peer = await self.call(Caller(keys=["3", "1"], dial=["NOANSWER"]), args=("100",))
        dial = next(c for c in peer.commands if c.startswith("EXEC Dial"))
        self.assertEqual(dial, 'EXEC Dial "Local/79001@xvb-dialout,40,L(57000)"')
        record = next(c for c in peer.commands if c.startswith("RECORD FILE"))
        self.assertIn(' wav "#" 12000 0 BEEP', record, "what is left of the minute")

    async def test_a_type_the_group_does_not_allow(self) -> None:
        gid = await self.tenant()
        await self.store.accounts.set_type_limit(gid, "DateTime", 0)
        peer = await self.call(Caller(keys=["2", "*"]), args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands)
        self.assertFalse(any(c.startswith("SAY DATETIME") for c in peer.commands))

    async def test_a_type_limit_lets_the_first_n_work(self) -> None:
        gid = await self.tenant()
        user = await self.store.accounts.find_user("613", "10001")
        root = await self.store.ivr.root(user.id)
        await self.store.ivr.add_child(user.id, root.id, "7", "DateTime", {"timezone": "UTC"})
        await self.store.accounts.set_type_limit(gid, "DateTime", 1)
        peer = await self.call(Caller(keys=["7", "2", "*"]), args=("100",))
        says = [c for c in peer.commands if c.startswith("SAY DATETIME")]
        self.assertEqual(len(says), 1, "extension 2 is the first DateTime; 7 is beyond the 1")
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands)

    async def test_the_skel_hook_speaks_at_start_and_stop(self) -> None:
        await self.tenant(hooks="skel")
        peer = await self.call(Caller(keys=["*"]), args=("100",))
        verbose = [c for c in peer.commands if c.startswith("VERBOSE")]
        self.assertEqual(verbose[0], 'VERBOSE "Start call with type: incoming for ac: 10001" 1')
        self.assertRegex(verbose[1], r'^VERBOSE "Stop call, duration: [\d.]+" 1$')
        self.assertLess(peer.commands.index(verbose[0]),
                        peer.commands.index('STREAM FILE welcome "0123456789*#"'))

    async def test_a_failing_hook_is_logged_and_the_call_goes_on(self) -> None:
        await self.tenant(hooks="tests.support.failing_hook, nosuchhook")
        peer = await self.call(Caller(keys=["2", "*"]), args=("100",))
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))
        self.assertEqual(self.result, "OK")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertEqual(len(self.flushLoggedErrors(ModuleNotFoundError)), 1)

    async def test_cdr_lines_byte_for_byte(self) -> None:
        await self.tenant()
        await self.call(Caller(keys=["2", None, None, None]), args=("100", "10.1.5.22"),
                        callerid="2501")
        lines = self.cdr_lines()
        call_id = re.search(r"CALL_ID=(\w+)", lines[0])[1]
        common = (f"ACCESS_CODE=10001, CALLED_ID=100, CALLER_ID=2501@10.1.5.22, "
                  f"CALL_ID={call_id}")
        self.assertEqual(lines, [
            f"{common}, CREATE_TIMESTAMP={T0 + 1}, EXT_NUMBER=0, SERVER_ID=FCC-NN, "
            f"START_TIMESTAMP={T0}, STOP_TIMESTAMP={T0 + 1}, SUBSCR_ID=1, TYPE=Playback",
            f"{common}, CREATE_TIMESTAMP={T0 + 4}, EXT_NUMBER=2, SERVER_ID=FCC-NN, "
            f"START_TIMESTAMP={T0 + 1}, STOP_TIMESTAMP={T0 + 4}, SUBSCR_ID=1, TYPE=DateTime, "
            f"DATA=TZ=UTC",
            f"{common}, CREATE_TIMESTAMP={T0 + 27}, EXT_NUMBER=0, SERVER_ID=FCC-NN, "
            f"START_TIMESTAMP={T0 + 4}, STOP_TIMESTAMP={T0 + 27}, SUBSCR_ID=1, TYPE=Playback",
            f"{common}, CALL_TYPE=incoming, COST=0, CREATE_TIMESTAMP={T0 + 27}, CURRENCY_ID=1, "
            f"PROCESS_TIMESTAMP={T0 + 27}, SERVER_ID=FCC-NN, START_TIMESTAMP={T0}, "
            f"STOP_TIMESTAMP={T0 + 27}, SUBSCR_ID=1, SYS_COST=0, TYPE=XVB, "
            f"DATA=DTMF=2w1 w7 w7 w7",
        ])
        rows = sorted(await self.store.cdrs.for_user(1), key=lambda r: r.record_id)
        self.assertEqual([r.type for r in rows], ["Playback", "DateTime", "Playback", "XVB"])
        self.assertEqual(rows[-1].data, "DTMF=2w1 w7 w7 w7")

    async def test_a_caller_id_cannot_forge_cdr_fields(self) -> None:
        await self.tenant()
        await self.call(Caller(keys=["*"]), args=("100", "10.0.0.1"),
                        callerid="1, TYPE=XVB, SUBSCR_ID=99")
        line = self.cdr_lines()[-1]
        self.assertIn("CALLER_ID=1%2C TYPE=XVB%2C SUBSCR_ID=99, ", line)
        self.assertEqual(line.count(", TYPE="), 1)


LimitsOnSQLite, LimitsOnMariaDB = on_both_backends(LimitTests)


class VerboseTests(EngineCase):
    async def test_full_access_codes_get_verbose_logs_of_their_calls(self) -> None:
        from twisted.logger import globalLogPublisher

        from xvbd.logs import LEVEL_GATE

        events: list[dict[str, object]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.addCleanup(LEVEL_GATE.configure, LEVEL_GATE.level, LEVEL_GATE.full)
        LEVEL_GATE.configure(1 | 2 | 4, frozenset({"10001"}))
        acc, ivr = self.store.accounts, self.store.ivr
        for code, did in (("10001", "100"), ("10002", "102")):
            user = await acc.create_user("613", code, 1)
            await acc.assign_did(did, user.id)
            root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
            await ivr.add_child(user.id, root.id, "2", "DateTime", {})
            await self.call(Caller(keys=["2", "*"]), args=(did,))
        verbose = [e for e in events if e.get("xvb_kind") in ("verbose", "dtmf")]
        self.assertTrue(verbose, "the FULL access code's call is logged in detail")
        self.assertEqual({e["access_code"] for e in verbose}, {"10001"})
        self.assertIn("extension 2 (DateTime)", " ".join(
            str(e["log_format"]).format(**e) for e in verbose))


VerboseOnSQLite, VerboseOnMariaDB = on_both_backends(VerboseTests)
