"""Entry points through the real FastAGI protocol: private DIDs, public numbers with
AccessCode and PIN, the ANYONE entry, SIP domains, locked users, throttled guessing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twisted.logger import formatEvent, globalLogPublisher

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from xvbd.demo import seed_demo
from xvbd.engine.call import RESULTS


def summary(lines: list[str]) -> str:
    found = [line for line in lines if ", TYPE=XVB," in line]
    assert len(found) == 1, lines
    return found[0]


class EntryTests(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        self.logs: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if str(event.get("log_namespace", "")).startswith("xvbd."):
                self.logs.append(f"{event['log_level'].name}: {formatEvent(event)}")
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    async def test_a_private_did_goes_straight_to_its_user(self) -> None:
        await seed_demo(self.store)
        peer = await self.call(Caller(keys=["2"]), args=("100", "10.0.0.1"))
        self.assertEqual(peer.commands[:4], [
            "ANSWER", 'SET VARIABLE __XVB_AC "10001"',
            'SET VARIABLE CHANNEL(language) "en_xvb.EN-Female"',
            'STREAM FILE demo-instruct "0123456789*#"'])
        self.assertFalse(any("GET DATA" in c for c in peer.commands), "no code, no PIN")
        self.assertIn('SAY DATETIME 1285757673 "" "ABdY \'digits/at\' IMp" Europe/Moscow',
                      peer.commands)
        self.assertEqual(peer.variables["XVB_AC"], "10001")
        self.assertEqual(self.result, "OK")
        self.assertTrue(peer.closed_by_server)
        self.assertIn("SUBSCR_ID=1, SYS_COST=0, TYPE=XVB", summary(self.cdr_lines()))

    async def test_a_public_number_asks_code_then_pin(self) -> None:
        await seed_demo(self.store)
        peer = await self.call(Caller(keys=["10001", "911", "2"]), args=("613", "10.0.0.1"))
        self.assertEqual(peer.commands[:5], [
            "ANSWER", 'SET VARIABLE CHANNEL(language) "en_xvb.EN-Female"',
            "GET DATA agent-user 9000 16", "GET DATA agent-pass 9000 16",
            'SET VARIABLE __XVB_AC "10001"'])
        self.assertIn('SAY DATETIME 1285757679 "" "ABdY \'digits/at\' IMp" Europe/Moscow',
                      peer.commands)
        line = summary(self.cdr_lines())
        self.assertIn("ACCESS_CODE=10001, CALLED_ID=613, CALLER_ID=6135550123, ", line)
        self.assertTrue(line.endswith("DATA=DTMF=10001w3 xxxw3 2w1 w7 w7 w7"), line)

    async def test_wrong_code_then_right_code(self) -> None:
        await seed_demo(self.store)
        peer = await self.call(Caller(keys=["55555", "10001", "911", "*"]), args=("613",))
        self.assertEqual(peer.commands[2:5], ["GET DATA agent-user 9000 16",
                                              "GET DATA pbx-invalid 9000 16",
                                              "GET DATA agent-pass 9000 16"])
        self.assertEqual(self.result, "OK")

    async def test_three_wrong_pins_end_the_call_politely(self) -> None:
        await seed_demo(self.store)
        peer = await self.call(Caller(keys=["10001", "1", "2", "3"]), args=("613",))
        self.assertEqual(peer.commands[2:], [
            "GET DATA agent-user 9000 16", "GET DATA agent-pass 9000 16",
            "GET DATA auth-incorrect 9000 16", "GET DATA auth-incorrect 9000 16",
            'STREAM FILE vm-goodbye ""', "HANGUP"])
        self.assertEqual(self.result, "BADPIN")
        line = summary(self.cdr_lines())
        self.assertIn("ACCESS_CODE=10001, CALLED_ID=613", line, "the code tried is kept")
        self.assertIn("SUBSCR_ID=0", line, "the call was not the user's")
        self.assertTrue(line.endswith("DTMF=10001w3 xw3 xw3 xw3, RESULT=BADPIN"),
                        "PINs never reach the CDR")
        (row,) = [r for r in await self.store.cdrs.all(limit=10) if r.type == "XVB"]
        self.assertEqual((row.access_code, row.subscr_id), ("10001", 0),
                         "the operator's CDR list finds the attempts by access code")
        call_id = self.calls[-1].call_id
        pins = [line for line in self.logs if "PIN" in line]
        self.assertEqual(pins, [
            *(f"info: call {call_id} from 6135550123: wrong PIN for 613#10001 (try {n} of 3)"
              for n in (1, 2, 3)),
            f"info: call {call_id} from 6135550123: no right PIN for 613#10001 in 3 tries "
            "(3 wrong, 0 not typed); the line is put down"])
        self.assertFalse(any(digit in line.replace(call_id, "") for line in pins
                             for digit in ("code=1,", "911")))  # (a random id may hold 911)

    async def test_a_spoofed_caller_id_never_skips_the_pin(self) -> None:
        await seed_demo(self.store)
        peer = await self.call(Caller(keys=["10001", None, None, None]), args=("613",),
                               callerid="613")
        self.assertEqual(peer.commands.count("GET DATA auth-incorrect 9000 16"), 2)
        self.assertEqual(self.result, "BADPIN")
        self.assertEqual([line for line in self.logs if "PIN" in line], [
            f"info: call {self.calls[-1].call_id} from 613: no right PIN for 613#10001 in 3 "
            "tries (0 wrong, 3 not typed); the line is put down"])

    async def test_a_caller_who_hangs_up_before_being_served_abandoned_the_call(self) -> None:
        """Not NOUSER: a hang-up during the code, the PIN or the answer, in each of the
        three ways Asterisk says it (without AGISIGHUP nothing says it but the -1)."""
        await seed_demo(self.store)
        for mode in ("sighup", "exit", "nosighup"):
            for keys, left_in, number, code in (
                    ([], "^GET DATA agent-user", "613", ""),
                    (["10001"], "^GET DATA agent-pass", "613", "10001"),
                    (["10001", "5"], "^GET DATA auth-incorrect", "613", "10001"),
                    ([], "^ANSWER", "100", "")):
                with self.subTest(mode=mode, left_in=left_in):
                    peer = await self.call(Caller(keys=keys, hangup_on=left_in,
                                                  hangup_mode=mode), args=(number,))
                    self.assertEqual(self.result, "ABANDONED", (mode, left_in))
                    # GET DATA and ANSWER answer -1 only on a dead channel: nobody is
                    # left for the dialplan to serve, whether HANGUP was said or not.
                    self.assertNotIn("XVB_RESULT", peer.variables, (mode, left_in))
                    line = summary(self.cdr_lines()[-1:])
                    self.assertIn(f"ACCESS_CODE={code}, CALLED_ID={number}, ", line)
                    self.assertTrue(line.endswith(", RESULT=ABANDONED"), line)

    def test_every_result_is_documented_and_only_failures_hear_the_apology(self) -> None:
        conf = (Path(__file__).parents[1] / "etc" / "asterisk" / "extensions.conf").read_text()
        after = conf.split("[xvb-after-agi]", 1)[1].split("\n[", 1)[0]
        comment = " ".join(line[1:] for line in after.splitlines() if line.startswith(";"))
        for word in (*RESULTS, "NOSCRIPT"):
            self.assertRegex(comment, rf"\b{word}\b", f"{word} is explained to the operator")
        (down,) = [line for line in after.splitlines() if not line.startswith(";") and
                   "XVB_RESULT}\" =" in line and line.endswith("?down)")]
        apology = set(re.findall(r'"\$\{XVB_RESULT\}" = "([A-Z]*)"', down))
        self.assertEqual(apology, {"", "NOSCRIPT", "ERROR"}, "ABANDONED, BADPIN … hang up")

    async def test_guessing_a_pin_is_throttled_across_calls(self) -> None:
        await seed_demo(self.store)
        for n in range(2):  # 3 + 2 = 5 wrong PINs, from callers with different numbers
            await self.call(Caller(keys=["10001", "0", "1", "2"][: 4 - n]), args=("613",),
                            callerid=f"70000{n}")
        peer = await self.call(Caller(keys=["10001", "911"]), args=("613",), callerid="700009")
        self.assertNotIn("GET DATA agent-pass 9000 16", peer.commands,
                         "even the right PIN is not asked for while the code is throttled")
        self.assertIn('STREAM FILE please-try-call-later ""', peer.commands)
        self.assertEqual(self.result, "THROTTLED")
        self.clock.advance(901)
        peer = await self.call(Caller(keys=["10001", "911", "*"]), args=("613",))
        self.assertEqual(self.result, "OK", "the window passes")

    async def test_the_right_pin_forgets_earlier_wrong_ones(self) -> None:
        """From one source (the trunk PJSIP/gw, whatever the caller ids)."""
        await seed_demo(self.store)
        await self.call(Caller(keys=["10001", "1", "2", "3"]), args=("613",), callerid="1")
        await self.call(Caller(keys=["4", "911", "*"]), script="sip",
                        args=("sip:10001@613.comp.ru",), callerid="2")
        self.assertEqual(self.result, "OK", "4 wrong PINs, then the right one over SIP")
        await self.call(Caller(keys=["10001", "5", "911", "*"]), args=("613",), callerid="3")
        self.assertEqual(self.result, "OK", "the 5th wrong PIN would have locked it out")
        self.assertEqual(await self.store.lockouts.current(self.clock.seconds()), [])

    async def test_one_caller_guessing_codes_is_throttled(self) -> None:
        await seed_demo(self.store)
        for _ in range(4):  # 3 wrong codes a call; the 10th failure closes the door
            await self.call(Caller(keys=["1", "2", "3", "4"]), args=("613",), callerid="666")
        peer = await self.call(Caller(keys=["10001", "911"]), args=("613",), callerid="666")
        self.assertEqual(self.result, "THROTTLED")
        self.assertNotIn("GET DATA agent-user 9000 16", peer.commands)

    async def test_anyone_codes_work_on_every_public_number(self) -> None:
        user = await self.store.accounts.create_user("ANYONE", "20001", 1,
                                                     language="xvb.RU-Female")
        await self.store.ivr.create_root(user.id, "DateTime", {})
        await self.store.accounts.set_did_language("ANYONE", "xvb.RU-Female")
        peer = await self.call(Caller(keys=["20001"]), args=("4951234567",))
        self.assertEqual(peer.commands[1], 'SET VARIABLE CHANNEL(language) "ru_xvb.RU-Female"')
        self.assertEqual(peer.variables["XVB_AC"], "20001")
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))

    async def test_a_locked_user_hears_a_message_not_the_ivr(self) -> None:
        demo = await seed_demo(self.store)
        await self.store.accounts.update_user(demo.user.id, status="locked")
        peer = await self.call(Caller(), args=("100",))
        self.assertEqual(peer.commands[-2:], ['STREAM FILE ss-noservice ""', "HANGUP"])
        self.assertEqual(self.result, "LOCKED")
        self.assertFalse(any("demo-instruct" in c for c in peer.commands))
        self.assertIn("SUBSCR_ID=1", summary(self.cdr_lines()))

    async def test_sip_domain_routing_both_examples(self) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        first = await acc.create_user("subdomain", "123", 1)
        await ivr.create_root(first.id, "DateTime", {})
        second = await acc.create_user("subdom", "123", 1)
        root = await ivr.create_root(second.id, "Playback", {"greeting": "system:hello"})
        await ivr.add_child(second.id, root.id, "10", "DateTime", {"timezone": "UTC"})
        peer = await self.call(Caller(), script="sip",
                               args=("<sip:123@subdomain.comp.ru>;tag=1", "10.0.0.1"))
        self.assertEqual(peer.variables["XVB_AC"], "123")
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))
        peer = await self.call(Caller(), script="sip",
                               args=("sip:10@123.subdom.somecomp.com", "10.0.0.1"))
        self.assertEqual(peer.commands[3], 'SAY DATETIME 1285757675 "" "ABdY \'digits/at\' IMp" UTC',
                         "the extension in the user part is reached straight away")
        self.assertEqual(peer.commands[4], 'STREAM FILE hello "0123456789*#"',
                         "then the menu above it")
        lines = self.cdr_lines()
        self.assertIn("CALLED_ID=subdom*123", summary(lines[len(lines) // 2:]))

    async def test_a_sip_call_for_nobody(self) -> None:
        peer = await self.call(Caller(), script="sip", args=("sip:1@elsewhere.org",))
        self.assertEqual(peer.commands[1:], ['STREAM FILE ss-noservice ""', "HANGUP"])
        self.assertEqual(self.result, "NOUSER")

    async def test_pstn_gateway_rule_for_the_caller_id(self) -> None:
        await seed_demo(self.store)
        await self.call(Caller(keys=["*"]), args=("100", "10.1.5.22"), callerid="2501")
        await self.call(Caller(keys=["*"]), args=("100", "10.0.0.1:5060"), callerid="2501")
        await self.call(Caller(keys=["*"]), args=("100", "10.1.5.22", "pbx.example.com"),
                        callerid="2501")
        callers = re.findall(r"CALLER_ID=([^,]*), CALL_ID=\w+, CALL_TYPE", "\n".join(
            self.cdr_lines()))
        self.assertEqual(callers, ["2501@10.1.5.22", "2501", "2501@pbx.example.com"])

    async def test_an_unknown_script(self) -> None:
        peer = await self.call(Caller(), script="nosuch")
        self.assertEqual(peer.commands, ['SET VARIABLE XVB_RESULT "NOSCRIPT"'])
        self.assertTrue(peer.closed_by_server)
        self.assertEqual(self.cdr_lines(), [])

    async def test_a_user_with_no_ivr_yet(self) -> None:
        user = await self.store.accounts.create_user("613", "10002", 1)
        await self.store.accounts.assign_did("102", user.id)
        peer = await self.call(Caller(), args=("102",))
        self.assertIn('STREAM FILE ss-noservice ""', peer.commands)
        self.assertEqual(self.result, "NOEXT")


EntryOnSQLite, EntryOnMariaDB = on_both_backends(EntryTests)
