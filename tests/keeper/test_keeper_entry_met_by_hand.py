"""An entry of ours sent while a person had just opened a position on the symbol by hand,
which the keeper's last read had not shown: Binance nets our order against it (one-way
mode), so the exchange holds what is left of the person's position, and our position as
booked from the entry's answer is gone at once, with no trade of the person after ours (the
hand-trading campaign's seed 32035, 2026-12-04: our SELL 2.19 met a LONG 3.11 opened by hand
a minute before, its tick stalled; the short booked from the answer was closed at the mark,
MANUAL at 596.87 where the account's trades gave 606.38 — the person's trade came before our
entry's, and the trades before a position's entry are left out, as the last position's exit
may lie there). The trades since the keeper last saw the symbol flat, before the entry, are
now read for it: nothing of a last position can lie there."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, fee_paid, noted, opened
from test_keeper_fees_unread import sent
from test_keeper_properties import Harness, sized
from test_keeper_round_trip import trade

from quantum_trader.domain import ExitReason, OrderSide, Side
from quantum_trader.errors import RetryLater
from quantum_trader.keeper.ids import Purpose


@pytest.mark.parametrize("answer", ["answered", "lost"])
async def test_our_entry_that_met_a_position_opened_by_hand_is_booked_at_the_persons_trade(
    answer: str,
) -> None:
    """The keeper saw BTC flat; a person sold 4 at 100; our long of 2.97 bought at 101 met
    that short, 1.03 of it left: our long booked closed MANUAL at the person's 100 with its
    share of their fee, the short left adopted at Binance's entry 100 (was: our long closed
    at the mark, 100.5). So too when the entry's answer was lost and the exchange could not
    be read for 20 s: booked by the tick that settles it (keeper/unseen_entry.py; was: the
    short adopted, our long never booked)."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.tick()  # BTC flat on the exchange and in the books
    harness.advance(timedelta(seconds=1))
    await trade(harness, "web_opened_1", OrderSide.SELL, Decimal(4))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(101))
    if answer == "lost":
        exchange.lose_next = True
        exchange.reads_down_until = harness.now + timedelta(seconds=20)
    with contextlib.suppress(RetryLater):
        await harness.keeper.enter(sized(BTC, Side.LONG, Decimal(101)), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    quantity = exchange.orders[entry].filled_quantity  # 2.970
    exchange.move(BTC, Decimal("100.5"))
    with capture_logs() as logs:
        for _ in range(6):  # one tick, or the outage and the unknown order's grace
            await harness.tick()
            if answer == "answered":
                break

    [closed] = await harness.repository.closed_trades()
    assert (closed.side, closed.quantity, closed.entry_price) == (Side.LONG, quantity, Decimal(101))
    assert (closed.exit_price, closed.exit_reason) == (Decimal(100), ExitReason.MANUAL)
    person = fee_paid(harness, "web_opened_1")
    assert closed.fees_usdt == fee_paid(harness, entry) + person * quantity / 4
    position = harness.keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        4 - quantity,
        Decimal(100),
    )
    events = [e["event"] for e in logs]
    assert "position_adopted" in events


