"""A position adopted from a flip by hand, then flipped and closed by hand before the keeper
saw it: its close is booked from the person's trades, never from our own entry's trade of the
position the flip closed (the hand-trading campaign, seed 30513: that trade, the exact
quantity and within 5 min of the adoption, was taken for the close)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from test_keeper_external_exits import BTC, fee_paid, opened
from test_keeper_fees_unread import sent
from test_keeper_properties import Harness
from test_keeper_round_trip import trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.keeper.ids import Purpose


@pytest.mark.parametrize("looks_fail", [False, True])
async def test_an_adopted_position_closed_by_hand_is_never_booked_at_our_own_entry(
    looks_fail: bool,
) -> None:
    """Our long at 100; the person sells twice it at 102 (the keeper books the close and
    adopts the short), buys twice it at 104 and sells it at 103 — with the keeper's looks
    failing meanwhile or not looking. The short closed at 104 with its share of that buy's
    fee, the person's long 104 → 103 a trade of its own; our entry's buy at 100 never."""
    harness = await Harness.start()
    quantity = await opened(harness)
    [entry] = sent(harness.exchange, Purpose.ENTRY)
    harness.exchange.move(BTC, Decimal(102))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    await harness.tick()
    adopted = harness.keeper.positions[BTC]
    assert (adopted.side, adopted.entry_price) == (Side.SHORT, Decimal(102))
    harness.exchange.move(BTC, Decimal(104))
    await trade(harness, "web_flip_2", OrderSide.BUY, 2 * quantity)
    if looks_fail:
        harness.exchange.reads_down_until = harness.now + timedelta(seconds=12)
        assert not await harness.tick()
    harness.exchange.move(BTC, Decimal(103))
    await trade(harness, "web_closed_1", OrderSide.SELL, quantity)
    if looks_fail:
        assert not await harness.tick()
    assert await harness.tick()

    trades = sorted(await harness.repository.closed_trades(), key=lambda t: t.entry_price)
    assert [(t.side, t.entry_price, t.exit_price, t.exit_reason) for t in trades] == [
        (Side.LONG, Decimal(100), Decimal(102), ExitReason.MANUAL),
        (Side.SHORT, Decimal(102), Decimal(104), ExitReason.MANUAL),
        (Side.LONG, Decimal(104), Decimal(103), ExitReason.MANUAL),
    ]
    assert harness.keeper.positions == {}
    paid = sum(fee_paid(harness, c) for c in (entry, "web_flip_1", "web_flip_2", "web_closed_1"))
    assert sum(t.fees_usdt for t in trades) == paid
    flips = fee_paid(harness, "web_flip_1") + fee_paid(harness, "web_flip_2")
    assert trades[1].fees_usdt == flips / 2  # each flip's share: half its quantity
