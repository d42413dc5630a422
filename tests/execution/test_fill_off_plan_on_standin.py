"""An entry the stand-in fills far from its plan, through the ccxt adapter and BinanceStreams
in the stand-in's simulated time (keeper/fill_check.py; the model exchange's cases:
tests/keeper/test_keeper_fill_off_plan.py).

The sizer plans BTC at the mark 100,000: 0.003 BTC, stop 97,000, target 106,000, 9 USDT at
risk. The stand-in fills the market order at a price of its own (`FillPlan.price`: a book
thinner than the mark suggests). Past the target, was: the target placed at 106,000 below the
fill, resting until a TP_HIT booked a loss. Far past the stop distance, was: nothing said, 18
USDT at risk where 9 were approved.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from decimal import Decimal
from typing import Any

from loopback import Fault, FillPlan
from loopback.fixtures import advance, settle
from standin_keeper import StandinKeeper, keeper_on_streams
from structlog.testing import capture_logs
from test_exchange_answers import BTC, sized
from test_stop_check_on_standin import covered

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ExitReason, Side

ALGO_ORDER = "/fapi/v1/algoOrder"
MARKET = "BTCUSDT"


class Rig(StandinKeeper):
    async def enter_filled_at(
        self, price: Decimal, cap: Decimal | None = None
    ) -> list[MutableMapping[str, Any]]:
        """Enter BTC LONG as planned at the mark, the stand-in filling it at `price`; `cap`:
        the risk guard's per-trade cap."""
        plan = sized(BTC, Side.LONG, self.server.state.mark(MARKET))
        fill = FillPlan(Decimal(1), price=price)
        self.server.inject(Fault("/fapi/v1/order", method="POST", fill=fill))
        with capture_logs() as logs:
            if cap is None:
                await self.keeper.enter(plan, self.clock.now())
            else:
                await self.keeper.enter(plan, self.clock.now(), risk_cap_usdt=cap)
            await settle(self.server)
        return logs

    def targets_sent(self) -> list[dict[str, str]]:
        return [
            p
            for m, path, p in self.server.requests
            if (m, path) == ("POST", ALGO_ORDER) and p.get("type") == "TAKE_PROFIT_MARKET"
        ]


def keeper_on_standin() -> AbstractAsyncContextManager[Rig]:
    """A keeper of an empty account reading the streams' mirror of a stand-in."""
    return keeper_on_streams(Rig)


async def test_an_entry_the_standin_fills_past_its_target_is_exited_with_no_target_placed(
) -> None:  # fmt: skip
    async with keeper_on_standin() as rig:
        logs = await rig.enter_filled_at(Decimal("106500.0"))

        [line] = [e for e in logs if e["event"] == "entry_filled_past_target"]
        assert "@ 106500" in line["detail"]
        assert "target 106000" in line["detail"]
        assert rig.targets_sent() == []
        assert [e for e in logs if e["event"] == "take_profit_order_failed"] == []
        assert rig.server.state.holding(MARKET).amount == 0  # sold at once, reduce-only
        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
        assert trade.entry_price == Decimal("106500.0")
        for _ in range(3):
            await rig.tick()
        snapshot = await rig.exchange.fetch_snapshot(rig.clock.now())
        assert snapshot.positions == {}
        assert list(snapshot.open_conditional_orders) == []  # its stop cancelled once it closed


async def test_an_entry_the_standin_fills_far_past_its_stop_distance_is_cut_to_the_cap() -> None:
    """Filled at 103,000: 6,000 from the stop, 18 USDT at risk (2 R); the cap 12 allows 0.002
    BTC, so 0.001 is sold at once, reduce-only, and the stop resized to what is held."""
    async with keeper_on_standin() as rig:
        logs = await rig.enter_filled_at(Decimal("103000.0"), Decimal(12))

        [line] = [e for e in logs if e["event"] == "entry_risk_above_plan"]
        assert "18.00 USDT" in line["detail"]
        assert "2.0 R of the 9.00 approved" in line["detail"]
        assert "selling 0.001" in line["detail"]
        assert rig.server.state.holding(MARKET).amount == Decimal("0.002")
        assert len(rig.targets_sent()) == 1  # the target still lies beyond the fill
        for _ in range(2):
            await rig.tick()
            snapshot = await rig.exchange.fetch_snapshot(rig.clock.now())
            assert covered(snapshot, BTC)
        assert rig.keeper.positions[BTC].quantity == Decimal("0.002")
        sells = [
            p
            for m, path, p in rig.server.requests
            if (m, path) == ("POST", "/fapi/v1/order") and p.get("reduceOnly") == "true"
        ]
        assert [p["quantity"] for p in sells] == ["0.001"]  # once


async def test_an_entry_answered_503_that_filled_past_its_target_is_booked_closed_at_its_exit(
) -> None:  # fmt: skip
    """The entry's answer a 503 though it filled, at 106,500; the cycle that sent it began 10 s
    before (it waited for the keeper's lock behind a tick). The REST tick at once adopts the
    fill and exits it, at the entry's time: was booked closed then, at its opening, though
    its exit filled 10 s later."""
    async with keeper_on_standin() as rig:
        plan = sized(BTC, Side.LONG, rig.server.state.mark(MARKET))
        fill = FillPlan(Decimal(1), price=Decimal("106500.0"))
        unanswered = Fault(
            "/fapi/v1/order", method="POST", status=503, body="Service Unavailable",
            processed=True, fill=fill,
        )  # fmt: skip
        rig.server.inject(unanswered)
        cycle = rig.now()
        await advance(rig.server, 10)
        await rig.keeper.enter(plan, cycle)
        await settle(rig.server)

        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.FILL_OFF_PLAN
        [_, sold] = rig.server.state.trades
        assert sold["side"] == "SELL"
        assert trade.closed_at == utc_from_ms(sold["time"]) == cycle + timedelta(seconds=10)
        assert trade.opened_at == cycle
