"""A position reduced with no order of ours (closed by hand, liquidated) is booked from the
account's own trades: their price and their fee, not the mark of the tick that saw it
(keeper/external.py). Where the trades cannot say it, the mark, and the line says why."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs
from test_keeper_fees_unread import entered, sent
from test_keeper_properties import SYMBOLS, T0, Harness, sized

from quantum_trader.domain import (
    ExchangeSnapshot,
    ExitReason,
    Fill,
    OrderKind,
    OrderRequest,
    OrderSide,
    Position,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.external import external_execution, read_account_fills
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Observation

BTC = SYMBOLS[0]


async def opened(harness: Harness) -> Decimal:
    """A long on BTC entered through the keeper at the mark; its quantity."""
    exchange = harness.exchange
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    await harness.tick()
    return harness.keeper.positions[BTC].quantity


async def by_hand(harness: Harness, name: str, side: OrderSide, quantity: Decimal) -> None:
    """A market order a person sends on the exchange's site (not one of ours)."""
    request = OrderRequest(name, BTC, side, OrderKind.MARKET, quantity, reduce_only=True)
    await harness.exchange.place_order(request)


async def partial_taken(harness: Harness) -> str:
    """The long entered on BTC, the mark raised a step a tick up until our partial
    take-profit is sent; its client order id."""
    exchange = harness.exchange
    price = exchange.marks[BTC]
    while not sent(exchange, Purpose.EXIT):
        price += Decimal("0.1")
        exchange.move(BTC, price)
        await harness.tick()
    [partial] = sent(exchange, Purpose.EXIT)
    return partial


def fee_paid(harness: Harness, client_order_id: str) -> Decimal:
    return sum((f.fee_usdt for f in harness.exchange.fills[client_order_id]), Decimal(0))


def noted(logs: list[MutableMapping[str, Any]]) -> str:
    [note] = [e for e in logs if e["event"] == "position_closed_externally"]
    return str(note["detail"])


async def test_a_close_by_hand_is_booked_at_its_own_price_and_fee_not_the_later_mark() -> None:
    harness = await Harness.start()
    quantity = await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_1", OrderSide.SELL, quantity)
    harness.exchange.move(BTC, Decimal(104))  # the keeper sees it gone one tick later
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, Decimal(102))
    assert trade.fees_usdt == entry_fees + fee_paid(harness, "web_closed_1")
    assert "the account's 1 trade(s) 102" in noted(logs)
    [(symbol, start, end)] = harness.exchange.account_fills_asked
    assert symbol == BTC
    assert start < harness.now < end


async def test_a_close_by_hand_in_two_orders_is_booked_at_their_average_price() -> None:
    harness = await Harness.start()
    quantity = await opened(harness)
    half = quantity / 2
    harness.exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_closed_2", OrderSide.SELL, half)
    harness.exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_3", OrderSide.SELL, quantity - half)
    harness.exchange.move(BTC, Decimal(90))
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    expected = (half * 101 + (quantity - half) * 103) / quantity
    assert trade.exit_price == expected


async def test_a_part_closed_by_hand_is_booked_at_its_price_and_the_rest_kept() -> None:
    harness = await Harness.start()
    quantity = await opened(harness)
    part = Decimal("0.5")
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_reduced_1", OrderSide.SELL, part)
    harness.exchange.move(BTC, Decimal("97.5"))
    await harness.tick()

    position = harness.keeper.positions[BTC]
    assert position.quantity == quantity - part
    assert position.realized_pnl_usdt == (Decimal(102) - position.entry_price) * part
    assert await harness.repository.closed_trades() == []


