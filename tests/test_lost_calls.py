"""Calls cut when their xvbd died: the hold is settled within the lease, the call charged
until its process's last heartbeat (never past what the hold paid for), the rest returned,
one RESULT=CUT record written to every sink, once, whichever of several processes
reconciles; on SQLite and MariaDB, on a task.Clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import Clock

from tests.support.db import DatabaseCase, on_both_backends
from xvbd.accounting.billing import CallCharge, Prices, cut_cost
from xvbd.accounting.cdr import CDRRecord
from xvbd.accounting.lostcalls import LostCalls
from xvbd.accounting.sinks import CDREmitter, DBSink
from xvbd.liveness import Liveness
from xvbd.store import Store
from xvbd.store.accounts import User
from xvbd.store.billing import HeldCall, Hold, LostHold

UNIT = 10_000
START = 1_800_000_000
LEASE = 15  # three heartbeats of 5 s


class ListSink:
    """The records given, as the FILE and UDP sinks would write them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, records: Sequence[CDRRecord]) -> Deferred[None]:
        self.lines.extend(r.line() for r in records)
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def health(self) -> dict[str, Any]:
        return {"sink": "LIST"}


def test_the_cost_of_a_cut_call() -> None:
    def lost(seen_at: int | None, covers_until: int = START + 60, held_at: int = START,
             per_minute: int = UNIT, per_call: int = 1000) -> LostHold:
        return LostHold(Hold("c", 1, 11000, covers_until, "N", START, "a", START, held_at,
                             per_minute, per_call), seen_at)

    assert cut_cost(lost(START + 30)) == (1000 + UNIT // 2, START + 30), "until the heartbeat"
    assert cut_cost(lost(START + 600)) == (11000, START + 60), "never past what it paid"
    assert cut_cost(lost(None, held_at=START + 20)) == (1000 + 3334, START + 20), \
        "no heartbeat known: until money was last held"
    assert cut_cost(lost(START - 5)) == (1000, START), "the per-call price at least"
    assert cut_cost(lost(START + 30, per_minute=0, per_call=0)) == (11000, START + 30), \
        "a hold that kept no prices (older release) is kept, as that release did"


class LostCallsTests(DatabaseCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(START)

    def process(self, instance: str) -> Store:
        """The store of one xvbd process (its own instance) on the test's database."""
        return Store(self.db, clock=self.clock.seconds, instance=instance)

    def reconciler(self, store: Store) -> tuple[LostCalls, ListSink]:
        sink = ListSink()
        emitter = CDREmitter([sink, DBSink(store.cdrs)])
        return LostCalls(store.billing, emitter, LEASE, self.clock), sink

    async def tenant(self, balance: int = 5 * UNIT) -> User:
        acc = self.store.accounts
        tariff = await acc.create_tariff("priced", 2, ivr_minute=UNIT, ivr_call=1000)
        group = await acc.create_group("prepaid", tariff.id)
        user = await acc.create_user("613", "10001", group.id)
        await acc.change_balance(user.id, balance, "top-up")
        return user

    async def start_call(self, store: Store, user: User, call_id: str = "c" * 32) -> CallCharge:
        price = Prices(per_minute=UNIT, per_call=1000)
        held = HeldCall(server_id="FCC-NN", started_at=int(self.clock.seconds()),
                        per_minute=price.per_minute, per_call=price.per_call,
                        call_type="incoming", currency_id=2, access_code="10001",
                        caller_id="6135550123", called_id="100")
        charge = CallCharge(store.billing, self.clock, user.id, call_id, self.clock.seconds(),
                            price, held)
        self.assertTrue(await charge.start())
        self.addCleanup(self.kill, charge)
        return charge

    def kill(self, charge: CallCharge) -> None:
        """The call's process is gone, and its timers with it."""
        if charge._timer is not None and charge._timer.active():
            charge._timer.cancel()

    async def balance(self, user: User) -> int:
        return (await self.store.accounts.get_user(user.id)).balance

    async def cdr_rows(self) -> list[dict[str, Any]]:
        return await self.db.run_interaction(
            lambda txn: txn.all("SELECT record_id, call_id, server_id, subscr_id, cost, "
                                "stop_timestamp, data FROM cdrs ORDER BY record_id"))

    async def test_a_killed_process_s_call_is_settled_within_the_lease(self) -> None:
        user = await self.tenant()
        dead = self.process("dead")
        await dead.processes.beat("dead", "FCC-NN", 1)
        charge = await self.start_call(dead, user)
        self.assertEqual(charge.held, 11000)  # the call price and a minute
        self.clock.advance(20)
        await dead.processes.beat("dead", "FCC-NN", 1)  # its last heartbeat, 20 s in
        # ... and the process is killed: nothing settles the call
        other = self.process("other")
        lost_calls, sink = self.reconciler(other)
        self.clock.advance(LEASE)
        self.assertEqual(await lost_calls.reconcile(), 0, "silent for the lease, not more")
        self.assertEqual(await self.balance(user), 5 * UNIT - 11000)
        self.clock.advance(1)
        self.assertEqual(await lost_calls.reconcile(), 1)
        cost = 1000 + -(-UNIT * 20 // 60)  # 20 s at 1.00 a minute, and the call price
        self.assertEqual(await self.balance(user), 5 * UNIT - cost)
        self.assertEqual(await other.billing.all_holds(), [])
        ops = await self.store.accounts.balance_history(user.id)
        self.assertEqual((ops[0].reason, ops[0].amount, ops[0].call_id),
                         ("call cut: unused hold returned", 11000 - cost, "c" * 32))
        self.assertEqual(sink.lines, [
            f"ACCESS_CODE=10001, CALLED_ID=100, CALLER_ID=6135550123, CALL_ID={'c' * 32}, "
            f"CALL_TYPE=incoming, COST=0.4334, CREATE_TIMESTAMP={START + 20}, CURRENCY_ID=2, "
            f"PROCESS_TIMESTAMP={START + 36}, SERVER_ID=FCC-NN, START_TIMESTAMP={START}, "
            f"STOP_TIMESTAMP={START + 20}, SUBSCR_ID={user.id}, SYS_COST=0.4334, TYPE=XVB, "
            "DATA=DTMF=, RESULT=CUT"])
        self.assertEqual(await self.cdr_rows(), [
            {"record_id": f"{'c' * 32}:cut", "call_id": "c" * 32, "server_id": "FCC-NN",
             "subscr_id": user.id, "cost": cost, "stop_timestamp": START + 20,
             "data": "DTMF=, RESULT=CUT"}])
        self.assertEqual(await lost_calls.reconcile(), 0, "once")
        self.assertEqual(len(sink.lines), 1)

    async def test_the_call_s_own_end_after_a_wrong_cut_charges_nothing_twice(self) -> None:
        user = await self.tenant()
        slow = self.process("slow")
        await slow.processes.beat("slow", "FCC-NN", 1)
        charge = await self.start_call(slow, user)
        self.clock.advance(LEASE + 1)  # its heartbeat is late: taken for dead
        lost_calls, sink = self.reconciler(self.process("other"))
        self.assertEqual(await lost_calls.reconcile(), 1)
        after_cut = await self.balance(user)
        self.assertEqual(after_cut, 5 * UNIT - 1000, "nothing known past its start")
        await charge._take(5000)  # the live call asks for more: refused
        self.assertEqual(await self.balance(user), after_cut)
        self.assertEqual(await charge.settle(self.clock.seconds()), 0)
        self.assertEqual(await self.balance(user), after_cut)
        self.assertEqual(len(sink.lines), 1)

    async def test_a_live_process_s_calls_are_left_alone(self) -> None:
        user = await self.tenant()
        live = self.process("live")
        await live.processes.beat("live", "FCC-NN", 1)
        charge = await self.start_call(live, user)
        lost_calls, sink = self.reconciler(self.process("other"))
        for _ in range(10):
            self.clock.advance(5)
            await live.processes.beat("live", "FCC-NN", 1)
            self.assertEqual(await lost_calls.reconcile(), 0)
        own, _ = self.reconciler(live)
        self.clock.advance(LEASE * 10)
        self.assertEqual(await own.reconcile(), 0, "a process never cuts its own calls")
        await charge.settle(self.clock.seconds())
        self.assertEqual(sink.lines, [])

    async def test_two_processes_reconciling_at_once_settle_a_call_once(self) -> None:
        user = await self.tenant()
        dead = self.process("dead")
        await dead.processes.beat("dead", "FCC-NN", 1)
        for n in range(3):
            await self.start_call(dead, user, call_id=f"{n:032x}")
        self.clock.advance(LEASE + 1)
        stores = self.process("one"), self.process("two")
        for store in stores:  # reconcilers are processes that beat (Liveness beats first)
            await store.processes.beat(store.instance, "FCC-NN", 2)
        (one, one_sink), (two, two_sink) = (self.reconciler(s) for s in stores)
        done = await gatherResults([Deferred.fromCoroutine(one.reconcile()),
                                    Deferred.fromCoroutine(two.reconcile())])
        self.assertEqual(sum(done), 3)
        self.assertEqual(len(one_sink.lines) + len(two_sink.lines), 3)
        self.assertEqual(len(await self.cdr_rows()), 3)
        self.assertEqual(await self.balance(user), 5 * UNIT - 3 * 1000)

    async def test_a_process_never_seen_and_one_stopped(self) -> None:
        user = await self.tenant()
        ghost = self.process("ghost")  # wrote no heartbeat (killed at once)
        await self.start_call(ghost, user, call_id="1" * 32)
        stopped = self.process("stopped")
        await stopped.processes.beat("stopped", "FCC-NN", 1)
        await self.start_call(stopped, user, call_id="2" * 32)
        self.clock.advance(10)
        await stopped.processes.stopped("stopped")  # a clean stop that left a hold
        lost_calls, sink = self.reconciler(self.process("other"))
        self.assertEqual(await lost_calls.reconcile(), 1, "the stopped one's, at once")
        self.assertIn("CALL_ID=" + "2" * 32, sink.lines[0])
        self.assertIn("COST=0.2667", sink.lines[0])  # 10 s and the call price
        self.clock.advance(LEASE - 10)
        self.assertEqual(await lost_calls.reconcile(), 0, "an unknown one, after the lease")
        self.clock.advance(1)
        self.assertEqual(await lost_calls.reconcile(), 1)
        self.assertIn("COST=0.1, ", sink.lines[1])  # held at its start: the call price
        self.assertEqual(await self.balance(user), 5 * UNIT - 2667 - 1000)

    async def test_a_reconciler_that_dies_before_the_record_leaves_it_to_another(
            self) -> None:
        user = await self.tenant()
        dead = self.process("dead")
        await dead.processes.beat("dead", "FCC-NN", 1)
        await self.start_call(dead, user)
        self.clock.advance(LEASE + 1)
        first = self.process("first")
        await first.processes.beat("first", "FCC-NN", 2)
        [lost] = await first.billing.lost_holds("first", LEASE)
        cut = await first.billing.cut_hold(lost, "first", LEASE, cut_cost)
        assert cut is not None  # money settled; then "first" is killed before its record
        self.assertEqual(await self.balance(user), 5 * UNIT - 1000)
        lost_calls, sink = self.reconciler(self.process("second"))
        self.assertEqual(await lost_calls.reconcile(), 0, "first is alive: its job")
        self.clock.advance(LEASE + 1)
        self.assertEqual(await lost_calls.reconcile(), 1)
        self.assertEqual(await self.balance(user), 5 * UNIT - 1000, "money moved once")
        self.assertEqual(len(sink.lines), 1)
        self.assertEqual(len(await self.cdr_rows()), 1)
        self.assertEqual(await lost_calls.reconcile(), 0)

    async def test_the_heartbeat_service(self) -> None:
        user = await self.tenant()
        dead = self.process("dead")
        await dead.processes.beat("dead", "FCC-NN", 1)
        self.kill(await self.start_call(dead, user))
        mine = self.process("mine")
        lost_calls, sink = self.reconciler(mine)
        service = Liveness(mine.processes, lost_calls, "FCC-NN", 5, self.clock, pid=42)
        service.startService()
        for _ in range(4):
            await self.settle_db()
            self.clock.advance(5)
        await self.settle_db()
        row = await mine.processes.get("mine")
        assert row is not None
        self.assertEqual((row.server_id, row.pid, row.stopped_at), ("FCC-NN", 42, 0))
        self.assertEqual(row.seen_at, START + 20)
        self.assertEqual(len(sink.lines), 1, "the dead process's call, within the lease")
        self.assertEqual(await mine.billing.all_holds(), [])
        await service.stopService()
        row = await mine.processes.get("mine")
        assert row is not None
        self.assertEqual(row.stopped_at, START + 20)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def settle_db(self) -> None:
        """Let the database answer what the service asked (on its pool's thread)."""
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        for _ in range(5):
            await deferLater(reactor, 0.02, lambda: None)


LostCallsOnSQLite, LostCallsOnMariaDB = on_both_backends(LostCallsTests)