async def test_the_last_positions_close_by_hand_before_the_flat_read_is_still_not_taken() -> None:
    """A long closed by hand at 103 and booked; after a restart (the trades booked for it
    forgotten: a run's memory) a tick reads BTC flat, then a long of the same size opens and
    a person closes it while Binance does not list that trade yet: the old close's trade,
    before the flat read, is not taken for it (booked at the mark, as before the change)."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_31", OrderSide.SELL, quantity)
    await harness.tick()
    assert harness.keeper.positions == {}
    await harness.restart()
    harness.advance(timedelta(minutes=1))
    exchange.move(BTC, Decimal(100))
    await harness.tick()  # BTC read flat
    assert await opened(harness) == quantity
    exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_closed_32", OrderSide.SELL, quantity)
    lagging = exchange.fills.pop("web_closed_32")  # not listed yet
    exchange.move(BTC, Decimal("100.5"))
    with capture_logs() as logs:
        await harness.tick()
    exchange.fills["web_closed_32"] = lagging

    assert f"booked at the mark 100.5 (the account's trades do not add up to {quantity})" in (
        noted(logs)
    )


async def test_a_round_trip_before_the_flat_read_is_not_taken_for_a_lost_entrys_close() -> None:
    """A person's long 3 opened at 99 and sold at 102 between two looks that read BTC flat
    (no look saw it); then our long's answer lost and the exchange unread for 20 s, its close
    by hand before any read, while Binance does not list that trade yet. The position booked
    from our entry's fill reads the account's trades from the last flat read before the entry
    (keeper/external.py `own_trades`, as for an entry booked from its answer), so the round
    trip's sell at 102 is not taken for our close (was: booked at 102); the close awaits its
    own trade and is booked at it, 101, once Binance lists it."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.tick()  # BTC read flat
    exchange.move(BTC, Decimal(99))
    await trade(harness, "web_open_51", OrderSide.BUY, Decimal(3))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(102))
    await trade(harness, "web_close_51", OrderSide.SELL, Decimal(3))
    await harness.tick()  # flat again: nothing seen
    exchange.move(BTC, Decimal(100))
    exchange.lose_next = True
    exchange.reads_down_until = harness.now + timedelta(seconds=20)
    with contextlib.suppress(RetryLater):
        await harness.keeper.enter(sized(BTC, Side.LONG, Decimal(100)), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    quantity = exchange.orders[entry].filled_quantity
    assert quantity == 3  # as the round trip's
    exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_closed_52", OrderSide.SELL, quantity)
    lagging = exchange.fills.pop("web_closed_52")  # not listed yet
    exchange.move(BTC, Decimal("100.5"))
    with capture_logs() as logs:
        for _ in range(6):
            await harness.tick()
    assert "external_close_awaits_price" in [e["event"] for e in logs]
    exchange.fills["web_closed_52"] = lagging
    await harness.tick()

    [ours] = await harness.repository.closed_trades()
    assert (ours.entry_order_id, ours.quantity) == (entry, quantity)
    assert (ours.exit_price, ours.exit_reason) == (Decimal(101), ExitReason.MANUAL)


async def test_after_a_restart_the_part_our_entry_met_is_amended_to_the_persons_trade() -> None:
    """The restart campaign, seed 40824: a person sold 1 at 100 after the keeper read BTC
    flat; our long of 2.97 at 101 met it, 1.97 left. The account's trades could not be read,
    so the part was booked at the mark (100.5), to be amended once they are; then the daemon
    restarted. The window of the position's trades still begins at that flat read, saved
    with the entry (keeper/flat_before.py): the part is amended to the person's trade, its
    fee booked (was: the window began at our fill, the person's trade before it was never
    found — the mark's terms kept, the fee in no booking)."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.tick()  # BTC flat on the exchange and in the books
    harness.advance(timedelta(seconds=1))
    await trade(harness, "web_opened_61", OrderSide.SELL, Decimal(1))
    harness.advance(timedelta(seconds=1))
    exchange.move(BTC, Decimal(101))
    await harness.keeper.enter(sized(BTC, Side.LONG, Decimal(101)), harness.now)
    exchange.move(BTC, Decimal("100.5"))
    exchange.account_fills_unreadable = 100
    with capture_logs() as logs:
        await harness.tick()
    assert "booked at the mark 100.5" in noted(logs)
    booked = harness.keeper.positions[BTC]
    await harness.restart()
    exchange.account_fills_unreadable = 0
    with capture_logs() as logs:
        await harness.tick()

    assert "position_reduced_trades_read" in [e["event"] for e in logs]
    position = harness.keeper.positions[BTC]
    assert position.quantity == booked.quantity == Decimal("1.970")
    assert position.fees_usdt == booked.fees_usdt + fee_paid(harness, "web_opened_61")
    moved = (Decimal(100) - Decimal("100.5")) * 1  # the part's price against the mark's
    assert position.realized_pnl_usdt == booked.realized_pnl_usdt + moved


async def test_a_part_bought_by_hand_beside_our_lost_entry_has_its_fee_booked() -> None:
    """The restart campaign, seed 41021: a person bought 1 BTC after the keeper read it
    flat; our long's answer was lost, so the tick that looked it up booked what was held —
    ours and the person's — as our entry's. The person's part is a growth by hand beside our
    fill: its trade's fee is booked (was: in no booking; an answered entry's growth was)."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.tick()  # BTC flat on the exchange and in the books
    harness.advance(timedelta(seconds=1))
    await trade(harness, "web_added_81", OrderSide.BUY, Decimal(1))
    harness.advance(timedelta(seconds=1))
    exchange.lose_next = True
    with capture_logs() as logs:
        with contextlib.suppress(RetryLater):
            await harness.keeper.enter(sized(BTC, Side.LONG, Decimal(100)), harness.now)
        for _ in range(3):
            await harness.tick()
    [entry] = sent(exchange, Purpose.ENTRY)
    quantity = exchange.orders[entry].filled_quantity

    position = harness.keeper.positions[BTC]
    assert position.entry_order_id == entry
    assert position.quantity == quantity + 1
    assert position.fees_usdt == fee_paid(harness, entry) + fee_paid(harness, "web_added_81")
    assert ("position_grown", BTC) in [(e["event"], e.get("symbol")) for e in logs]