async def test_trades_that_cannot_be_read_are_awaited_though_the_mark_reads() -> None:
    """The account's trades cannot be read on the tick that sees the close, the mark can:
    the close waits for its trades (keeper/unpriced.py), the line saying why, and is booked at
    the person's 102 once they are read, not at the mark 104 (was: at the mark at once, not
    a traded price: the hand-trading campaign, seed 30003, 1.5 % off)."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_4", OrderSide.SELL, quantity)
    harness.exchange.move(BTC, Decimal(104))
    harness.exchange.account_fills_unreadable = 1
    with capture_logs() as logs:
        await harness.tick()

    assert await harness.repository.closed_trades() == []
    assert harness.keeper.positions == {}
    [waits] = [e for e in logs if e["event"] == "external_close_awaits_price"]
    assert "nothing to book it at but the mark 104 (the account's trades could" in waits["detail"]
    assert "could not be read" in waits["detail"]
    assert [e["symbol"] for e in logs if e["event"] == "account_trades_unread"] == [BTC]
    await harness.tick()
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)


async def test_a_flip_by_hand_in_one_order_books_the_close_at_its_price_and_adopts_the_rest(
) -> None:  # fmt: skip
    """One trade of twice the position closed it and opened a short: the close is booked at
    that trade's price with its share of the fee (was: at the mark, as its quantity is not the
    quantity that left), the short adopted."""
    harness = await Harness.start()
    quantity = await opened(harness)
    entry_fees = harness.keeper.positions[BTC].fees_usdt
    harness.exchange.move(BTC, Decimal(102))
    flip = OrderRequest("web_flip_1", BTC, OrderSide.SELL, OrderKind.MARKET, quantity * 2)
    await harness.exchange.place_order(flip)
    harness.exchange.move(BTC, Decimal(101))
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)
    assert trade.fees_usdt == entry_fees + fee_paid(harness, "web_flip_1") / 2
    assert "the account's 1 trade(s) 102" in noted(logs)
    short = harness.keeper.positions[BTC]
    assert (short.side, short.quantity) == (Side.SHORT, quantity)


async def test_a_flip_by_hand_in_two_orders_books_the_close_at_the_older_ones_price() -> None:
    """A sell of the whole position at 102, then a sell opening a short at 99: the close is
    the older trade's."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_8", OrderSide.SELL, quantity)
    harness.exchange.move(BTC, Decimal(99))
    short = OrderRequest("web_opened_3", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal(1))
    await harness.exchange.place_order(short)
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(102)
    held = harness.keeper.positions[BTC]
    assert (held.side, held.quantity) == (Side.SHORT, Decimal(1))


async def test_an_exit_of_ours_with_unread_fills_beside_it_is_not_taken_for_the_persons() -> None:
    """Our stop filled in the same tick's window as a person's reduction, and its trades were
    not read: the account's trades cannot be told apart from it, so the part no order of ours
    explains is booked at the mark."""
    harness = await Harness.start()
    await entered(harness, unreadable=0)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_reduced_2", OrderSide.SELL, Decimal("0.5"))
    harness.exchange.fills_unreadable = 5
    harness.exchange.move(BTC, Decimal(96))  # through the stop at 97: it takes the rest
    with capture_logs() as logs:
        await harness.tick()

    assert harness.keeper.positions == {}
    detail = noted(logs)
    assert detail.startswith("LONG 0.500 gone")
    assert "booked at the mark 96 (an order of ours on it has unread fills" in detail


def test_the_newest_trades_that_add_up_are_taken_and_ours_are_not() -> None:
    position = Position(
        symbol=BTC,
        side=Side.LONG,
        quantity=Decimal(2),
        entry_price=Decimal(100),
        leverage=3,
        stop_price=Decimal(95),
        take_profit_price=Decimal(110),
        opened_at=T0,
        entry_order_id="qt-e-1",
        initial_stop_price=Decimal(95),
        initial_quantity=Decimal(2),
    )

    def fill(trade: str, side: OrderSide, quantity: str, price: str, minute: int) -> Fill:
        at = T0 + timedelta(minutes=minute)
        return Fill(trade, "o", BTC, side, Decimal(quantity), Decimal(price), Decimal("0.1"), at)

    fills = [
        fill("1", OrderSide.SELL, "1", "90", 1),  # older: a partial exit booked before
        fill("2", OrderSide.BUY, "5", "99", 2),  # the other side
        fill("3", OrderSide.SELL, "1", "101", 3),
        fill("4", OrderSide.SELL, "1", "103", 4),
        fill("5", OrderSide.SELL, "1", "200", 5),  # ours, read this tick
    ]
    found = external_execution(position, Decimal(2), fills, {"5"})
    assert found is not None
    assert (found.price, found.fee_usdt, found.trades) == (Decimal(102), Decimal("0.2"), 2)
    assert external_execution(position, Decimal("1.5"), fills, {"5"}) is None  # 1, then 2
    assert external_execution(position, Decimal(2), [], set()) is None


