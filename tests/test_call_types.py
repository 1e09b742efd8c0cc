"""The three types every tenant uses, through the real protocol: the menu, voicemail and
follow-me, with the group's limits."""

from __future__ import annotations

from typing import Any

from twisted.logger import formatEvent, globalLogPublisher

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from xvbd.store.accounts import User


class TypesTests(EngineCase):
    async def tenant(self, **group: object) -> tuple[User, int]:
        acc = self.store.accounts
        gid = 1
        if group:
            gid = (await acc.create_group("test", 1, **group)).id
        user = await acc.create_user("613", "10001", gid)
        await acc.assign_did("100", user.id)
        return user, gid

    # ------------------------------------------------------------------ menu

    async def test_menu_numbers_stars_hashes_and_wrong_keys(self) -> None:
        user, _ = await self.tenant()
        ivr = self.store.ivr
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        await ivr.add_child(user.id, root.id, "1", "DateTime", {"timezone": "UTC"})
        await ivr.add_child(user.id, root.id, "12", "DateTime", {"timezone": "Asia/Tokyo"})
        sub = await ivr.add_child(user.id, root.id, "5", "Playback",
                                  {"greeting": "system:sub"})
        await ivr.add_child(user.id, sub.id, "7", "DateTime", {"timezone": "Europe/Paris"})
        # 1 then silence: extension 1; 12: extension 12; # replays; 8 is wrong;
        # 5 then * goes back up; * at the root replays the root.
        peer = await self.call(Caller(keys=["1", None, "12", "#", "8", "5", "*", "*",
                                            "5", "7", "*", "*"]), args=("100",))
        says = [c for c in peer.commands if c.startswith(("SAY", "STREAM FILE pbx"))]
        self.assertEqual([c.split()[-1] if c.startswith("SAY") else c for c in says],
                         ["UTC", "Asia/Tokyo", 'STREAM FILE pbx-invalid ""', "Europe/Paris"])
        self.assertIn("WAIT FOR DIGIT 3000", peer.commands, "the next digit of 1 or 12")

    async def test_silence_takes_the_default_or_ends_after_three_tries(self) -> None:
        user, _ = await self.tenant()
        ivr = self.store.ivr
        root = await ivr.create_root(user.id, "Playback",
                                     {"greeting": "system:welcome", "timeout": 2})
        await ivr.add_child(user.id, root.id, "1", "DateTime", {})
        peer = await self.call(Caller(), args=("100",))
        self.assertEqual(peer.commands.count("WAIT FOR DIGIT 2000"), 3)
        self.assertEqual(peer.commands[-2:], ['STREAM FILE vm-goodbye ""', "HANGUP"])
        self.assertEqual(self.result, "OK")
        await ivr.update(user.id, root.id, settings={"greeting": "system:welcome",
                                                     "default": "1"})
        self.directory.clear()
        peer = await self.call(Caller(keys=[None, "*"]), args=("100",))
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))

    async def test_a_missing_greeting_file_does_not_stop_the_menu(self) -> None:
        user, _ = await self.tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {"greeting": "user:gone"})
        await self.store.ivr.add_child(user.id, root.id, "1", "DateTime", {})
        peer = await self.call(Caller(keys=[None, "1"], missing_files=(
            str(self.work / "media" / "u" / str(user.id) / "gone"),)), args=("100",))
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))
        self.flushLoggedErrors()

    async def test_bad_settings_are_skipped_politely(self) -> None:
        user, _ = await self.tenant()
        root = await self.store.ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        await self.store.ivr.add_child(user.id, root.id, "1", "FollowMe",
                                       {"phones": ["12; rm -rf /"]})
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands)
        self.assertFalse(any("Dial" in c for c in peer.commands))

    # ------------------------------------------------------------------ voicemail

    async def voicemail_tenant(self, **group: object) -> tuple[User, int]:
        user, _gid = await self.tenant(**group)
        ivr = self.store.ivr
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        box = await ivr.add_child(user.id, root.id, "1", "VoiceMail", {})
        return user, box.id

    async def test_a_message_is_recorded_and_kept(self) -> None:
        user, box = await self.voicemail_tenant(max_message_duration=120)
        peer = await self.call(Caller(keys=["1", "#"], record_seconds=7), args=("100",),
                               callerid="79005551234")
        path = self.work / "media" / "u" / str(user.id) / "messages"
        record = [c for c in peer.commands if c.startswith("RECORD FILE")]
        self.assertEqual(len(record), 1)
        self.assertRegex(record[0], rf'^RECORD FILE {path}/[0-9a-f]{{32}} wav "#" 120000 0 BEEP$')
        self.assertEqual(peer.commands[peer.commands.index(record[0]) - 1],
                         'STREAM FILE vm-intro ""')
        self.assertEqual(peer.commands[peer.commands.index(record[0]) + 1],
                         'STREAM FILE vm-msgsaved ""')
        messages = await self.store.messages.list(user.id)
        self.assertEqual(len(messages), 1)
        msg = messages[0]
        self.assertEqual((msg.extension_id, msg.duration, msg.caller_id, msg.called_id,
                          msg.file_format), (box, 7, "79005551234", "100", "wav"))
        self.assertEqual(msg.file_name, record[0].split()[2])
        line = next(c for c in self.cdr_lines() if "TYPE=VoiceMail" in c)
        self.assertTrue(line.endswith(f"DATA=MESSAGE_ID={msg.id}, DURATION=7"), line)

    async def test_hanging_up_ends_the_message_and_keeps_it(self) -> None:
        user, _ = await self.voicemail_tenant()
        for mode in ("sighup", "exit", "nosighup"):
            peer = await self.call(Caller(keys=["1"], hangup_on="^RECORD FILE",
                                          hangup_mode=mode, record_seconds=4), args=("100",))
            self.assertNotIn('STREAM FILE vm-msgsaved ""', peer.commands)
        messages = await self.store.messages.list(user.id)
        self.assertEqual([m.duration for m in messages], [4, 4, 4])
        self.assertEqual(sum(", TYPE=XVB," in c for c in self.cdr_lines()), 3)

    async def test_a_full_mailbox_is_refused_politely(self) -> None:
        user, box = await self.voicemail_tenant(max_messages_per_ext=1)
        await self.store.messages.add(user.id, extension_id=box, file_name="x",
                                      file_format="wav", duration=3)
        peer = await self.call(Caller(keys=["1"]), args=("100",))
        self.assertIn('STREAM FILE vm-mailboxfull ""', peer.commands)
        self.assertFalse(any(c.startswith("RECORD FILE") for c in peer.commands))
        await self.store.accounts.update_group(2, max_messages_per_ext=10, max_messages_total=1)
        self.directory.clear()
        peer = await self.call(Caller(keys=["1"]), args=("100",))
        self.assertIn('STREAM FILE vm-mailboxfull ""', peer.commands, "the user's total")
        self.assertEqual(await self.store.messages.count(user.id), 1)

    async def test_a_message_too_short_is_not_kept(self) -> None:
        user, _ = await self.voicemail_tenant()
        peer = await self.call(Caller(keys=["1", "#"], record_seconds=0), args=("100",))
        self.assertIn('STREAM FILE vm-tooshort ""', peer.commands)
        self.assertEqual(await self.store.messages.count(user.id), 0)

    def watch_voicemail_log(self) -> list[str]:
        lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "xvbd.voicemail":
                lines.append(f"{event['log_level'].name}: {formatEvent(event)}")
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    def voicemail_step(self) -> str:
        return next(c for c in self.cdr_lines() if "TYPE=VoiceMail" in c)

    async def test_a_file_asterisk_cannot_create_is_said_and_alarmed(self) -> None:
        user, _ = await self.voicemail_tenant()
        logs = self.watch_voicemail_log()
        for _ in range(2):
            peer = await self.call(Caller(keys=["1"], record_cannot_open=True),
                                   args=("100",))
            after = peer.commands[[c.startswith("RECORD FILE") for c in peer.commands]
                                  .index(True) + 1:]
            self.assertEqual(after[:2], ['STREAM FILE tt-somethingwrong ""',
                                         'STREAM FILE please-try-call-later ""'])
            self.assertNotIn('STREAM FILE vm-tooshort ""', peer.commands)
        self.assertEqual(await self.store.messages.count(user.id), 0)
        self.assertIn("RESULT=NOT_RECORDED", self.voicemail_step())
        where = self.work / "media" / "u" / str(user.id) / "messages"
        self.assertEqual(len(logs), 2, logs)
        self.assertTrue(logs[0].startswith(
            f"error: Asterisk could not create the message file in {where} "), logs)
        self.assertIn("free space on that disk or mend it ([PATH] MEDIA_DIR)", logs[0])
        self.assertTrue(logs[1].startswith("warn: Asterisk could not create"), logs)

    async def test_a_message_the_disk_cut_keeps_what_is_on_disk(self) -> None:
        user, _ = await self.voicemail_tenant()
        logs = self.watch_voicemail_log()
        # 2 s of 16-bit 8 kHz audio reached the disk; Asterisk's answer counts 3 s more that
        # its write buffer held when the writes failed (its end position: 5 s)
        peer = await self.call(Caller(keys=["1", "#"], record_seconds=7,
                                      record_file_bytes=44 + 2 * 16000,
                                      record_lost_bytes=3 * 16000), args=("100",))
        self.assertIn(b"endpos=40000", b"".join(peer.sent))
        self.assertIn('STREAM FILE vm-msgsaved ""', peer.commands)
        (message,) = await self.store.messages.list(user.id)
        self.assertEqual(message.duration, 2)
        self.assertIn(f"MESSAGE_ID={message.id}, DURATION=2, RESULT=CUT",
                      self.voicemail_step())
        logs = [line for line in logs if not line.startswith("info")]
        self.assertEqual(len(logs), 1, logs)
        self.assertTrue(logs[0].startswith("error: the disk filled under a voicemail in "),
                        logs)
        self.assertIn("(2 s of it kept, 32044 bytes)", logs[0])

    async def test_a_message_ending_on_a_full_disk_is_marked_cut(self) -> None:
        user, _ = await self.voicemail_tenant()
        frees = iter([10**9, 1000])  # the disk's free bytes before and after the message
        self.engine.media.free_bytes = lambda path: next(frees)  # type: ignore[method-assign]
        await self.call(Caller(keys=["1", "#"], record_seconds=7,
                               record_file_bytes=44 + 3 * 16000), args=("100",))
        (message,) = await self.store.messages.list(user.id)
        self.assertEqual(message.duration, 3)
        self.assertIn("DURATION=3, RESULT=CUT", self.voicemail_step())

    async def test_a_message_the_disk_took_nothing_of_is_not_kept(self) -> None:
        user, _ = await self.voicemail_tenant()
        peer = await self.call(Caller(keys=["1", "#"], record_seconds=7, record_file_bytes=44,
                                      record_lost_bytes=3 * 16000), args=("100",))
        self.assertNotIn('STREAM FILE vm-msgsaved ""', peer.commands)
        self.assertNotIn('STREAM FILE vm-tooshort ""', peer.commands)
        self.assertIn('STREAM FILE please-try-call-later ""', peer.commands)
        self.assertEqual(await self.store.messages.count(user.id), 0)
        self.assertIn("RESULT=NOT_RECORDED", self.voicemail_step())

    async def test_a_whole_file_is_a_message_as_usual(self) -> None:
        user, _ = await self.voicemail_tenant()
        logs = self.watch_voicemail_log()
        await self.call(Caller(keys=["1", "#"], record_seconds=3,
                               record_file_bytes=44 + 3 * 16000), args=("100",))
        (message,) = await self.store.messages.list(user.id)
        self.assertEqual(message.duration, 3)
        self.assertNotIn("RESULT=", self.voicemail_step())
        self.assertEqual([line for line in logs if not line.startswith("info")], [])

    # ------------------------------------------------------------------ follow-me

    async def followme_tenant(self, settings: dict[str, object], **group: object) -> User:
        user, _ = await self.tenant(dialout_context="xvb-dialout-test", **group)
        ivr = self.store.ivr
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        await ivr.add_child(user.id, root.id, "3", "FollowMe", settings)
        await ivr.add_child(user.id, root.id, "1", "VoiceMail", {})
        return user

    async def test_phones_one_after_another_until_one_answers(self) -> None:
        await self.followme_tenant({"phones": ["79001", "79002", "79003"], "ring_seconds": 20})
        peer = await self.call(Caller(keys=["3"], dial=["NOANSWER", "ANSWER"]), args=("100",))
        dials = [c for c in peer.commands if c.startswith("EXEC Dial")]
        self.assertEqual(dials, ['EXEC Dial "Local/79001@xvb-dialout-test,20,"',
                                 'EXEC Dial "Local/79002@xvb-dialout-test,20,"'])
        self.assertEqual(peer.variables["XVB_AC"], "10001", "the outgoing legs inherit it")
        self.assertLess(peer.commands.index('SET VARIABLE __XVB_AC "10001"'),
                        peer.commands.index(dials[0]))
        self.assertEqual(peer.commands.count("GET VARIABLE DIALSTATUS"), 2)
        line = next(c for c in self.cdr_lines() if "TYPE=FollowMe" in c)
        self.assertTrue(line.endswith(  # 20 s of ringing, then 30 s of talk
            "DATA=PHONE=79002, STATUS=ANSWER, ATTEMPTS=79001:NOANSWER:20 79002:ANSWER:30"),
            line)
        self.assertEqual(peer.commands[-1:], ["HANGUP"])
        self.assertEqual(self.result, "OK")

    async def test_every_phone_tried_is_in_the_record_even_when_the_caller_leaves(self) -> None:
        await self.followme_tenant({"phones": ["79001", "79002", "79003"], "ring_seconds": 15})
        await self.call(Caller(keys=["3"], dial=["BUSY", "NOANSWER"], hangup_on="^EXEC Dial",
                               hangup_skip=1), args=("100",))
        line = next(c for c in self.cdr_lines() if "TYPE=FollowMe" in c)
        self.assertTrue(line.endswith(
            "DATA=PHONE=79002, STATUS=CANCEL, ATTEMPTS=79001:BUSY:15 79002:CANCEL:15"), line)

    async def test_all_at_once_and_nobody_answers(self) -> None:
        await self.followme_tenant({"phones": ["79001", "79002"], "mode": "parallel",
                                    "no_answer": "1"})
        peer = await self.call(Caller(keys=["3", "#"], dial=["BUSY"]), args=("100",))
        dials = [c for c in peer.commands if c.startswith("EXEC Dial")]
        self.assertEqual(dials, ['EXEC Dial '
                                 '"Local/79001@xvb-dialout-test&Local/79002@xvb-dialout-test,40,"'])
        after = peer.commands[peer.commands.index(dials[0]) + 2:]
        self.assertEqual(after[0], 'STREAM FILE vm-nobodyavail ""')
        self.assertTrue(any(c.startswith("RECORD FILE") for c in after), "went to voicemail")
        line = next(c for c in self.cdr_lines() if "TYPE=FollowMe" in c)
        self.assertTrue(line.endswith(
            "DATA=PHONE=79001&79002, STATUS=BUSY, ATTEMPTS=79001&79002:BUSY:40"), line)

    async def test_the_group_limits_the_phones(self) -> None:
        await self.followme_tenant({"phones": ["79001", "79002", "79003"]},
                                   max_followme_phones=1)
        peer = await self.call(Caller(keys=["3", "*"]), args=("100",))
        self.assertEqual([c for c in peer.commands if c.startswith("EXEC Dial")],
                         ['EXEC Dial "Local/79001@xvb-dialout-test,40,"'])
        self.flushLoggedErrors()

    async def test_no_dialout_context_means_not_available(self) -> None:
        user, _ = await self.tenant(dialout_context="")
        root = await self.store.ivr.create_root(user.id, "Playback", {"greeting": "system:w"})
        await self.store.ivr.add_child(user.id, root.id, "3", "FollowMe", {"phones": ["1"]})
        peer = await self.call(Caller(keys=["3", "*"]), args=("100",))
        self.assertIn('STREAM FILE cannot-complete-as-dialed ""', peer.commands)
        self.assertFalse(any(c.startswith("EXEC Dial") for c in peer.commands))


