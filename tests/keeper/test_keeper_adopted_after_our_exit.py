"""Our stop closed the position, then a person opened a position on the symbol and flipped it,
all before the next look (the restart campaign, seed 40365: all while the daemon was
stopped). The look books our close and adopts what is held; the symbol was booked at the
tick's start, so no flat read bounded the person's trades and their first position (the
open, and the flip's first half) was never booked. Now the adoption is replayed from flat
from the instant after our exit's last fill (keeper/from_flat_settle.py), within a run and
across a restart."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_adopted_from_flat import QUANTITY
from test_keeper_external_exits import BTC, fee_paid, opened
from test_keeper_properties import Harness
from test_keeper_round_trip import stops_of_ours, trade

from quantum_trader.domain import ClosedTrade, ExitReason, OrderSide, Side

SECOND = timedelta(seconds=1)


async def stopped(harness: Harness) -> tuple[str, Decimal]:
    """Our long entered; the mark falls through its stop (filled at its trigger); a second
    passes. Our stop's id and trigger."""
    await opened(harness)
    exchange = harness.exchange
    [stop] = stops_of_ours(harness)
    trigger = exchange.orders[stop].trigger_price
    assert trigger is not None
    exchange.move(BTC, trigger - 1)
    exchange.now += SECOND
    return stop, trigger


async def stopped_then_opened_and_flipped(harness: Harness) -> tuple[str, Decimal]:
    """`stopped`, then a person buys 0.01 at 99, and a second after that sells 0.02 at 98 (a
    short 0.01 held). Our stop's id and trigger."""
    stop, trigger = await stopped(harness)
    exchange = harness.exchange
    exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    exchange.now += SECOND
    exchange.move(BTC, Decimal(98))
    await trade(harness, "web_flip_1", OrderSide.SELL, 2 * QUANTITY)
    return stop, trigger


async def booked_as_done(harness: Harness, stop: str, trigger: Decimal) -> None:
    """Ours stopped out at its trigger, the person's long 99 → 98 booked MANUAL with the
    open's fee and half the flip's, the short adopted at 98 with the other half."""
    trades = await harness.repository.closed_trades()
    [ours] = [t for t in trades if t.exit_reason is not ExitReason.MANUAL]
    [theirs] = [t for t in trades if t.exit_reason is ExitReason.MANUAL]
    assert (ours.side, ours.exit_price) == (Side.LONG, trigger)
    assert ours.exit_reason is ExitReason.SL_HIT
    assert _terms(theirs) == (Side.LONG, QUANTITY, Decimal(99), Decimal(98))
    flip_fee = fee_paid(harness, "web_flip_1")
    assert theirs.fees_usdt == fee_paid(harness, "web_open_1") + flip_fee / 2
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        QUANTITY,
        Decimal(98),
    )
    assert position.fees_usdt == flip_fee / 2
    assert stop not in stops_of_ours(harness)


def _terms(trade: ClosedTrade) -> tuple[Side, Decimal, Decimal, Decimal]:
    return trade.side, trade.quantity, trade.entry_price, trade.exit_price


async def test_an_open_and_flip_by_hand_after_our_stop_filled_books_the_first_position() -> None:
    """Was: ours booked, the short adopted "(default)", the long 99 → 98 never booked."""
    harness = await Harness.start()
    stop, trigger = await stopped_then_opened_and_flipped(harness)
    with capture_logs() as logs:
        await harness.tick()

    await booked_as_done(harness, stop, trigger)
    [replayed] = [e for e in logs if e["event"] == "exit_filled_then_opened_by_hand"]
    assert "replayed from the account's trades" in str(replayed["detail"])
    with capture_logs() as logs:  # booked once
        await harness.tick()
        await harness.tick()
    assert len(await harness.repository.closed_trades()) == 2
    assert not [e for e in logs if e["event"] == "position_closed_externally"]


async def test_the_same_while_the_daemon_was_stopped_is_booked_at_the_first_look() -> None:
    """Seed 40365's own shape: our position booked by the run before, its stop filled and
    the person's open and flip made while the daemon was stopped."""
    harness = await Harness.start()
    stop, trigger = await stopped_then_opened_and_flipped(harness)
    await harness.restart()
    await harness.tick()

    await booked_as_done(harness, stop, trigger)


async def test_a_plain_open_by_hand_after_our_stop_filled_is_adopted_with_its_fee() -> None:
    """Only an open after our stop, on the same side: was booked as what our stop left of
    ours (0.01 of 3 "held", at our entry), then "entry_price_moved_unexplained" at every
    look; now ours is closed at its stop and the long adopted at 99 with its own fee."""
    harness = await Harness.start()
    await stopped(harness)
    harness.exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_1", OrderSide.BUY, QUANTITY)
    await harness.tick()

    [ours] = await harness.repository.closed_trades()
    assert ours.exit_reason is ExitReason.SL_HIT
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.LONG,
        QUANTITY,
        Decimal(99),
    )
    assert position.fees_usdt == fee_paid(harness, "web_open_1")
