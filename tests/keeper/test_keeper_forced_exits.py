"""A position the exchange closed itself (liquidated, auto-deleveraged) is booked LIQUIDATION or
ADL, at the price and fee of its own trades; was MANUAL, like a close by hand, so a user reading
the trades could not tell. The exchange's force orders are read only when such a close is
booked from the account's trades; when they cannot be read the close is booked MANUAL as
before, with one warning (keeper/forced.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid, noted, opened
from test_keeper_properties import KEEPER, T0, TICK, Harness

from quantum_trader.domain import ExitReason, Fill, OrderSide
from quantum_trader.keeper.forced import forced_reason


async def force_closed(reason: ExitReason) -> tuple[Harness, str, Decimal]:
    """A long the exchange then closes itself at 101 (`reason`), the mark 103 when the keeper
    looks; the harness, the exchange's order id and the position's entry fees."""
    harness = await Harness.start()
    await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    harness.exchange.move(BTC, Decimal(101))
    order_id = harness.exchange.force_close(BTC, reason)
    harness.exchange.move(BTC, Decimal(103))
    return harness, order_id, entry_fees


async def test_a_liquidation_is_booked_as_one_at_its_own_price_and_fee() -> None:
    harness, order_id, entry_fees = await force_closed(ExitReason.LIQUIDATION)
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.LIQUIDATION, Decimal(101))
    assert trade.fees_usdt == entry_fees + fee_paid(harness, order_id)
    assert "the exchange's own LIQUIDATION order" in noted(logs)
    [(symbol, start, end)] = harness.exchange.force_orders_asked
    assert symbol == BTC
    assert start < harness.now - timedelta(seconds=5) < end  # around the trade, not a week


async def test_an_auto_deleveraging_is_booked_as_one() -> None:
    harness, _, _ = await force_closed(ExitReason.ADL)
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.ADL, Decimal(101))


async def test_force_orders_that_cannot_be_read_book_manual_at_the_trades_with_one_warning(
) -> None:  # fmt: skip
    """A failed read and an answer the adapter cannot read: the close is still booked this
    tick, at its own trade, only not named."""
    for fault in ("force_orders_unreadable", "force_orders_malformed"):
        harness, order_id, entry_fees = await force_closed(ExitReason.LIQUIDATION)
        setattr(harness.exchange, fault, 1)
        with capture_logs() as logs:
            await harness.tick()

        assert harness.keeper.positions == {}
        [trade] = await harness.repository.closed_trades()
        assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, Decimal(101))
        assert trade.fees_usdt == entry_fees + fee_paid(harness, order_id)
        warned = [e for e in logs if e["event"] == "force_orders_unread"]
        assert [(e["symbol"], e["log_level"]) for e in warned] == [(BTC, "warning")]


async def test_a_close_by_hand_stays_manual_and_the_force_orders_are_read_once() -> None:
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_9", OrderSide.SELL, quantity)
    harness.exchange.move(BTC, Decimal(104))
    await harness.tick()
    for _ in range(3):
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, Decimal(102))
    assert [symbol for symbol, _, _ in harness.exchange.force_orders_asked] == [BTC]


async def test_no_force_orders_are_read_without_a_close_booked_from_the_accounts_trades(
) -> None:  # fmt: skip
    """Quiet ticks read none; nor does a close booked at the mark (its trades unread for
    `keeper.external_close_mark_after_s`: keeper/unpriced.py): there are no trades to name."""
    harness = await Harness.start()
    await opened(harness)
    for _ in range(3):
        await harness.tick()
    assert harness.exchange.force_orders_asked == []

    harness.exchange.force_close(BTC, ExitReason.LIQUIDATION)
    harness.exchange.account_fills_unreadable = 10_000
    for _ in range(int(KEEPER.external_close_mark_after_s / TICK.total_seconds()) + 2):
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.MANUAL
    assert harness.exchange.force_orders_asked == []


def test_a_close_partly_liquidated_is_named_by_the_liquidation() -> None:
    """Binance's liquidation may take part of a position and a person the rest; ADL and a
    liquidation in one close: LIQUIDATION. Orders not in the force orders are a person's."""
    fills = [
        Fill(str(i), order, BTC, OrderSide.SELL, Decimal(1), Decimal(100), Decimal(0), at)
        for i, (order, at) in enumerate([("order-7", T0), ("order-8", T0), ("order-9", T0)])
    ]
    liquidation, adl = ExitReason.LIQUIDATION, ExitReason.ADL
    ids = frozenset({"0", "1", "2"})
    assert forced_reason(ids, fills, {"order-7": liquidation}) is liquidation
    assert forced_reason(ids, fills, {"order-8": adl, "order-9": liquidation}) is liquidation
    assert forced_reason(ids, fills, {"order-8": adl}) is adl
    assert forced_reason(frozenset({"0"}), fills, {"order-8": adl}) is ExitReason.MANUAL
    assert forced_reason(ids, fills, {}) is ExitReason.MANUAL
