"""The CDR sinks: UDP datagrams (an absent collector costs nothing), the database with its
spool (records the database cannot take wait on disk and are replayed once, in order), and
the daily clean-up of old records and journal entries."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pymysql
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.db import DatabaseCase, on_both_backends
from xvbd.accounting.cdr import CallCDR
from xvbd.accounting.retention import Retention
from xvbd.accounting.sinks import DBSink, UDPSink
from xvbd.accounting.spool import Spool
from xvbd.config import HostPort, database_url
from xvbd.store import Database, Store


def records(call: int, n: int = 3) -> list:
    cdr = CallCDR({"ACCESS_CODE": "10001", "CALLED_ID": "2500", "CALLER_ID": "2501",
                   "CALL_ID": f"call{call:05d}", "SERVER_ID": "FCC-NN", "SUBSCR_ID": 1})
    for step in range(n - 1):
        cdr.step("Playback", str(step), 1285757672 + step, 1285757673 + step)
    cdr.summary(call_type="incoming", start=1285757672, stop=1285757680, now=1285757680,
                cost=0, sys_cost=0, currency_id=1, dtmf="1")
    return cdr.records


class UDPSinkTests(TestCase):
    async def test_one_datagram_per_record_and_an_absent_collector_costs_nothing(self) -> None:
        collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(2)
        self.addCleanup(collector.close)
        absent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        absent.bind(("127.0.0.1", 0))
        nobody = absent.getsockname()[1]
        absent.close()
        sink = UDPSink([HostPort("localhost", collector.getsockname()[1]),
                        HostPort("127.0.0.1", nobody)], reactor)
        await sink.start()
        self.addCleanup(sink.stop)
        sent = records(1)
        d = sink.write(sent)
        self.assertTrue(d.called, "sending never waits")
        got = [collector.recv(4096).decode() for _ in sent]
        self.assertEqual(got, [r.line() for r in sent])
        # the refused port answers with ICMP: no write waits or fails, and the collector
        # that listens still gets every record
        writes = [sink.write(records(n)) for n in range(2, 40)]
        await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(all(w.called and w.result is None for w in writes))
        later = sink.write(records(40))
        self.assertTrue(later.called)
        lines = [collector.recv(4096).decode()
                 for _ in range(sum(len(records(n)) for n in range(2, 41)))]
        self.assertEqual(lines[-1], records(40)[-1].line())


class RetentionTests:
    async def test_old_cdrs_and_journal_entries_go(self) -> None:
        now = 1_800_000_000
        store = Store(self.db, clock=lambda: now)
        rows = [{"record_id": f"r{n}", "call_id": f"c{n}", "type": "XVB",
                 "create_timestamp": now - n * 86400, "start_timestamp": now - n * 86400,
                 "stop_timestamp": now - n * 86400} for n in range(10)]
        await store.cdrs.insert_many(rows)
        for _ in range(3):
            await store.journal.record(actor_kind="admin", actor="a", object_kind="user")
        await self.db.run_interaction(lambda txn: txn.execute(
            "UPDATE journal SET created_at = ? WHERE id = 1", (now - 40 * 86400,)))
        retention = Retention(store, cdr_days=5, journal_days=30, clock=reactor)
        self.assertEqual(await retention.run_once(), (4, 1))
        left = sorted(r.record_id for r in await store.cdrs.all(limit=100))
        self.assertEqual(left, [f"r{n}" for n in range(6)])
        self.assertEqual(len(await store.journal.all()), 2)
        self.assertEqual(await store.cdrs.purge_older_than(0, step=2), 5, "in steps")


RetentionOnSQLite, RetentionOnMariaDB = on_both_backends(RetentionTests)


class SpoolTests(DatabaseCase, TestCase):
    backend = "mysql"

    def root(self) -> pymysql.Connection:
        return pymysql.connect(host=self.url.host, port=self.url.port, user=self.url.user,
                               password=self.url.password, autocommit=True)

    def setUp(self) -> None:
        super().setUp()
        self.user = f"xvbd_spool_{self.url.name[-6:]}"
        with self.root() as conn:
            cur = conn.cursor()
            cur.execute(f"CREATE USER '{self.user}'@'%' IDENTIFIED BY 'pw'")
            cur.execute(f"GRANT ALL ON `{self.url.name}`.* TO '{self.user}'@'%'")
        self.addCleanup(self._drop_user)

    def _drop_user(self) -> None:
        with self.root() as conn:
            conn.cursor().execute(f"DROP USER IF EXISTS '{self.user}'@'%'")

    def cut_off(self, locked: bool) -> None:
        """The database goes away for this user (its connections killed, new ones
        refused), or comes back."""
        with self.root() as conn:
            cur = conn.cursor()
            cur.execute(f"ALTER USER '{self.user}'@'%' ACCOUNT {'LOCK' if locked else 'UNLOCK'}")
            if locked:
                cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s",
                            (self.user,))
                for (pid,) in cur.fetchall():
                    cur.execute(f"KILL {int(pid)}")

    async def test_records_survive_the_database_going_away(self) -> None:
        url = database_url(f"mysql://{self.user}:pw@{self.url.host}:{self.url.port}/"
                           f"{self.url.name}")
        db = Database(url, pool_max=2, connect_timeout=2)
        db.start()
        self.addCleanup(db.close)
        spool = Spool(self.tmp / "cdr.db-spool", reactor)
        sink = DBSink(Store(db).cdrs, spool, clock=reactor, retry=0.2)
        self.addCleanup(sink.stop)
        emitted: list[str] = []

        async def calls(first: int, count: int) -> None:
            waits = []
            for n in range(first, first + count):
                batch = records(n)
                emitted.extend(r.record_id for r in batch)
                waits.append(sink.write(batch))
            for d in waits:
                await d  # every call is let go: its records are somewhere safe

        await calls(0, 50)
        self.cut_off(True)
        await calls(50, 50)  # the database is gone: these wait in the spool
        self.assertTrue(spool.has_rows)
        await deferLater(reactor, 0.5, lambda: None)  # replays fail meanwhile
        await calls(100, 50)  # still spooled, after the others
        self.cut_off(False)
        for _ in range(100):
            if not spool.has_rows:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertFalse(spool.has_rows, "the spool was replayed")
        await calls(150, 50)  # and records go straight to the database again
        stored = await self.store.db.run_interaction(
            lambda txn: [r["record_id"] for r in txn.all("SELECT record_id FROM cdrs "
                                                          "ORDER BY id")])
        self.assertEqual(stored, emitted, "every record once, in the order of the calls")
        self.assertFalse((self.tmp / "cdr.db-spool").exists())
        self.flushLoggedErrors()



class SpoolOrderTests(TestCase):
    """The spool says it has rows from the moment an append is asked for (on the reactor
    thread), and keeps saying so across a replay that ends while an append is on its way:
    a record written meanwhile waits behind the spooled ones instead of overtaking them."""

    async def test_rows_on_their_way_count(self) -> None:
        spool = Spool(Path(tempfile.mkdtemp()) / "cdr.db-spool", reactor)
        self.addCleanup(spool.stop)
        self.assertFalse(spool.has_rows)
        first = spool.append([("r1", 1)])
        self.assertTrue(spool.has_rows, "before the writer thread has run")
        await first
        self.assertEqual(await spool.take(), [("r1", 1)])
        later = spool.append([("r2", 2)])  # asked for while the replay is finishing
        await spool.taken()
        await later
        self.assertTrue(spool.has_rows, "r2 waits in the spool")
        self.assertEqual(await spool.take(), [("r2", 2)])
        await spool.taken()
        self.assertFalse(spool.has_rows)


def test_a_calls_records_are_made_from_its_common_part_as_from_their_fields() -> None:
    """CallCDR makes each record's line and row from the call's common part, made once; they
    are exactly what the record's fields make (values that need escaping, a summary, a
    common part replaced mid-call, one with other keys)."""
    from dataclasses import replace

    from xvbd.accounting.cdr import CallCDR

    common = {"ACCESS_CODE": "10001", "CALLED_ID": "613", "CALLER_ID": '"a, TYPE=XVB" 5%',
              "CALL_ID": "c1", "SERVER_ID": "NODE\n1", "SUBSCR_ID": 0}
    cdr = CallCDR(common)
    cdr.step("Playback", "0", 100, 101)
    cdr.step("VoiceMail", "0*5*1", 101, 140, {"MESSAGE_ID": 7, "NOTE": "x, y"})
    cdr.common = {**common, "SUBSCR_ID": 12, "ACCESS_CODE": "2,0"}
    cdr.step("FollowMe", "0*2", 140, 150, {"ATTEMPTS": "200:BUSY:3&201:ANSWER:9"})
    cdr.common = dict(cdr.common)  # the same fields anew, as at the call's end
    cdr.summary(call_type="incoming", start=100, stop=150, now=151, cost=12345,
                sys_cost=-5, currency_id=3, dtmf="10001w3 xxxx 5 5\n1", result="BAD,PIN")
    other = CallCDR({**common, "CALL_TYPE": "callback", "EXT_NUMBER": "9"})
    other.step("Playback", "1", 1, 2)
    other.summary(call_type="incoming", start=1, stop=2, now=2, cost=0, sys_cost=0,
                  currency_id=0, dtmf="")
    assert all(r.made_line is not None for r in cdr.records)
    assert all(r.made_line is None for r in other.records)
    for record in cdr.records + other.records:
        plain = replace(record, made_line=None, made_values=None)
        assert record.line() == plain.line()
        assert record.row_values() == plain.row_values()
        assert "\n" not in record.line()
    assert cdr.records[2].row_values()[3:5] == (12, "2,0")
    assert cdr.records[3].line().startswith("ACCESS_CODE=2%2C0, CALLED_ID=613, "
                                            "CALLER_ID=\"a%2C TYPE=XVB\" 5%25, CALL_ID=c1, "
                                            "CALL_TYPE=incoming, COST=1.2345, ")