TypesOnSQLite, TypesOnMariaDB = on_both_backends(TypesTests)


class SpeechTests(EngineCase):
    async def test_a_typed_greeting_is_spoken_where_the_group_allows_it(self) -> None:
        acc, ivr = self.store.accounts, self.store.ivr
        speaking = await acc.create_group("tts", 1, allow_tts=1, max_tts_string_bytes=100)
        silent = await acc.create_group("no-tts", 1, allow_tts=0)
        for n, group in enumerate((speaking, silent)):
            user = await acc.create_user("613", f"1000{n}", group.id, language="xvb.RU-Female")
            await acc.assign_did(f"10{n}", user.id)
            root = await ivr.create_root(user.id, "Playback", {"tts": "Здравствуйте! Нажмите 1."})
            await ivr.add_child(user.id, root.id, "1", "DateTime", {})
        peer = await self.call(Caller(keys=["1", "*"]), args=("100",))
        streamed = next(c for c in peer.commands if c.startswith("STREAM FILE"))
        tts_dir = self.work / "media" / "tts"
        self.assertRegex(streamed, rf'^STREAM FILE {tts_dir}/[0-9a-f]{{40}} "0123456789\*#"$')
        wav = streamed.split()[2] + ".wav"
        import wave
        with wave.open(wav) as sound:
            self.assertEqual((sound.getframerate(), sound.getnchannels(),
                              sound.getsampwidth()), (8000, 1, 2))
            self.assertGreater(sound.getnframes(), 8000, "more than a second of speech")
        peer = await self.call(Caller(keys=["1", "*"]), args=("101",))
        self.assertFalse(any(c.startswith("STREAM FILE") and "tts" in c
                             for c in peer.commands), "the group does not allow TTS")
        self.assertTrue(any(c.startswith("SAY DATETIME") for c in peer.commands))


SpeechOnSQLite, SpeechOnMariaDB = on_both_backends(SpeechTests)
