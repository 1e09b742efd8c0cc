"""Internal billing through real calls: no balance, no call; a call lasts what its balance
pays; its cost is exact and kept once; fifty calls on one balance never overdraw it; fees
are charged once per period."""

from __future__ import annotations

import re

from twisted.internet.task import Clock

from tests.peers.agi import Caller
from tests.support.db import on_both_backends
from tests.support.engine import EngineCase
from xvbd.accounting.billing import Prices
from xvbd.accounting.fees import FeeCharger
from xvbd.store.accounts import User

UNIT = 10_000  # 1.00 of the currency


def test_cost_is_exact_and_rounded_up() -> None:
    price = Prices(per_minute=UNIT, per_call=UNIT // 10)  # 1.00 a minute, 0.10 a call
    assert price.cost(0) == 1000
    assert price.cost(5) == 1000 + 834  # 5/60 of 1.00 = 0.08333… -> 0.0834
    assert price.cost(4.2) == price.cost(5), "by the started second"
    assert price.cost(60) == 11000
    assert price.seconds_paid(11000) == 60
    assert price.seconds_paid(500) == 0
    assert Prices(0, 0).free and not price.free


class BillingTests(EngineCase):
    async def priced_user(self, balance: int, *, per_minute: int = UNIT,
                          per_call: int = 0) -> User:
        acc, ivr = self.store.accounts, self.store.ivr
        tariff = await acc.create_tariff("priced", 2, ivr_minute=per_minute, ivr_call=per_call,
                                         daily_fee=UNIT // 2, monthly_fee=3 * UNIT)
        group = await acc.create_group("prepaid", tariff.id)
        user = await acc.create_user("613", "10001", group.id)
        await acc.assign_did("100", user.id)
        if balance:
            await acc.change_balance(user.id, balance, "top-up")
        root = await ivr.create_root(user.id, "Playback", {"greeting": "system:welcome"})
        await ivr.add_child(user.id, root.id, "2", "DateTime", {})
        return user

    async def balance(self, user: User) -> int:
        return (await self.store.accounts.get_user(user.id)).balance

    async def test_no_balance_no_call(self) -> None:
        user = await self.priced_user(0)
        peer = await self.call(Caller(), args=("100",))
        self.assertEqual(peer.commands[-2:], ['STREAM FILE please-try-call-later ""', "HANGUP"])
        self.assertFalse(any("welcome" in c for c in peer.commands))
        self.assertEqual(self.result, "NOFUNDS")
        self.assertIn(", COST=0, ", self.cdr_lines()[-1])
        self.assertEqual(await self.balance(user), 0)

    async def test_a_short_call_costs_exactly_its_seconds(self) -> None:
        user = await self.priced_user(5 * UNIT, per_call=UNIT // 10)
        await self.call(Caller(keys=["2", "*"]), args=("100",))
        summary = self.cdr_lines()[-1]
        start, stop = (int(x) for x in re.findall(r"(?:START|STOP)_TIMESTAMP=(\d+)", summary))
        seconds = stop - start
        self.assertGreater(seconds, 0)
        cost = 1000 + -(-UNIT * seconds // 60)
        self.assertIn(f"COST={cost / UNIT:g}, CREATE_TIMESTAMP", summary)
        self.assertIn("CURRENCY_ID=2", summary)
        self.assertEqual(await self.balance(user), 5 * UNIT - cost)
        ops = await self.store.accounts.balance_history(user.id)
        self.assertEqual([op.reason for op in ops][:2],
                         ["call: unused hold returned", "call: held"])
        self.assertIsNone(await self.store.billing.held(user.id, self.calls[-1].call_id))

    async def test_a_call_lasts_what_the_balance_pays(self) -> None:
        user = await self.priced_user(2 * UNIT + UNIT // 2)  # 2.50: two and a half minutes
        peer = await self.call(Caller(keys=["#"] * 400), args=("100",))  # listens on
        self.assertEqual(self.result, "TIMEUP")
        self.assertEqual(peer.commands[-2:], ['STREAM FILE vm-goodbye ""', "HANGUP"])
        summary = self.cdr_lines()[-1]
        start, stop = (int(x) for x in re.findall(r"(?:START|STOP)_TIMESTAMP=(\d+)", summary))
        self.assertLessEqual(stop - start, 150 + 7, "ended at the first turn past 2.5 min")
        self.assertGreaterEqual(await self.balance(user), 0)
        self.assertEqual(await self.balance(user) + int(float(
            re.search(r"COST=([\d.]+)", summary)[1]) * UNIT), 2 * UNIT + UNIT // 2)

    async def test_fifty_calls_never_overdraw_one_balance(self) -> None:
        user = await self.priced_user(10 * UNIT)  # pays for ten minutes in all
        # fifty calls at the same moment: the refused ones' prompts must not move the clock
        # on for the others (a served call's paid minute would run out before its menu)
        peers = [await self.start(Caller(keys=[None] * 3, hold_on="^WAIT FOR DIGIT"),
                                  args=("100",), advance=lambda seconds: None)
                 for _ in range(50)]
        for peer in peers:  # every call is in its menu, or already refused
            await self.wait_for(lambda p=peer: p.holding.called or p.done.called)
        served = [p for p in peers if p.holding.called]
        self.assertLessEqual(len(served), 10, "each call needs a minute held to start")
        self.assertGreaterEqual(len(served), 5)
        self.assertGreaterEqual(await self.balance(user), 0)
        for peer in served:
            peer.release()
        for peer in peers:
            await peer.done
        await self.factory.when_idle()
        final = await self.balance(user)
        costs = sum(round(float(m) * UNIT) for m in re.findall(
            r", COST=([\d.]+)", "\n".join(self.cdr_lines())))
        self.assertGreaterEqual(final, 0)
        self.assertEqual(final + costs, 10 * UNIT, "every unit is either spent or still there")
        for call in self.calls:
            self.assertIsNone(await self.store.billing.held(user.id, call.call_id))

    async def wait_for(self, condition: object) -> None:
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        for _ in range(500):
            if condition():  # type: ignore[operator]
                return
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError("timed out")

    async def test_fees_are_charged_once_per_period(self) -> None:
        user = await self.priced_user(10 * UNIT)
        clock = Clock()
        clock.advance(1_800_000_000)  # 2027-01-15
        one, two = FeeCharger(self.store.billing, clock), FeeCharger(self.store.billing, clock)
        self.assertEqual(await one.charge_due(clock.seconds()), 2)
        self.assertEqual(await two.charge_due(clock.seconds()), 0, "another process: nothing")
        self.assertEqual(await one.charge_due(clock.seconds() + 3600), 0, "later that day")
        self.assertEqual(await self.balance(user), 10 * UNIT - UNIT // 2 - 3 * UNIT)
        self.assertEqual(await one.charge_due(clock.seconds() + 86400), 1, "the next day")
        self.assertEqual(await self.balance(user), 10 * UNIT - UNIT - 3 * UNIT)


BillingOnSQLite, BillingOnMariaDB = on_both_backends(BillingTests)
