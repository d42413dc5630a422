"""Our entry filled, then a person traded it away before any read of ours settled it.

The suite's hand-trading seed 30006 (session 60): our long's answer came late, a person
flipped it to a short, and the REST tick that settled the entry FILLED saw the short held:
the short was adopted "(default)", our long never booked (later "filled but not reflected").
A buy of ours that filled opened a long, whatever is held when it is first read: it is booked
from its fill, and what is held now is what a person did to it — a flip, a close.
"""

from __future__ import annotations

import contextlib
from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, fee_paid
from test_keeper_properties import Harness, sized
from test_keeper_round_trip import stops_of_ours, trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.errors import OrderRejected, RetryLater

OUTAGE = timedelta(seconds=20)


async def entered_unread(harness: Harness) -> tuple[str, Decimal, Decimal]:
    """Our long's answer lost and the exchange unreadable for 20 s: nothing of ours reads
    the fill. Our entry's id, quantity and price."""
    exchange = harness.exchange
    await harness.tick()
    exchange.lose_next = True
    exchange.reads_down_until = harness.now + OUTAGE
    price = exchange.marks[BTC]
    with contextlib.suppress(OrderRejected, RetryLater):
        await harness.keeper.enter(sized(BTC, Side.LONG, price), harness.now)
    [(cid, order)] = [(c, o) for c, o in exchange.orders.items() if c.startswith("qt-")][:1]
    assert BTC not in harness.keeper.positions
    return cid, order.filled_quantity, price


async def ticks_past_the_outage(harness: Harness) -> list[MutableMapping[str, Any]]:
    """Ticks until three after the outage (the grace period of an unknown order past)."""
    until = harness.now + OUTAGE + timedelta(seconds=15)
    with capture_logs() as logs:
        while harness.now <= until:
            await harness.tick()
    return logs


async def test_our_long_flipped_by_hand_before_it_was_read_is_booked_then_the_short() -> None:
    """Was: the short adopted "(default)", our long never booked."""
    harness = await Harness.start()
    entry, quantity, price = await entered_unread(harness)
    harness.exchange.move(BTC, price - 1)
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    logs = await ticks_past_the_outage(harness)

    [ours] = await harness.repository.closed_trades()
    assert (ours.side, ours.quantity, ours.entry_price) == (Side.LONG, quantity, price)
    assert (ours.exit_price, ours.exit_reason) == (price - 1, ExitReason.MANUAL)
    flip_fee = fee_paid(harness, "web_flip_1")
    assert ours.fees_usdt == fee_paid(harness, entry) + flip_fee / 2
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        quantity,
        price - 1,
    )
    assert position.fees_usdt == flip_fee / 2
    assert "order_settled_unreflected" not in [e["event"] for e in logs]


async def test_our_long_closed_by_hand_before_it_was_read_is_booked_closed() -> None:
    """Was: nothing booked, "filled but not reflected" once the grace period ran out."""
    harness = await Harness.start()
    entry, quantity, price = await entered_unread(harness)
    harness.exchange.move(BTC, price + 2)
    await trade(harness, "web_close_1", OrderSide.SELL, quantity)
    logs = await ticks_past_the_outage(harness)

    [ours] = await harness.repository.closed_trades()
    assert (ours.side, ours.quantity, ours.entry_price) == (Side.LONG, quantity, price)
    assert (ours.exit_price, ours.exit_reason) == (price + 2, ExitReason.MANUAL)
    assert ours.fees_usdt == fee_paid(harness, entry) + fee_paid(harness, "web_close_1")
    assert BTC not in harness.keeper.positions
    assert "order_settled_unreflected" not in [e["event"] for e in logs]


async def test_with_no_look_that_read_the_symbol_flat_the_flip_is_booked_too() -> None:
    """The entry the first thing the keeper did: no look had read BTC flat to bound the
    account's trades (was: the tick failed, KeyError, reading them)."""
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.lose_next = True
    exchange.reads_down_until = harness.now + OUTAGE
    price = exchange.marks[BTC]
    with contextlib.suppress(OrderRejected, RetryLater):
        await harness.keeper.enter(sized(BTC, Side.LONG, price), harness.now)
    quantity = exchange.held[BTC][1]
    exchange.move(BTC, price - 1)
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    await ticks_past_the_outage(harness)

    [ours] = await harness.repository.closed_trades()
    assert (ours.side, ours.quantity, ours.exit_price) == (Side.LONG, quantity, price - 1)
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.SHORT, quantity)


async def test_part_of_our_long_sold_by_hand_before_it_was_read_is_booked_as_a_part() -> None:
    """Was: the long adopted at what was left, with our plan, the part sold never booked."""
    harness = await Harness.start()
    entry, quantity, price = await entered_unread(harness)
    harness.exchange.move(BTC, price + 2)
    await trade(harness, "web_part_1", OrderSide.SELL, Decimal(1))
    await ticks_past_the_outage(harness)

    assert await harness.repository.closed_trades() == []
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.LONG, quantity - 1)
    assert (position.entry_order_id, position.initial_quantity) == (entry, quantity)
    sold_fee = fee_paid(harness, "web_part_1")
    assert position.realized_pnl_usdt == 2 * Decimal(1)  # gross: fees apart
    assert position.fees_usdt == fee_paid(harness, entry) + sold_fee


async def test_a_short_held_while_our_long_is_unsettled_waits_covered_then_is_booked() -> None:
    """The flip read while our entry's lookups still fail: the short is not adopted (it may
    be what a person made of our fill), a stop covers it; once the entry reads FILLED, our
    long is booked and closed by the flip, the short adopted with that stop."""
    harness = await Harness.start()
    exchange = harness.exchange
    entry, quantity, price = await entered_unread(harness)
    exchange.lookups_unreadable = 2  # the first two lookups after the outage fail
    exchange.move(BTC, price - 1)
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * quantity)
    with capture_logs() as waiting:
        while exchange.lookups_unreadable:
            await harness.tick()

    assert "adoption_awaits_entry" in [e["event"] for e in waiting]
    assert "position_adopted" not in [e["event"] for e in waiting]
    [cover] = [c for c in stops_of_ours(harness) if exchange.orders[c].side is OrderSide.BUY]
    await ticks_past_the_outage(harness)

    [ours] = await harness.repository.closed_trades()
    assert (ours.side, ours.quantity, ours.exit_price) == (Side.LONG, quantity, price - 1)
    assert ours.entry_order_id == entry
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity) == (Side.SHORT, quantity)
    assert position.stop_order_id == cover
