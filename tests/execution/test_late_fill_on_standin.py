"""A market entry Binance answers NEW with nothing executed, its fill reported later: through
the ccxt adapter and BinanceStreams on the stand-in (`Engine.fill_market_later_ms`: the answer
`status NEW, executedQty "0", avgPrice "0.00"`, the fill in ORDER_TRADE_UPDATE and the order
query some seconds on), in its simulated time, the keeper ticked every 5 s.

The sizer plans BTC at the mark 100,000: 0.003 BTC, stop 97,000, target 106,000. An entry
booked from its answer gets its stop and its take-profit at once (keeper/answer.py). Booked by
the tick that settles it, was: the stop alone (the one `enter` places blind for an entry whose
outcome is unknown), never the take-profit — the stop maths sold at market at the target
instead, a taker's fill where the exchange's order would have closed it at the trigger.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from decimal import Decimal

from loopback import Fault, FillPlan, LoopbackBinance
from loopback.faults import Outage
from loopback.fixtures import advance
from standin_keeper import EnteringKeeper, keeper_on_streams
from structlog.testing import capture_logs
from test_exchange_answers import BTC

from quantum_trader.domain import ExitReason, OrderKind, OrderRequest, OrderSide, Side
from quantum_trader.errors import RetryLater

MARKET = "BTCUSDT"
FILLED_AFTER_MS = 8_000  # the entry executes 8 s after it was answered NEW
PLANNED = [
    ("STOP_MARKET", "SELL", "0.003", "97000"),
    ("TAKE_PROFIT_MARKET", "SELL", "0.003", "106000"),
]


class Rig(EnteringKeeper):
    def market_exits(self) -> list[dict[str, str]]:
        return [
            p
            for m, path, p in self.server.requests
            if (m, path) == ("POST", "/fapi/v1/order") and p.get("reduceOnly") == "true"
        ]


def keeper_filled_later(later_ms: int = FILLED_AFTER_MS) -> AbstractAsyncContextManager[Rig]:
    """A keeper of an empty account reading the streams' mirror of a stand-in that answers
    market orders NEW and executes them `later_ms` on."""

    def fill_later(server: LoopbackBinance) -> None:
        server.engine.fill_market_later_ms = later_ms

    return keeper_on_streams(Rig, fill_later)


async def test_an_entry_answered_new_and_filled_later_gets_its_stop_and_take_profit() -> None:
    async with keeper_filled_later() as rig:
        await rig.enter()
        assert rig.server.state.holding(MARKET).amount == 0  # answered NEW, nothing executed
        await rig.tick(4)  # filled 8 s on; booked by the tick after

        assert rig.server.state.holding(MARKET).amount == Decimal("0.003")
        assert rig.open_orders() == PLANNED
        position = rig.keeper.view().positions[BTC]
        assert position.take_profit_order_id == rig.sent("TAKE_PROFIT_MARKET")[0]["clientAlgoId"]
        assert (len(rig.sent("STOP_MARKET")), len(rig.sent("TAKE_PROFIT_MARKET"))) == (1, 1)


async def test_the_take_profit_of_an_entry_filled_later_closes_it_on_the_exchange() -> None:
    """The mark reaches the target: the exchange's take-profit closes the position (TP_HIT at
    its trigger), not a market exit of the keeper's."""
    async with keeper_filled_later() as rig:
        await rig.enter()
        await rig.tick(4)
        rig.server.state.marks[MARKET] = Decimal("106000.0")
        await rig.tick(3)

        assert rig.server.state.holding(MARKET).amount == 0
        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.TP_HIT
        assert trade.exit_price == Decimal("106000.0")
        assert rig.market_exits() == []


async def test_restarts_around_a_late_fill_place_its_stop_and_take_profit_once() -> None:
    """Restarted while the entry is still NEW on the exchange, and again once it is
    protected: one stop and one take-profit sent in all, both kept."""
    async with keeper_filled_later(12_000) as rig:
        await rig.enter()
        await rig.tick()
        await rig.restart()  # the entry unsettled, its blind stop working
        assert rig.server.state.holding(MARKET).amount == 0
        await rig.tick(4)
        await rig.restart()
        await rig.tick(3)

        assert rig.open_orders() == PLANNED
        assert (len(rig.sent("STOP_MARKET")), len(rig.sent("TAKE_PROFIT_MARKET"))) == (1, 1)
        assert rig.keeper.view().positions[BTC].quantity == Decimal("0.003")


