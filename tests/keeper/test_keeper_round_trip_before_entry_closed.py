"""A person's round trip made after the keeper's last flat read of a symbol and before our
entry there, whose position a person then closed before any look saw it held (the
hand-trading campaign, seed 33720: a short of 4.12 opened and bought back by hand 2 s before
our long of 3.79 filled, then our long sold by hand). The position's trades are read from
that flat read (keeper/flat_before.py), so the round trip's trades lie in the window of the
close's replay, and the replay, which runs from the position as booked, took the person's
sell for our long's close (at 591.36, MANUAL, a price before our entry), a short of 0.33 in
between and a long of 3.79 "opened by hand" closed at the person's sale — our trade's result
booked as a person's. Trades before our entry's first fill cannot change our position: the
round trips they make from the flat read are booked as trades of their own, our long closed
at its own close's trade."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid
from test_keeper_fees_unread import sent
from test_keeper_properties import Harness, sized
from test_keeper_round_trip import trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.keeper.ids import Purpose


@pytest.mark.parametrize(
    ("first", "then"), [(OrderSide.SELL, OrderSide.BUY), (OrderSide.BUY, OrderSide.SELL)]
)
async def test_a_round_trip_before_our_entry_is_not_taken_into_our_positions_close(
    first: OrderSide, then: OrderSide
) -> None:
    """BTC read flat; a person opens 4 at 99 (short, or long) and closes it at 99.5; our
    long fills at 100 and a person sells it at 103 before the next look: our long closed
    MANUAL at 103 with its own fees, the round trip a trade of its own at 99 → 99.5 with the
    person's fees (was: our long closed at the round trip's price, its result booked as a
    long opened by hand)."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.tick()  # BTC flat on the exchange and in the books
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_91", first, Decimal(4))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal("99.5"))
    await trade(harness, "web_close_91", then, Decimal(4))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(100))
    await harness.keeper.enter(sized(BTC, Side.LONG, Decimal(100)), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    quantity = exchange.orders[entry].filled_quantity
    assert quantity != 4  # the round trip's and ours apart
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_92", OrderSide.SELL, quantity)
    with capture_logs():
        await harness.tick()

    trades = await harness.repository.closed_trades()
    [ours] = [t for t in trades if t.entry_order_id == entry]
    assert (ours.side, ours.quantity, ours.entry_price) == (Side.LONG, quantity, Decimal(100))
    assert (ours.exit_price, ours.exit_reason) == (Decimal(103), ExitReason.MANUAL)
    assert ours.fees_usdt == fee_paid(harness, entry) + fee_paid(harness, "web_closed_92")
    [theirs] = [t for t in trades if t.entry_order_id != entry]
    side = Side.SHORT if first is OrderSide.SELL else Side.LONG
    assert (theirs.side, theirs.quantity, theirs.entry_price) == (side, Decimal(4), Decimal(99))
    assert (theirs.exit_price, theirs.exit_reason) == (Decimal("99.5"), ExitReason.MANUAL)
    person = fee_paid(harness, "web_open_91") + fee_paid(harness, "web_close_91")
    assert theirs.fees_usdt == person


async def test_a_round_trip_then_a_position_our_entry_met_are_each_booked() -> None:
    """As above, then a person sells 4 at 100 and our long of 2.97 at 101 meets that short
    (keeper/external.py: what our entry met is no round trip before it): the round trip a
    trade of its own, our long closed MANUAL at the person's 100 with its share of their
    fee, the short's 1.03 left adopted at 100."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.tick()  # BTC flat on the exchange and in the books
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_93", OrderSide.BUY, Decimal(2))
    exchange.move(BTC, Decimal("99.5"))
    await trade(harness, "web_close_93", OrderSide.SELL, Decimal(2))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(100))
    await trade(harness, "web_opened_94", OrderSide.SELL, Decimal(4))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(101))
    await harness.keeper.enter(sized(BTC, Side.LONG, Decimal(101)), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    quantity = exchange.orders[entry].filled_quantity  # 2.970
    exchange.move(BTC, Decimal("100.5"))
    with capture_logs():
        await harness.tick()

    trades = await harness.repository.closed_trades()
    [ours] = [t for t in trades if t.entry_order_id == entry]
    assert (ours.side, ours.quantity, ours.entry_price) == (Side.LONG, quantity, Decimal(101))
    assert (ours.exit_price, ours.exit_reason) == (Decimal(100), ExitReason.MANUAL)
    person = fee_paid(harness, "web_opened_94")
    assert ours.fees_usdt == fee_paid(harness, entry) + person * quantity / 4
    [theirs] = [t for t in trades if t.entry_order_id != entry]
    assert (theirs.side, theirs.quantity, theirs.entry_price) == (
        Side.LONG,
        Decimal(2),
        Decimal(99),
    )
    assert (theirs.exit_price, theirs.exit_reason) == (Decimal("99.5"), ExitReason.MANUAL)
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        4 - quantity,
        Decimal(100),
    )
