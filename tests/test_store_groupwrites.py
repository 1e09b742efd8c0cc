"""The database's group commit: voicemail rows and CDR records of calls ending together
share one transaction and a few multi-row statements; each submitter learns its own
result (a message its own id), a bad item fails alone, and each item is journaled as its
own submitter's."""

from __future__ import annotations

import sqlite3
from typing import Any

import pymysql
from twisted.internet.defer import Deferred, DeferredList

from tests.support.db import on_both_backends
from xvbd.accounting.cdr import CallCDR
from xvbd.store.audit import Actor, acting
from xvbd.store.messages import MESSAGES
from xvbd.store.table import chunks


def call_rows(call: int, steps: int = 4) -> list[tuple[Any, ...]]:
    cdr = CallCDR({"ACCESS_CODE": "10001", "CALLED_ID": "613", "CALLER_ID": f"79{call:05d}",
                   "CALL_ID": f"call{call:05d}", "SERVER_ID": "NODE-1", "SUBSCR_ID": 1})
    for step in range(steps):
        cdr.step("Playback", f"0*{step}", 1_800_000_000 + step, 1_800_000_001 + step)
    cdr.summary(call_type="incoming", start=1_800_000_000, stop=1_800_000_009,
                now=1_800_000_009, cost=0, sys_cost=0, currency_id=1, dtmf="1")
    return [r.row_values() for r in cdr.records]


class GroupWritesTests:
    def count_transactions(self) -> list[int]:
        """How many items each transaction of the group commit held, from now on."""
        sizes: list[int] = []
        run = self.db.run_interaction

        async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
            if fn.__name__ == "_write_all":
                sizes.append(len(args[0]))
            return await run(fn, *args, **kwargs)
        self.db.run_interaction = counting  # type: ignore[method-assign]
        return sizes

    async def add_message(self, user_id: int, n: int) -> Deferred[Any]:
        return await self.store.messages.add(user_id, extension_id=None, file_name=f"m{n}",
                                             file_format="wav", duration=n, call_id=f"c{n}")

    async def test_voicemails_and_cdrs_of_calls_ending_together_share_a_transaction(self
                                                                                    ) -> None:
        alice = (await self.store.accounts.create_user("613", "10001", 1)).id
        bob = (await self.store.accounts.create_user("614", "10002", 1)).id
        sizes = self.count_transactions()
        first = Deferred.fromCoroutine(self.add_message(alice, 0))  # written at once ...
        together = ([Deferred.fromCoroutine(self.add_message(alice if n % 2 else bob, n))
                     for n in range(1, 71)] +  # ... these gather meanwhile: one transaction
                    [self.store.cdrs.write_rows(call_rows(n)) for n in range(70)])
        results = await DeferredList([first, *together], fireOnOneErrback=True)
        self.assertEqual(sizes, [1, 140])
        messages = [result for _, result in results[:71]]
        for n, message in enumerate(messages):  # each submitter has its own row's id
            self.assertEqual((message.file_name, message.duration), (f"m{n}", n))
            stored = await self.store.messages.get(message.user_id, message.id)
            self.assertEqual((stored.file_name, stored.call_id, stored.user_id),
                             (f"m{n}", f"c{n}", message.user_id))
        self.assertEqual(len({m.id for m in messages}), 71)
        self.assertEqual(await self.store.messages.count(alice), 36)
        self.assertEqual(await self.store.messages.count(bob), 35)
        stored = await self.store.cdrs.all(limit=1000)
        self.assertEqual(len(stored), 70 * 5)
        self.assertEqual(sorted(r.record_id for r in stored),
                         sorted(f"call{n:05d}:{i}" for n in range(70) for i in range(5)))
        summary = next(r for r in stored if r.record_id == "call00042:4")
        self.assertEqual((summary.type, summary.caller_id, summary.call_type, summary.data),
                         ("XVB", "7900042", "incoming", "DTMF=1"))

    async def test_a_bad_item_fails_alone(self) -> None:
        alice = (await self.store.accounts.create_user("613", "10001", 1)).id
        first = Deferred.fromCoroutine(self.add_message(alice, 0))
        good = Deferred.fromCoroutine(self.add_message(alice, 1))
        bad = Deferred.fromCoroutine(self.add_message(999_999, 2))  # no such user
        cdrs = self.store.cdrs.write_rows(call_rows(1))
        await first
        self.assertEqual((await good).file_name, "m1")
        with self.assertRaises((sqlite3.IntegrityError, pymysql.err.IntegrityError)):
            await bad  # the foreign key
        await cdrs
        self.assertEqual(len(await self.store.cdrs.all()), 5)
        self.assertEqual([m.file_name for m in await self.store.messages.list(alice)],
                         ["m1", "m0"])
        await self.store.cdrs.write_rows(call_rows(1))  # written again: nothing doubles
        self.assertEqual(len(await self.store.cdrs.all()), 5)

    async def test_each_item_is_written_on_behalf_of_its_submitter(self) -> None:
        alice = (await self.store.accounts.create_user("613", "10001", 1)).id
        first = Deferred.fromCoroutine(self.add_message(alice, 0))
        with acting(Actor("user", "alice", "127.0.0.1")):
            theirs = Deferred.fromCoroutine(self.add_message(alice, 1))
        nobodys = Deferred.fromCoroutine(self.add_message(alice, 2))
        await DeferredList([first, theirs, nobodys], fireOnOneErrback=True)
        journal = [e for e in await self.store.journal.all() if e.object_kind == "messages"]
        self.assertEqual([(e.actor, e.object_id) for e in journal],
                         [("alice", str(theirs.result.id))])

    async def test_rows_of_any_number_go_in_few_statements(self) -> None:
        self.assertEqual([len(c) for c in chunks(list(range(150)))],
                         [64, 64, 16, 4, 1, 1])
        alice = (await self.store.accounts.create_user("613", "10001", 1)).id
        rows = [{"user_id": alice, "extension_id": None, "call_id": f"c{n}",
                 "caller_id": "", "called_id": "", "created_at": n, "duration": n,
                 "file_name": f"m{n}", "file_format": "wav", "size_bytes": 0}
                for n in range(85)]
        ids = await self.db.run_interaction(MESSAGES.insert_many, rows)
        self.assertEqual(len(set(ids)), 85)
        for n in (0, 63, 64, 84):
            self.assertEqual((await self.store.messages.get(alice, ids[n])).file_name,
                             f"m{n}")


GroupWritesOnSQLite, GroupWritesOnMariaDB = on_both_backends(GroupWritesTests)
