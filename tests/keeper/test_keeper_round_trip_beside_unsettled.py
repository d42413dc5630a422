"""A round trip by hand (a flip and a flip back) seen while an order of ours on the symbol is
unsettled, then our stop closing what is held before it settles (the hand-trading campaign,
seed 33770: a person flipped our long of 1.540 and flipped it back 9 s later while a stop of
ours was in doubt after a 503; the keeper saw Binance's entry moved and waited for that
order; our new stop then sold the 1.540, booked as our long stopped out at break-even — the
person's close of our long, the short between and both flips' fees in no booking)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, fee_paid, opened
from test_keeper_properties import Harness
from test_keeper_round_trip import stops_of_ours, trade

from quantum_trader.domain import ExitReason, OrderSide, Side


async def test_our_stop_after_a_round_trip_awaiting_an_order_of_ours_is_replayed() -> None:
    """Our long at 100; a person cancels its stop and a new one's request is lost (in doubt
    for 30 s); the person sells 2 × our quantity at 101 and buys it back at 102 (LONG at
    Binance's entry 102); our stop placed for what is held then fills at its trigger: our
    long closed MANUAL at 101, the short between a trade of its own, the long the person
    opened closed by our stop, every fee booked (was: our long booked stopped out, the
    flips never booked)."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    [stop] = stops_of_ours(harness)
    exchange.drop_next_stop = True
    await exchange.cancel_conditional_order(BTC, stop)
    await harness.tick()  # the new stop's request lost: in doubt
    exchange.move(BTC, Decimal(101))
    await trade(harness, "web_flip_95", OrderSide.SELL, 2 * quantity)
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(102))
    await trade(harness, "web_back_96", OrderSide.BUY, 2 * quantity)
    with capture_logs() as logs:
        await harness.tick()  # Binance's entry moved: waits for our order in doubt
        [ours_now] = stops_of_ours(harness)
        trigger = exchange.orders[ours_now].trigger_price
        assert trigger is not None
        exchange.move(BTC, trigger - 1)  # our stop fires
        for _ in range(3):
            harness.advance(timedelta(seconds=5))
            await harness.tick()

    assert "exit_filled_after_entry_moved" in [e["event"] for e in logs]
    closed = await harness.repository.closed_trades()
    [short] = [t for t in closed if t.side is Side.SHORT]
    assert (short.entry_price, short.exit_price, short.exit_reason) == (
        Decimal(101),
        Decimal(102),
        ExitReason.MANUAL,
    )
    ours, theirs = sorted((t for t in closed if t.side is Side.LONG), key=lambda t: t.entry_price)
    assert (ours.quantity, ours.entry_price) == (quantity, Decimal(100))
    assert (ours.exit_price, ours.exit_reason) == (Decimal(101), ExitReason.MANUAL)
    assert (theirs.entry_price, theirs.exit_price) == (Decimal(102), trigger)
    assert theirs.exit_reason is not ExitReason.MANUAL  # our stop's
    charged = sum((fee_paid(harness, cid) for cid in exchange.fills), Decimal(0))
    assert sum((t.fees_usdt for t in (ours, short, theirs)), Decimal(0)) == charged
