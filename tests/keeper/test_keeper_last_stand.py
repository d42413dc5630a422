"""The keeper's last act before a daemon stopped by a write failure exits (keeper/last_stand.py):
the exchange holds what an entry filled, but the write that books the fill — before the stop
is sent — was refused (the disk full, the database locked by another program). Without it the
position stayed without a stop for as long as the daemon was down; a start meeting the same
cause could not help. Now the stop the next tick would place is sent unbooked, and the next
start takes it as the position's protection and books it (was, for a stop of ours found on the
exchange with no record of it: kept in memory only, so after another restart its fill was
booked as a close by hand)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from decimal import Decimal

from model_exchange import ModelExchange
from position_builders import position, stop_order
from test_keeper_external_exits import BTC
from test_keeper_properties import (
    PRICES,
    RULES,
    T0,
    Harness,
    assert_protected,
    entries,
    keeper_on,
    sized,
)
from test_keeper_writes_stop import Stopped, StoppingRepository

from quantum_trader.domain import (
    ExchangeSnapshot,
    ExitReason,
    OrderKind,
    OrderSide,
    OrderStatus,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.last_stand import stops_to_place
from quantum_trader.keeper.plan import Plan
from quantum_trader.keeper.protect import PlaceStop, StopWhy


def our_stops(exchange: ModelExchange) -> list[str]:
    return [
        cid
        for cid, o in exchange.orders.items()
        if o.symbol == BTC
        and o.status is OrderStatus.OPEN
        and o.kind is OrderKind.STOP_MARKET
        and o.reduce_only
        and is_ours(cid)
    ]


async def test_an_entry_whose_booking_was_refused_gets_its_stop_before_the_daemon_exits() -> None:
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = StoppingRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    repository.refuse_position = lambda p: p.symbol == BTC  # the fill's booking
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    with contextlib.suppress(Stopped):
        await harness.keeper.enter(order, harness.now)
    assert repository.stopped
    assert BTC in exchange.held  # the hole: a position
    assert our_stops(exchange) == []  # without a stop

    assert await harness.keeper.protect_unbooked(harness.now) == 1

    assert_protected(harness)
    [stop] = our_stops(exchange)
    assert exchange.orders[stop].trigger_price == order.stop_price  # the entry's own plan
    assert await repository.get_order(stop) is None  # unbooked: nothing could be

    repository.refuse_position = None  # room again: the next start
    await harness.restart()
    for _ in range(3):
        assert await harness.tick()
        assert_protected(harness)
    assert harness.keeper.positions[BTC].stop_order_id == stop  # taken as its stop
    assert our_stops(exchange) == [stop]  # and no second one beside it
    assert entries(exchange) == 1
    assert await repository.get_order(stop) is not None  # booked with the position

    await harness.restart()  # a later start finds it among the books' working orders
    harness.exchange.move(BTC, harness.exchange.marks[BTC] * Decimal("0.95"))  # through it
    for _ in range(3):
        assert await harness.tick()
    assert exchange.orders[stop].status is OrderStatus.FILLED
    [trade] = await repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT  # our stop's exit, not a close by hand


def test_the_last_stand_places_no_move_beside_a_stop_of_ours() -> None:
    """A stop moved (break-even, trailing) beside one of ours listed protects nothing more, and
    a close-all one would be refused beside the old (-4130: an error line for nothing). A
    missing stop is still placed."""
    held = position(symbol=BTC)
    listed = stop_order(held, "qt-s-BTC-1")
    snapshot = ExchangeSnapshot(
        datetime(2025, 1, 1, tzinfo=UTC), SnapshotSource.REST, {}, (listed,)
    )
    moved = PlaceStop(BTC, OrderSide.SELL, held.quantity, Decimal(99_000), StopWhy.MOVED)
    missing = PlaceStop("ETH/USDT:USDT", OrderSide.SELL, Decimal(1), Decimal(3000), StopWhy.MISSING)
    assert stops_to_place(Plan(Book(), actions=(moved, missing)), snapshot) == [missing]
