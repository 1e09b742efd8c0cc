"""The rest of the extension types through the real protocol: each one's behaviour, its
group limit, and its CDR line byte for byte (the clock is the test's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import T0, EngineCase
from xvbd.engine.types.queue import exit_context

# 2010-09-29 10:54:32 UTC is a Wednesday: 14:54 in Moscow (UTC+4 in 2010).


class MoreTypesTests(EngineCase):
    maxDiff = None
    async def tenant(self, children: dict[str, tuple[str, dict[str, Any]]],
                     **group: Any) -> int:
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1, dialout_context="xvb-dialout",
                                      conference_context="xvb-conf", **group)).id
        user = await acc.create_user("613", "10001", gid, timezone="Europe/Moscow")
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        self.ext: dict[str, Any] = {}
        for number, (kind, settings) in children.items():
            parent = root
            if "*" in number:
                parent = self.ext[number.rsplit("*", 1)[0]]
            self.ext[number] = await ivr.add_child(user.id, parent.id,
                                                   number.rsplit("*", 1)[-1], kind, settings)
        self.user_id = user.id
        return gid

    def line(self, type_name: str, nth: int = 0) -> str:
        lines = [line for line in self.cdr_lines() if f", TYPE={type_name}" in line]
        return re.sub(r"CALL_ID=\w+", "CALL_ID=X", lines[nth])

    def expect(self, ext: str, type_name: str, start: int, stop: int, data: str = "") -> str:
        line = (f"ACCESS_CODE=10001, CALLED_ID=100, CALLER_ID=6135550123, CALL_ID=X, "
                f"CREATE_TIMESTAMP={T0 + stop}, EXT_NUMBER={ext}, SERVER_ID=FCC-NN, "
                f"START_TIMESTAMP={T0 + start}, STOP_TIMESTAMP={T0 + stop}, SUBSCR_ID=1, "
                f"TYPE={type_name}")
        return line + (f", DATA={data}" if data else "")

    # ------------------------------------------------------------------ schedule

    async def test_schedule_by_time_day_and_holiday(self) -> None:
        await self.tenant({
            "1": ("Schedule", {"rules": [
                {"days": "12345", "start": "09:00", "end": "13:00", "target": "7"},
                {"days": "3", "start": "14:00", "end": "15:00", "target": "8"},
                {"days": "3", "start": "22:00", "end": "06:00", "target": "7"}],
                "default": "7", "holidays": ["12-31"], "holiday_target": "7"}),
            "7": ("DateTime", {"timezone": "UTC"}),
            "8": ("DateTime", {"timezone": "Asia/Tokyo"})})
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        self.assertIn("Asia/Tokyo", next(c for c in peer.commands if c.startswith("SAY")))
        self.assertEqual(self.line("Schedule"),
                         self.expect("1", "Schedule", 1, 1, "MATCH=RULE=2, TARGET=8"))

    def test_schedule_rules_midnight_dst_and_holidays(self) -> None:
        from xvbd.engine.types import read_settings
        from xvbd.engine.types.schedule import ScheduleSettings, choose
        from xvbd.engine.when import local_time

        s = read_settings(ScheduleSettings, {"rules": [
            {"days": "5", "start": "22:00", "end": "06:00", "target": "night"},
            {"days": "1234567", "start": "02:30", "end": "02:59", "target": "early"}],
            "default": "day", "holidays": ["2027-03-28"], "holiday_target": "off"})
        berlin = "Europe/Berlin"
        saturday_3am = 1_800_000_000 - 1_800_000_000 % 86400 + 86400 + 2 * 3600  # UTC
        moment = local_time(saturday_3am, berlin)
        self.assertEqual((moment.isoweekday(), moment.hour), (6, 3))
        self.assertEqual(choose(s, moment, -1), ("RULE=1", "night"), "Friday's night")
        self.assertEqual(choose(s, local_time(saturday_3am + 4 * 3600, berlin), -1),
                         ("DEFAULT", "day"))
        # 2027-03-28 is the spring DST change in Berlin (02:00 -> 03:00) and a holiday.
        self.assertEqual(choose(s, local_time(1_806_195_600, berlin), -1)[0], "HOLIDAY")
        # the day before (Saturday 02:45, UTC+1) is still Friday's night: the first rule wins
        moment = local_time(1_806_111_900, berlin)
        self.assertEqual((moment.isoweekday(), moment.hour, moment.minute), (6, 2, 45))
        self.assertEqual(choose(s, moment, -1), ("RULE=1", "night"))
        # two days later (Tuesday 02:45, now UTC+2) is "early": the same wall clock after DST
        moment = local_time(1_806_367_500, berlin)
        self.assertEqual((moment.isoweekday(), moment.hour, moment.minute), (2, 2, 45))
        self.assertEqual(choose(s, moment, -1), ("RULE=2", "early"))
        self.assertEqual(choose(s, moment, 0), ("DEFAULT", "day"), "a group limit of 0 rules")

    # ------------------------------------------------------------------ date and time

    async def test_date_and_time_in_each_language(self) -> None:
        """Asterisk says nothing for an empty format (the peer too: no time passes), so
        each language has its own, for what the tenant chose to say; every step lasts as
        long as the saying."""
        acc, ivr = self.store.accounts, self.store.ivr
        says = {"1": {}, "2": {"say": "date"}, "3": {"say": "time", "timezone": "UTC"},
                "4": {"format": "HM 'digits/oclock'"}}
        for did, language in (("100", "xvb.EN-Female"), ("101", "xvb.RU-Female")):
            user = await acc.create_user("613", f"1000{did[-1]}", 1, language=language,
                                         timezone="Europe/Moscow")
            await acc.assign_did(did, user.id)
            root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
            for number, settings in says.items():
                await ivr.add_child(user.id, root.id, number, "DateTime", settings)
        heard = {}
        for did in ("100", "101"):
            peer = await self.call(Caller(keys=list(says)), args=(did,))
            heard[did] = [c.split(" ", 3)[3] for c in peer.commands
                          if c.startswith("SAY DATETIME")]
            steps = [line for line in self.cdr_lines()[-9:] if ", TYPE=DateTime" in line]
            self.assertEqual(len(steps), 4)
            for step in steps:
                start, stop = (int(re.search(rf"{k}_TIMESTAMP=(\d+)", step)[1])
                               for k in ("START", "STOP"))
                self.assertEqual(stop - start, 3, f"something was said: {step}")
        self.assertEqual(heard, {
            "100": ['"" "ABdY \'digits/at\' IMp" Europe/Moscow', '"" "ABdY" Europe/Moscow',
                    '"" "IMp" UTC', '"" "HM \'digits/oclock\'" Europe/Moscow'],
            "101": ['"" "AdB \'digits/at\' kM" Europe/Moscow', '"" "AdB" Europe/Moscow',
                    '"" "kM" UTC', '"" "HM \'digits/oclock\'" Europe/Moscow']})

    def test_date_and_time_settings(self) -> None:
        from xvbd.engine.types import SettingsError, read_settings
        from xvbd.engine.types.datetime_ import DateTimeSettings, say_format

        old = read_settings(DateTimeSettings, {"format": "", "timezone": "UTC"})
        self.assertEqual((old.say, old.format), ("both", ""), "the settings of before")
        for bad in ({"say": "weekday"}, {"format": "ABdY %H"}, {"format": "'unclosed"}):
            with self.assertRaises(SettingsError):
                read_settings(DateTimeSettings, bad)
        self.assertEqual(say_format("ru_RU", "time"), say_format("xvb.RU-Female", "time"))
        self.assertEqual(say_format("xvb.DE-Female", "both"), say_format("en", "both"),
                         "a language without formats of its own: Asterisk's default")

    # ------------------------------------------------------------------ variables, goto if

    async def test_variables_and_goto_if(self) -> None:
        await self.tenant({
            "1": ("UserVar", {"name": "choice", "max_digits": 2}),
            "2": ("DBVar", {"name": "mode", "mode": "input", "max_digits": 1}),
            "3": ("GotoIf", {"conditions": [
                {"kind": "var", "name": "choice", "value": "42", "target": "7"},
                {"kind": "stored", "name": "mode", "value": "1", "target": "8"}],
                "default": "9"}),
            "4": ("DBVar", {"name": "mode", "mode": "say"}),
            "7": ("Pause", {"seconds": 2}),
            "8": ("Pause", {"seconds": 3}),
            "9": ("Pause", {"seconds": 4})})
        peer = await self.call(Caller(keys=["2", "1", "3", "4", "*"]), args=("100",))
        self.assertIn('EXEC Wait "3"', peer.commands, "the stored 1 chose 8")
        self.assertIn('SAY DIGITS 1 ""', peer.commands)
        self.assertEqual(await self.store.features.get_var(self.user_id, "mode"), "1")
        self.assertEqual(self.line("DBVar"),
                         self.expect("2", "DBVar", 1, 4, "NAME=mode, VALUE=1"))
        self.assertEqual(self.line("GotoIf"),
                         self.expect("3", "GotoIf", 5, 5, "MATCH=CONDITION=2, TARGET=8"))
        self.assertEqual(self.line("Pause"), self.expect("8", "Pause", 5, 8, "SECONDS=3"))
        peer = await self.call(Caller(keys=["1", "42", "3", "*"]), args=("100",))
        self.assertIn('EXEC Wait "2"', peer.commands, "the call's variable chose 7")
        self.assertEqual(self.line("UserVar"),
                         self.expect("1", "UserVar", 35, 38, "NAME=choice, VALUE=42"))

    async def test_a_stored_variable_set_from_others(self) -> None:
        await self.tenant({
            "1": ("DBVar", {"name": "mode", "mode": "value", "value": "night"}),
            "2": ("DBVar", {"name": "note", "mode": "value",
                            "value": "%DBVAR:mode% from %CALLERID% on %DID%"})})
        await self.call(Caller(keys=["1", "2", "*"]), args=("100",))
        self.assertEqual(await self.store.features.get_var(self.user_id, "note"),
                         "night from 6135550123 on 100")

    async def test_goto_if_caller_time_and_vote(self) -> None:
        await self.tenant({
            "5": ("Voting", {"question": "system:q", "options": "12"}),
            "3": ("GotoIf", {"conditions": [
                {"kind": "caller_prefix", "value": "7", "target": "7"},
                {"kind": "caller_regex", "value": "613.*23", "target": "8"}],
                "default": "9"}),
            "6": ("GotoIf", {"conditions": [
                {"kind": "time", "days": "3", "start": "14:00", "end": "15:00", "target": "8"},
                {"kind": "vote", "name": "5", "value": "2", "target": "7"}]}),
            "2": ("GotoIf", {"conditions": [
                {"kind": "vote", "name": "5", "value": "2", "target": "7"}], "default": "9"}),
            "7": ("Pause", {"seconds": 2}), "8": ("Pause", {"seconds": 3}),
            "9": ("Pause", {"seconds": 4})}, max_gotoif_items=1)
        peer = await self.call(Caller(keys=["3", "*"]), args=("100",))
        self.assertIn('EXEC Wait "4"', peer.commands, "the regex is beyond the group's 1 item")
        peer = await self.call(Caller(keys=["6", "*"]), args=("100",))
        self.assertIn('EXEC Wait "3"', peer.commands, "Wednesday 14:5x in Moscow")
        peer = await self.call(Caller(keys=["2", "*"]), args=("100",))
        self.assertIn('EXEC Wait "4"', peer.commands, "no votes yet: the default")
        peer = await self.call(Caller(keys=["5", "2", "2", "*"]), args=("100",))
        self.assertIn('EXEC Wait "2"', peer.commands, "option 2 of the poll leads")

    # ------------------------------------------------------------------ voting

    async def test_voting_once_per_caller(self) -> None:
        await self.tenant({"5": ("Voting", {"question": "user:poll", "options": "123"})})
        peer = await self.call(Caller(keys=["5", "2", "*"]), args=("100",))
        self.assertIn('STREAM FILE auth-thankyou ""', peer.commands)
        peer = await self.call(Caller(keys=["5", "3", "*"]), args=("100",))
        self.assertEqual(peer.commands[peer.commands.index('STREAM FILE you-entered ""') + 1],
                         'SAY DIGITS 2 ""', "the repeat caller hears their vote")
        await self.call(Caller(keys=["5", "3", "*"]), args=("100",), callerid="79005550000")
        self.assertEqual(await self.store.features.vote_results(self.user_id,
                                                                self.ext["5"].id),
                         {"2": 1, "3": 1})
        self.assertEqual(self.line("Voting"), self.expect("5", "Voting", 1, 4, "VOTE=2, NEW=1"))
        peer = await self.call(Caller(keys=["5", "*"]), args=("100",), callerid="")
        self.assertIn('STREAM FILE privacy-unident ""', peer.commands)

    # ------------------------------------------------------------------ directory

    async def test_directory_by_name_then_dial(self) -> None:
        await self.tenant({"4": ("Directory", {"search": "both"})})
        f = self.store.features
        await f.add_directory_entry(self.user_id, self.ext["4"].id, "21", "Ivanov", ["79001"])
        await f.add_directory_entry(self.user_id, self.ext["4"].id, "22", "Ivanova",
                                    ["79002", "79003"], recording="user:ivanova")
        await f.add_directory_entry(self.user_id, self.ext["4"].id, "23", "Petrov", ["79004"])
        peer = await self.call(Caller(keys=["4", "482", None, "1"], dial=["ANSWER"]),
                               args=("100",))
        self.assertIn('SAY DIGITS 21 ""', peer.commands)
        media = self.work / "media" / "u" / str(self.user_id)
        self.assertIn(f'STREAM FILE {media}/ivanova ""', peer.commands)
        self.assertIn('EXEC Dial "Local/79002@xvb-dialout&Local/79003@xvb-dialout,40,"',
                      peer.commands)
        self.assertEqual(self.line("Directory"),
                         self.expect("4", "Directory", 1, 47,
                                     "EMPLOYEE=22, STATUS=ANSWER"))
        peer = await self.call(Caller(keys=["4", "99", "*"]), args=("100",))
        self.assertIn('STREAM FILE dir-nomatch ""', peer.commands)

    # ------------------------------------------------------------------ queue

    async def test_queue_realtime_rows_timeout_and_exit(self) -> None:
        await self.tenant({"6": ("Queue", {"phones": ["79001", "79002", "79003"],
                                           "moh": "jazz", "max_wait": 120, "exit_digit": "0",
                                           "exit_target": "9", "no_answer": "9"}),
                           "9": ("Pause", {"seconds": 2})}, max_followme_phones=2)
        peer = await self.call(Caller(keys=["6", "*"], queue=["TIMEOUT"]), args=("100",))
        name = f"xvb_q_{self.ext['6'].id}"
        self.assertIn(f'EXEC Queue "{name},t,,,120"', peer.commands)
        self.assertEqual(await self.store.queues.members(self.user_id, self.ext["6"].id),
                         ["Local/79001@xvb-dialout/n", "Local/79002@xvb-dialout/n"])
        options = await self.store.queues.options(self.user_id, self.ext["6"].id)
        self.assertEqual((options["musiconhold"], options["context"],
                          options["announce_position"]), ("jazz", "xvb-queue-exit-0", "yes"))
        self.assertIn('EXEC Wait "2"', peer.commands, "nobody answered: no_answer")
        self.assertEqual(self.line("Queue"),
                         self.expect("6", "Queue", 1, 33, f"QUEUE={name}, STATUS=TIMEOUT"))
        # the rows are compared with what they say now, whoever wrote it: an edit made
        # elsewhere is put right by the next call, and members that did not change are
        # left as they are (callers waiting in the queue are not disturbed)
        async def member_ids() -> list[int]:
            rows = await self.db.run_interaction(
                lambda txn: txn.all("SELECT uniqueid FROM queue_members WHERE queue_name = ? "
                                    "ORDER BY uniqueid", (name,)))
            return [r["uniqueid"] for r in rows]
        before = await member_ids()
        await self.db.run_interaction(lambda txn: txn.execute(
            "UPDATE queues SET musiconhold = 'default' WHERE name = ?", (name,)))
        peer = await self.call(Caller(keys=["6", "*"], queue=["EXIT:0"]), args=("100",))
        options = await self.store.queues.options(self.user_id, self.ext["6"].id)
        self.assertEqual(options["musiconhold"], "jazz")
        self.assertEqual(await member_ids(), before)
        self.assertIn('EXEC Wait "2"', peer.commands)
        self.assertIn("STATUS=EXIT, DIGIT=0", self.line("Queue", 1))
        peer = await self.call(Caller(keys=["6"], queue=["ANSWERED"]), args=("100",))
        self.assertEqual(peer.commands[-1], "HANGUP")
        await self.store.accounts.update_group(2, max_queues=0)
        self.directory.clear()
        peer = await self.call(Caller(keys=["6", "*"]), args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands,
                      "the group's Maximum Number of Queues")

    # ------------------------------------------------------------------ disa

    async def test_disa_pin_number_and_refusals(self) -> None:
        await self.tenant({"8": ("DISA", {"pin": "4321"})})
        peer = await self.call(Caller(keys=["8", "4321", "89001234567"], dial=["ANSWER"]),
                               args=("100",))
        self.assertIn('EXEC Dial "Local/89001234567@xvb-dialout,40,"', peer.commands)
        self.assertEqual(self.line("DISA"),
                         self.expect("8", "DISA", 1, 37, "NUMBER=89001234567, STATUS=ANSWER"))
        peer = await self.call(Caller(keys=["8", "4321", None, "*"]), args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands)
        self.assertFalse(any(c.startswith("EXEC Dial") for c in peer.commands))
        peer = await self.call(Caller(keys=["8", "4321", "79001", "*"], dial=["CHANUNAVAIL"]),
                               args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands, "refused")
        for _ in range(2):  # 5 wrong PINs over calls: the DISA closes for a while …
            await self.call(Caller(keys=["8", "1", "2", "3"]), args=("100",))
        peer = await self.call(Caller(keys=["8", "4321"]), args=("100",))
        self.assertIn('STREAM FILE please-try-call-later ""', peer.commands)
        self.assertIn("STATUS=THROTTLED", self.line("DISA", -1))
        # … to that source (the trunk PJSIP/gw) only: the owner calling from elsewhere gets in
        peer = await self.call(Caller(keys=["8", "4321", "89001234567"], dial=["ANSWER"]),
                               args=("100", "198.51.100.4:5060"))
        self.assertIn('EXEC Dial "Local/89001234567@xvb-dialout,40,"', peer.commands)
        (lockout,) = await self.store.lockouts.current(self.clock.seconds())
        self.assertEqual((lockout.source, lockout.target, lockout.user_id),
                         ("PJSIP/gw", f"613#10001 disa:{self.ext['8'].id}", self.user_id))

    # ------------------------------------------------------------------ conference

    async def test_chat_room_with_pin_and_members(self) -> None:
        await self.tenant({"0": ("Conference", {"room": "77", "pin": "55",
                                                "max_members": 5})})
        peer = await self.call(Caller(keys=["0", "1", "55"], dial=["ANSWER"]), args=("100",))
        self.assertEqual([c for c in peer.commands if "conf-" in c],
                         ["GET DATA conf-getpin 9000 16", "GET DATA conf-invalidpin 9000 16"])
        self.assertEqual(peer.variables["XVB_CONF_MAX"], "5")
        self.assertIn('EXEC Dial "Local/77@xvb-conf,30,"', peer.commands)
        self.assertEqual(self.line("Conference"),
                         self.expect("0", "Conference", 1, 37, "ROOM=77, STATUS=ANSWER"))
        # 1 wrong above, 3 + 1 more over calls: the room's PIN is not guessed call by call
        await self.call(Caller(keys=["0", "1", "2", "3"]), args=("100",))
        await self.call(Caller(keys=["0", "4"]), args=("100",))
        peer = await self.call(Caller(keys=["0", "55"]), args=("100",))
        self.assertIn('STREAM FILE please-try-call-later ""', peer.commands)
        self.assertFalse(any(c.startswith("EXEC Dial") for c in peer.commands))

    # ------------------------------------------------------------------ the rest

    async def test_callback_dtmf2email_multidialout(self) -> None:
        await self.tenant({"1": ("Callback", {"target": "9"}),
                           "2": ("Dtmf2Email", {"max_digits": 8}),
                           "3": ("MultiDialout", {"phones": ["79001", "79002"]}),
                           "9": ("Pause", {"seconds": 1})})
        peer = await self.call(Caller(keys=["2", "12345#", "1"]), args=("100",))
        self.assertEqual(peer.commands[-2:], ['STREAM FILE auth-thankyou ""', "HANGUP"])
        self.assertEqual([m.digits for m in await self.store.features.dtmf_messages(
            self.user_id)], ["12345"])
        requests = await self.store.features.callbacks(self.user_id, "pending")
        self.assertEqual([(r.phone, r.target_path) for r in requests], [("6135550123", "9")])
        self.assertEqual(self.line("Callback"), self.expect(
            "1", "Callback", 7, 9, f"ID={requests[0].id}, PHONE=6135550123"))
        self.assertRegex(self.line("Dtmf2Email"), r"DATA=ID=\d+, DIGITS=12345$")
        peer = await self.call(Caller(keys=["3"], dial=["ANSWER"]), args=("100",))
        self.assertIn('EXEC Dial "Local/79001@xvb-dialout&Local/79002@xvb-dialout,40,"',
                      peer.commands)
        self.assertEqual(self.line("MultiDialout"), self.expect(
            "3", "MultiDialout", 10, 40, "PHONES=79001&79002, STATUS=ANSWER"))


MoreTypesOnSQLite, MoreTypesOnMariaDB = on_both_backends(MoreTypesTests)


def test_each_exit_digit_has_a_context_of_its_own_in_the_shipped_dialplan() -> None:
    """Asterisk takes a caller out of a queue on any key its context has an extension for:
    the exit context of a queue holds its own digit and no other."""
    shipped = (Path(__file__).parents[1] / "etc" / "asterisk" / "extensions.conf").read_text()
    contexts = dict(re.findall(r"^\[([^\]]+)\]\n((?:[^\[].*\n?)*)", shipped, re.M))
    for digit in "0123456789*#":
        body = contexts.get(exit_context(digit))
        assert body is not None, f"no [{exit_context(digit)}] in the shipped dialplan"
        extensions = re.findall(r"^exten => ([^,]+),", body, re.M)
        assert extensions == [digit], (digit, extensions)
    assert exit_context("*") == "xvb-queue-exit-star"


class MoreTypesHangupTests(EngineCase):
    async def test_hang_up_in_the_middle_of_every_type(self) -> None:
        from tests.peers.agi import DEAD_OK

        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1, dialout_context="xvb-dialout",
                                      conference_context="xvb-conf")).id
        user = await acc.create_user("613", "10001", gid)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        types = {"10": ("Schedule", {"default": "19"}, "^EXEC Wait"),
                 "11": ("UserVar", {"name": "v"}, "^GET DATA"),
                 "12": ("DBVar", {"name": "v"}, "^GET DATA"),
                 "13": ("GotoIf", {"default": "19"}, "^EXEC Wait"),
                 "14": ("Directory", {}, "^GET DATA"),
                 "15": ("Queue", {"phones": ["1"]}, "^EXEC Queue"),
                 "16": ("DISA", {"pin": "1"}, "^GET DATA agent-pass"),
                 "17": ("Conference", {}, "^EXEC Dial"),
                 "18": ("Voting", {"question": "system:q"}, "^STREAM FILE q "),
                 "19": ("Pause", {"seconds": 5}, "^EXEC Wait"),
                 "20": ("Callback", {"ask_number": True}, "^GET DATA"),
                 "21": ("Dtmf2Email", {}, "^GET DATA"),
                 "22": ("MultiDialout", {"phones": ["1", "2"]}, "^EXEC Dial")}
        for number, (kind, settings, _) in types.items():
            await ivr.add_child(user.id, root.id, number, kind, settings)
        summaries = 0
        for number, (kind, _, command) in types.items():
            for mode in ("sighup", "exit", "nosighup"):
                with self.subTest(type=kind, mode=mode):
                    peer = await self.call(Caller(keys=[number], hangup_on=command,
                                                  hangup_mode=mode), args=("100",))
                    left = next(i for i, c in enumerate(peer.commands) if re.search(command, c))
                    after = [c for c in peer.commands[left + 1:] if not c.startswith(DEAD_OK)]
                    self.assertLessEqual(len(after), 1, after)
                    summaries += 1
                    self.assertEqual(sum(", TYPE=XVB," in line for line in self.cdr_lines()),
                                     summaries)
                    self.assertTrue(any(f", EXT_NUMBER={number}, " in line and
                                        f"TYPE={kind}" in line for line in self.cdr_lines()),
                                    f"the {kind} record is there")
        self.assertEqual(self.factory.sessions, set())


MoreHangupsOnSQLite, MoreHangupsOnMariaDB = on_both_backends(MoreTypesHangupTests)


class SpokenVariablesTests(EngineCase):
    async def test_a_typed_greeting_says_the_callers_variables(self) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        gid = (await acc.create_group("g", 1, allow_tts=1)).id
        user = await acc.create_user("613", "10001", gid)
        await acc.assign_did("100", user.id)
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        await ivr.add_child(user.id, root.id, "1", "UserVar", {"name": "code"})
        await ivr.add_child(user.id, root.id, "2", "Playback",
                            {"tts": "You typed %VAR:code%, you called from %CALLERID%."})
        for code in ("12", "34"):
            peer = await self.call(Caller(keys=["1", code, "2", "*"]), args=("100",))
            played = next(c for c in peer.commands if "/tts/" in c)
            spoken = await self.engine.tts.file_for(
                f"You typed {code}, you called from {dict(peer.env)['callerid']}.", user.language)
            self.assertIsNotNone(spoken)
            self.assertIn(f"STREAM FILE {spoken} ", played, "the caller's code and number")


SpokenOnSQLite, SpokenOnMariaDB = on_both_backends(SpokenVariablesTests)


class DemoTests(EngineCase):
    async def test_every_type_is_in_the_demo_tenant(self) -> None:
        from xvbd.demo import seed_demo
        from xvbd.engine.types import REGISTRY, load_builtin_types, settings_for

        load_builtin_types()
        demo = await seed_demo(self.store)
        tree = await self.store.ivr.tree(demo.user.id)
        self.assertEqual({e.type for e in tree}, set(REGISTRY))
        for ext in tree:  # and every one's settings are what its type accepts
            settings_for(REGISTRY[ext.type], ext)
        peer = await self.call(Caller(keys=["9", "4", "42", "6", "*", "*"]), args=("100",))
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands),
                        "4 then 42 typed, Goto If sent the call to 9*1")


DemoOnSQLite, DemoOnMariaDB = on_both_backends(DemoTests)