async def test_an_entry_filled_later_past_its_target_is_exited_with_no_target_placed() -> None:
    """The fill-vs-plan check applies to an entry the tick books (keeper/fill_check.py)."""
    async with keeper_filled_later() as rig:
        fill = FillPlan(Decimal(1), price=Decimal("106500.0"))
        rig.server.inject(Fault("/fapi/v1/order", method="POST", fill=fill))
        with capture_logs() as logs:
            await rig.enter()
            await rig.tick(4)

        assert [e["event"] for e in logs].count("entry_filled_past_target") == 1
        assert rig.sent("TAKE_PROFIT_MARKET") == []
        assert rig.server.state.holding(MARKET).amount == 0
        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.FILL_OFF_PLAN


async def filled_then_falling(rig: Rig) -> tuple[Decimal, Decimal]:
    """Our long entered, answered NEW and filled 8 s on; a second after, the mark 1,000 under
    its fill, the stand-in filling market orders at once again: (its fill, the mark now)."""
    server = rig.server
    await rig.enter()
    await advance(server, FILLED_AFTER_MS / 1000 + 1)
    server.engine.fill_market_later_ms = None  # the person's order fills at once
    entered = server.state.mark(MARKET)
    server.state.marks[MARKET] = sold = entered - 1_000
    return entered, sold


async def flipped_by_hand(rig: Rig) -> None:
    """A person sells twice our long at the mark: a short held."""
    flip = OrderRequest("web_flip_1", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal("0.006"))
    await rig.exchange.place_order(flip)


async def test_an_entry_filled_later_and_flipped_by_hand_before_a_tick_is_booked_then_flipped() -> (
    None
):
    """The suite's hand-trading seed 30006: our long, answered NEW, fills 8 s on; a second
    after, before the keeper's next tick, a person sells twice it 1,000 under (a short held).
    Booked: our long closed MANUAL at the person's price, the short adopted with its half of
    the flip's fee, every commission the stand-in charged once (was: the short adopted
    "(default)", our long never booked — "filled but not reflected")."""
    async with keeper_filled_later() as rig:
        server = rig.server
        entered, sold = await filled_then_falling(rig)
        await flipped_by_hand(rig)
        with capture_logs() as logs:
            await rig.tick(3)

        [ours] = await rig.repository.closed_trades()
        row = (ours.side, ours.quantity, ours.entry_price, ours.exit_price, ours.exit_reason)
        assert row == (Side.LONG, Decimal("0.003"), entered, sold, ExitReason.MANUAL)
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity, position.entry_price) == (
            Side.SHORT,
            Decimal("0.003"),
            sold,
        )
        charged = server.state.trades  # our entry, the flip
        assert len(charged) == 2
        paid = sum(Decimal(t["commission"]) for t in charged)
        assert ours.fees_usdt + position.fees_usdt == paid
        assert "order_settled_unreflected" not in [e["event"] for e in logs]


async def test_an_entry_flipped_by_hand_whose_fresh_read_was_refused_is_still_booked() -> None:
    """The restart campaign's seed 41643: as above, but the entry's lookups fail for 35 s
    (past the grace period of an unknown order), and when they answer, the read of its
    fills is rate limited (429, Retry-After 3 s), so the tick's fresh REST read is refused
    too. The next tick reads everything from the streams' mirror, which never counts a fill
    as reflected: it plans again from REST, which books our long and the flip (was: the
    entry waited on from the mirror, settled "filled but not reflected", the short adopted,
    our long never booked)."""
    async with keeper_filled_later() as rig:
        server = rig.server
        entered, sold = await filled_then_falling(rig)
        now = server.state.now_ms
        server.outage(Outage("/fapi/v1/order", now, now + 35_000, method="GET"))
        await flipped_by_hand(rig)
        with capture_logs() as logs:
            await rig.tick(6)  # each of these ticks fails to look the entry up
            busy = Fault("/fapi/v1/userTrades", status=429, code=-1003, retry_after_s=3)
            server.inject(busy)
            with contextlib.suppress(RetryLater):  # the fresh read meets the Retry-After
                await rig.tick()
            await rig.tick(2)

        assert "fills_read_failed" in [e["event"] for e in logs]
        [ours] = await rig.repository.closed_trades()
        row = (ours.side, ours.quantity, ours.entry_price, ours.exit_price, ours.exit_reason)
        assert row == (Side.LONG, Decimal("0.003"), entered, sold, ExitReason.MANUAL)
        position = rig.keeper.positions[BTC]
        assert (position.side, position.quantity) == (Side.SHORT, Decimal("0.003"))
        assert "order_settled_unreflected" not in [e["event"] for e in logs]