async def test_a_round_trip_by_hand_after_the_close_is_not_taken_for_it() -> None:
    """The daemon down 8 days: the close by hand fell out of Binance's 7-day window, and a
    person bought and sold again in it. That sell closed the person's own position, not ours:
    booked at the mark, and the line says why."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_5", OrderSide.SELL, quantity)  # 8 days before
    harness.advance(timedelta(days=5))
    harness.exchange.move(BTC, Decimal(120))
    bought = OrderRequest("web_opened_1", BTC, OrderSide.BUY, OrderKind.MARKET, quantity)
    await harness.exchange.place_order(bought)
    harness.exchange.move(BTC, Decimal(130))
    await by_hand(harness, "web_closed_6", OrderSide.SELL, quantity)
    harness.advance(timedelta(days=3))
    harness.exchange.move(BTC, Decimal(90))
    await harness.restart()
    with capture_logs() as logs:
        await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert trade.exit_price == Decimal(90)
    assert "added to by hand since it opened" in noted(logs)


async def test_a_position_reopened_by_hand_then_reduced_is_replayed_from_the_trades() -> None:
    """Closed by hand at 102, bought again at 105, half sold at 104: the sell at 104 reduced
    the person's new position, not ours, so its price is not taken for ours. Was booked at
    the mark 104; the trades, replayed from the position as booked (keeper/round_trip.py),
    show ours closed at 102 and the person's long, held now, reduced at 104."""
    harness = await Harness.start()
    quantity = await opened(harness)
    harness.exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_7", OrderSide.SELL, quantity)
    harness.advance(timedelta(minutes=6))  # later than a fill of our entry could be
    harness.exchange.move(BTC, Decimal(105))
    bought = OrderRequest("web_opened_2", BTC, OrderSide.BUY, OrderKind.MARKET, quantity)
    await harness.exchange.place_order(bought)
    harness.exchange.move(BTC, Decimal(104))
    await by_hand(harness, "web_reduced_3", OrderSide.SELL, quantity / 2)
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_price, trade.exit_reason) == (Decimal(102), ExitReason.MANUAL)
    position = harness.keeper.positions[BTC]
    half = quantity / 2
    assert (position.quantity, position.entry_price) == (half, Decimal(105))
    assert position.realized_pnl_usdt == (Decimal(104) - Decimal(105)) * half
    sold = fee_paid(harness, "web_reduced_3")
    assert position.fees_usdt == fee_paid(harness, "web_opened_2") + sold


async def test_a_trade_booked_on_an_earlier_tick_is_not_booked_again() -> None:
    """A person's 0.6 booked at its trade; a tick later another 0.9 gone, of which Binance
    lists only 0.3 yet (its trades lag its positions): that 0.3 and the 0.6 booked before add
    up to 0.9, but the 0.6 is not taken twice: the 0.9 is booked at the mark."""
    harness = await Harness.start()
    await opened(harness)
    harness.exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_reduced_4", OrderSide.SELL, Decimal("0.6"))
    await harness.tick()
    harness.exchange.move(BTC, Decimal("100.5"))
    await by_hand(harness, "web_reduced_5", OrderSide.SELL, Decimal("0.3"))
    await by_hand(harness, "web_reduced_6", OrderSide.SELL, Decimal("0.6"))
    lagging = harness.exchange.fills.pop("web_reduced_6")  # not listed yet
    harness.exchange.move(BTC, Decimal(99))
    with capture_logs() as logs:
        await harness.tick()
    harness.exchange.fills["web_reduced_6"] = lagging

    assert "booked at the mark 99 (the account's trades do not add up to 0.900)" in noted(logs)


async def test_only_the_trades_booked_before_are_left_out_of_the_next_read() -> None:
    """A trade an earlier read listed but did not book (it executed after that tick read the
    positions) stays in: the next tick may book at it."""
    harness = await Harness.start()
    await opened(harness)
    await by_hand(harness, "web_reduced_7", OrderSide.SELL, Decimal("0.5"))
    await by_hand(harness, "web_reduced_8", OrderSide.SELL, Decimal("0.5"))
    [booked] = harness.exchange.fills["web_reduced_7"]
    [listed] = harness.exchange.fills["web_reduced_8"]
    position = harness.keeper.positions[BTC]
    seen = Observation(ExchangeSnapshot(harness.now, SnapshotSource.REST, {}, ()), {}, {}, {})
    read = await read_account_fills(
        harness.exchange,
        seen,
        {BTC: position},
        [BTC],
        {},
        harness.now,
        {BTC: frozenset({booked.trade_id})},
        {},
    )
    assert listed in read.account_fills[BTC]
    assert booked not in read.account_fills[BTC]


