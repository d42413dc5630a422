"""Outside-style probes of fees read later (keeper/fees.py) that held, kept as regressions:
a stop filled while userTrades stays down, a partial exit whose fills are unread, a position
reopened on the symbol while the last trade's order is still unread, a trade row deleted by
hand, and a read that answers after the give-up bound passed across a restart."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from decimal import Decimal

from structlog.testing import capture_logs
from test_keeper_fees_unread import (
    BTC,
    closed_with_the_exit_fills_unread,
    fee_of,
    sent,
    stop_reached,
)
from test_keeper_properties import KEEPER, Harness, sized

from quantum_trader.domain import ExitReason, Side
from quantum_trader.keeper.ids import Purpose


async def test_a_stop_filled_while_its_trades_stay_unreadable_is_amended_as_the_stop() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    order, entry, stop_id = await stop_reached(harness)
    exchange.fills_unreadable = 2  # the tick's read and the close's
    with capture_logs() as logs:
        await harness.tick()
    [booked] = await harness.repository.closed_trades()
    assert (booked.exit_reason, booked.exit_price) == (ExitReason.SL_HIT, order.stop_price)
    assert booked.fees_usdt == fee_of(exchange, entry)
    [incomplete] = [e for e in logs if e["event"] == "trade_fees_incomplete"]
    assert incomplete["orders"] == [stop_id]

    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    fee = fee_of(exchange, stop_id)
    assert (trade.exit_reason, trade.fees_usdt) == (ExitReason.SL_HIT, booked.fees_usdt + fee)
    assert trade.pnl_usdt == booked.pnl_usdt - fee


async def test_a_partial_exit_whose_trades_are_unread_counts_once_in_the_trade() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.answers_without_fees = True
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    [entry] = sent(exchange, Purpose.ENTRY)
    price = exchange.marks[BTC]
    while not sent(exchange, Purpose.EXIT):  # up until the partial take-profit
        price += Decimal("0.1")
        exchange.move(BTC, price)
        exchange.fills_unreadable = 3  # its answer's read, and those after
        await harness.tick()
    [partial] = sent(exchange, Purpose.EXIT)
    assert harness.keeper.positions[BTC].quantity < harness.keeper.positions[BTC].initial_quantity
    assert set(harness.keeper.book.fees_unread) == {partial}
    exchange.fills_unreadable = 0
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    exits = sent(exchange, Purpose.EXIT)
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == sum(fee_of(exchange, c) for c in [entry, *exits])
    assert harness.keeper.book.fees_unread == {}


async def test_a_position_reopened_while_the_last_trades_fee_is_unread_keeps_its_own() -> None:
    """The old trade is amended by its exit's fee; the new position takes its entry's fee,
    and its trade none of the old one's."""
    harness = await Harness.start()
    exchange = harness.exchange
    entry_a, exit_a, booked_a = await closed_with_the_exit_fills_unread(harness)
    exchange.fills_unreadable = 1  # the tick's read of the old exit
    await harness.tick()
    exchange.fills_unreadable = 1  # the new entry's answer
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    entry_b = sent(exchange, Purpose.ENTRY)[-1]
    unread = harness.keeper.book.fees_unread
    assert (unread[exit_a].trade is not None, unread[entry_b].trade) == (True, None)
    await harness.tick()
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)

    exit_b = sent(exchange, Purpose.EXIT)[-1]
    a, b = await harness.repository.closed_trades()
    assert (a.entry_order_id, b.entry_order_id) == (entry_a, entry_b)
    assert a.fees_usdt == booked_a.fees_usdt + fee_of(exchange, exit_a)
    assert b.fees_usdt == fee_of(exchange, entry_b) + fee_of(exchange, exit_b)
    assert harness.keeper.book.fees_unread == {}


async def test_a_trade_row_deleted_by_hand_is_not_amended_and_says_so() -> None:
    harness = await Harness.start()
    _, exit_, _ = await closed_with_the_exit_fills_unread(harness)
    stats = harness.keeper._carrier._ledger.stats[BTC]
    harness.repository._closed_trades.clear()  # as `DELETE FROM closed_trades` by hand
    with capture_logs() as logs:
        await harness.tick()

    [said] = [e for e in logs if e["event"] == "trade_fees_not_amended"]
    assert said["log_level"] == "warning"
    assert "not found" in said["detail"]
    assert exit_ in said["orders"]
    assert await harness.repository.closed_trades() == []
    assert harness.keeper._carrier._ledger.stats[BTC] == stats
    assert harness.keeper.book.fees_unread == {}


async def test_a_read_that_answers_after_the_bound_passed_in_a_stop_still_amends() -> None:
    """The bound gives up a fee whose read fails: one read that answers, even late (the
    daemon stopped across the bound), books it."""
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    harness.advance(timedelta(seconds=KEEPER.fees_unread_give_up_s * 5))
    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()

    assert "fees_unread_given_up" not in [e["event"] for e in logs]
    [trade] = await harness.repository.closed_trades()
    assert trade.fees_usdt == booked.fees_usdt + fee_of(exchange, exit_)


async def test_a_read_that_fails_after_the_bound_passed_in_a_stop_gives_up_at_once() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, exit_, booked = await closed_with_the_exit_fills_unread(harness)
    harness.advance(timedelta(seconds=KEEPER.fees_unread_give_up_s * 5))
    await harness.restart()
    exchange.fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()

    [given_up] = [e for e in logs if e["event"] == "fees_unread_given_up"]
    assert exit_ in given_up["detail"]
    assert await harness.repository.closed_trades() == [booked]
    assert harness.keeper.book.fees_unread == {}


async def test_a_stop_while_a_closed_positions_trade_is_read_loses_neither() -> None:
    """The process stops while the closing trade's funding is read (after the plan, before the
    trade's row): the position's row stays until its trade's row is written with its deletion,
    so the restart finds the position gone on the exchange and books its trade. (Was: the row
    deleted first, and the trade lost for good.)"""
    harness = await Harness.start()
    exchange = harness.exchange
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    await harness.keeper.enter(order, harness.now)
    exchange.move(BTC, order.stop_price - Decimal(1))  # the stop fills
    exchange.funding_hangs = asyncio.Event()
    tick = asyncio.create_task(harness.tick())
    await asyncio.wait_for(exchange.funding_asked.wait(), 10)
    tick.cancel()  # the process ends here
    with contextlib.suppress(asyncio.CancelledError):
        await tick
    assert [p.symbol for p in await harness.repository.open_positions()] == [BTC]
    assert await harness.repository.closed_trades() == []

    exchange.funding_hangs = None
    await harness.restart()
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.symbol == BTC
    assert await harness.repository.open_positions() == []
