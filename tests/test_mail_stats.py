"""The daily CDR statistics mail: only for users who asked, for yesterday in their own time
zone, once a day even with two xvbd on one database.  On SQLite and on MariaDB."""

from __future__ import annotations

from twisted.internet.task import Clock

from tests.support.db import on_both_backends
from xvbd.config import parse_settings
from xvbd.mail.compose import MailSetup
from xvbd.mail.stats import DailyStats, yesterday
from xvbd.store import Database, Store

# 2010-09-29 10:54:32 UTC = 14:54:32 in Moscow: "yesterday" there is 2010-09-28.
NOW = 1285757672
DAY_START = 1285617600  # 2010-09-28 00:00 in Moscow (summer time then, UTC+4)


class StatsTests:
    def summary(self, user_id: int, n: int, start: int, seconds: int, call_type: str) -> dict:
        return {"record_id": f"c{user_id}-{n}:x", "call_id": f"c{user_id}-{n}",
                "subscr_id": user_id, "type": "XVB", "call_type": call_type,
                "create_timestamp": start, "start_timestamp": start,
                "stop_timestamp": start + seconds, "cost": 2500, "data": ""}

    async def test_yesterdays_calls_mailed_once_to_who_asked(self) -> None:
        acc = self.store.accounts
        ann = await acc.create_user("613", "10001", 1, email="ann@example.com",
                                    timezone="Europe/Moscow")
        bob = await acc.create_user("613", "10002", 1, email="bob@example.com")
        await self.store.outbox.set_prefs(ann.id, attach_as="wav", daily_stats=True)
        await self.store.outbox.set_prefs(bob.id, attach_as="wav", daily_stats=False)
        await self.store.cdrs.insert_many([
            self.summary(ann.id, 1, DAY_START + 10, 65, "incoming"),
            self.summary(ann.id, 2, DAY_START + 3600, 30, "incoming"),
            self.summary(ann.id, 3, DAY_START + 7200, 120, "callblast"),
            self.summary(ann.id, 4, DAY_START - 5, 999, "incoming"),  # the day before
            self.summary(ann.id, 5, DAY_START + 86400, 999, "incoming"),  # today
            self.summary(bob.id, 1, DAY_START + 10, 50, "incoming")])
        clock = Clock()
        clock.advance(NOW)
        setup = MailSetup.of(parse_settings("", "x"))
        kicks: list[int] = []
        stats = DailyStats(self.store, setup, 2, clock, lambda: kicks.append(1))
        self.assertEqual(await stats.run_once(), 1)
        self.assertEqual(kicks, [1])
        (mail,) = await self.store.outbox.for_user(ann.id)
        self.assertEqual((mail.kind, mail.recipients, mail.subject),
                         ("stats", "ann@example.com", "Calls of 2010-09-28"))
        self.assertTrue(mail.body.startswith(
            "Your calls on 2010-09-28: 3, 3 min 35 s in all.\n\n"
            "  callblast: 1 calls, 2 min 0 s\n  incoming: 2 calls, 1 min 35 s\n\nCost: 0.75\n"),
            mail.body)
        self.assertEqual(await self.store.outbox.for_user(bob.id), [])
        self.assertEqual(await stats.run_once(), 0, "once a day")
        other_db = Database(self.url, pool_max=2)
        other_db.start()
        self.addCleanup(other_db.close)
        self.assertEqual(await DailyStats(Store(other_db), setup, 2, clock).run_once(), 0,
                         "another xvbd finds the day reported")
        clock.advance(86400)
        self.assertEqual(await stats.run_once(), 1, "the next day")
        self.assertEqual((await self.store.outbox.prefs(ann.id)).stats_day, "2010-09-29")


StatsOnSQLite, StatsOnMariaDB = on_both_backends(StatsTests)


def test_yesterday_in_the_users_zone() -> None:
    assert yesterday(NOW, "Europe/Moscow") == ("2010-09-28", DAY_START, DAY_START + 86400)
    assert yesterday(NOW, "Nowhere/Else")[0] == "2010-09-28"
    # 2010-10-31: the end of summer time in Berlin, a day of 25 hours
    day, start, end = yesterday(1288602000, "Europe/Berlin")
    assert (day, end - start) == ("2010-10-31", 90000)
