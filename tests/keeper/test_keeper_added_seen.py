"""An addition by hand the keeper saw and booked (the position grown to what the exchange
holds), then a close or a flip by hand: the addition's trade, not taken when the growth was
booked, made the account's trades show the position "added to by hand since it opened", so
the close was booked at the mark (the hand-trading campaign's seed 32221, 2026-12-04 night:
SHORT 0.181 flipped by hand at 3547.48 booked MANUAL at the mark 3549.29). A growth by hand
now reads the account's trades and takes those that made it, with their fee."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid, noted, opened
from test_keeper_fees_unread import sent
from test_keeper_properties import Harness
from test_keeper_round_trip import trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.keeper.ids import Purpose


async def grown_by_hand(harness: Harness) -> tuple[Decimal, str]:
    """Our long of 3 at 100; 10 min later 1 bought by hand at 101 and the growth booked by a
    tick. The quantity our entry opened, its id."""
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.advance(timedelta(minutes=10))
    harness.exchange.move(BTC, Decimal(101))
    await trade(harness, "web_added_2", OrderSide.BUY, Decimal(1))
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == quantity + 1
    assert harness.exchange.force_orders_asked == []  # an addition is no liquidation
    return quantity, entry


async def test_a_close_by_hand_after_an_addition_seen_is_booked_at_its_trade() -> None:
    harness = await Harness.start()
    quantity, entry = await grown_by_hand(harness)
    assert harness.keeper.positions[BTC].fees_usdt == fee_paid(harness, entry) + fee_paid(
        harness, "web_added_2"
    )
    harness.exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_4", OrderSide.SELL, quantity + 1)
    harness.exchange.move(BTC, Decimal(104))
    with capture_logs() as logs:
        await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.quantity, closed.exit_price, closed.exit_reason) == (
        quantity + 1,
        Decimal(103),
        ExitReason.MANUAL,
    )
    paid = sum(fee_paid(harness, c) for c in (entry, "web_added_2", "web_closed_4"))
    assert closed.fees_usdt == paid
    assert "the account's 1 trade(s) 103" in noted(logs)


async def test_a_flip_by_hand_after_an_addition_seen_is_booked_at_its_trade() -> None:
    harness = await Harness.start()
    quantity, _ = await grown_by_hand(harness)
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_flip_5", OrderSide.SELL, 2 * (quantity + 1))
    harness.exchange.move(BTC, Decimal("98.5"))
    await harness.tick()

    [closed] = await harness.repository.closed_trades()
    assert (closed.exit_price, closed.exit_reason) == (Decimal(99), ExitReason.MANUAL)
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        quantity + 1,
        Decimal(99),
    )


async def test_a_growth_whose_trades_cannot_be_read_is_booked_and_said() -> None:
    """The account's trades unreadable at the growth: grown all the same, the line says its
    fee is not booked."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.advance(timedelta(minutes=10))
    await trade(harness, "web_added_3", OrderSide.BUY, Decimal(1))
    harness.exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions[BTC].quantity == quantity + 1
    [grew] = [e for e in logs if e["event"] == "position_grown"]
    assert "could not be read: its fee not booked" in grew["detail"]