async def test_a_trade_booked_before_a_restart_is_left_out_beside_one_listed_after_it() -> None:
    """As above, with the daemon restarted between the two reductions: the window then reaches
    back to the position's opening, and the 0.6 booked before the restart is still left out
    (saved in the repository's state, keeper/external_saved.py), so the 0.9 is booked at the
    mark, not at the 0.3 listed and the 0.6 booked already."""
    harness = await Harness.start()
    await opened(harness)
    harness.exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_reduced_9", OrderSide.SELL, Decimal("0.6"))
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity > 0
    await harness.restart()
    harness.exchange.move(BTC, Decimal("100.5"))
    await by_hand(harness, "web_reduced_10", OrderSide.SELL, Decimal("0.3"))
    await by_hand(harness, "web_reduced_11", OrderSide.SELL, Decimal("0.6"))
    lagging = harness.exchange.fills.pop("web_reduced_11")  # not listed yet
    harness.exchange.move(BTC, Decimal(99))
    with capture_logs() as logs:
        await harness.tick()
    harness.exchange.fills["web_reduced_11"] = lagging

    assert "booked at the mark 99 (the account's trades do not add up to 0.900)" in noted(logs)


async def test_an_exit_of_ours_booked_on_an_earlier_tick_is_not_taken_for_the_persons() -> None:
    """Our partial take-profit booked a tick before; then a person sells as much by hand,
    and Binance does not list that trade yet. Our take-profit's trade is in the window and
    adds up: it was taken for the person's (found by an outside probe, 2026-12-03: its price
    booked for the close, its fee counted twice). Our own orders' trades are never taken."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    partial = await partial_taken(harness)
    [ours] = exchange.fills[partial]
    await harness.tick()
    exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_reduced_9", OrderSide.SELL, ours.quantity)
    lagging = exchange.fills.pop("web_reduced_9")  # not listed yet
    exchange.move(BTC, Decimal(102))
    with capture_logs() as logs:
        await harness.tick()
    exchange.fills["web_reduced_9"] = lagging

    assert f"booked at the mark 102 (the account's trades do not add up to {ours.quantity})" in (
        noted(logs)
    )


async def test_a_trade_booked_before_a_restart_is_not_booked_again_after_it() -> None:
    """A person's 0.6 booked at its trade; the daemon restarts; another 0.6 gone whose trade
    Binance does not list yet. The first trade was booked again for it after the restart (the
    trades booked were remembered in memory only: found by an outside probe, 2026-12-03)."""
    harness = await Harness.start()
    await opened(harness)
    harness.exchange.move(BTC, Decimal(101))
    await by_hand(harness, "web_reduced_10", OrderSide.SELL, Decimal("0.6"))
    await harness.tick()
    await harness.restart()
    await harness.tick()
    harness.exchange.move(BTC, Decimal("100.6"))  # above the stop, moved to break-even
    await by_hand(harness, "web_reduced_11", OrderSide.SELL, Decimal("0.6"))
    lagging = harness.exchange.fills.pop("web_reduced_11")
    harness.exchange.move(BTC, Decimal("100.5"))
    with capture_logs() as logs:
        await harness.tick()
    harness.exchange.fills["web_reduced_11"] = lagging

    assert "booked at the mark 100.5 (the account's trades do not add up to 0.600)" in noted(logs)


async def test_an_exit_of_ours_settled_by_a_tick_is_not_taken_for_the_persons_either() -> None:
    """As above, the take-profit's answer lost: the tick that looks it up books it, and its
    trade is remembered there too."""
    harness = await Harness.start()
    exchange = harness.exchange
    await harness.keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), harness.now)
    exchange.lose_next_exit = True
    exchange.lookups_unreadable = 1  # the lookup right after the lost answer
    partial = await partial_taken(harness)
    [ours] = exchange.fills[partial]
    assert partial in harness.keeper.book.intents  # its answer lost
    await harness.tick()
    assert partial not in harness.keeper.book.intents
    exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_reduced_12", OrderSide.SELL, ours.quantity)
    lagging = exchange.fills.pop("web_reduced_12")  # not listed yet
    exchange.move(BTC, Decimal(102))
    with capture_logs() as logs:
        await harness.tick()
    exchange.fills["web_reduced_12"] = lagging

    assert f"booked at the mark 102 (the account's trades do not add up to {ours.quantity})" in (
        noted(logs)
    )
