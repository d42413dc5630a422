"""A growth with no entry of ours while a stop of ours on the symbol has ended unseen.

The hand-trading campaign, seed 33556 (2026-12-06): our long of 0.018 was closed by its stop;
a person then opened a long of 0.022; the stop's lookup met a 429 and the account's trades
could not be read. The tick booked the long grown by hand (0.018 → 0.022, its fee to be read
later), and the next, with the stop known FILLED, booked the stop against the grown position
and the rest as a growth the trades did not show: two trades merged into one, the person's
fee in no booking. Now the growth waits for the stop, what is held covered; once the stop is
known, its fill is replayed with the person's trades (keeper/exit_replay_settle.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from position_builders import NOW, position, protected, stop_order
from test_keeper_exit_beside_unsettled import BTC, CONTEXT

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    Fill,
    OrderSide,
    OrderStatus,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.plan import Observation
from quantum_trader.keeper.planner import Planner
from quantum_trader.keeper.protect import PlaceStop

STOP = "qt-s-BTC-r3-4"
FIRED_AT = NOW - timedelta(seconds=20)
OPENED_AT = NOW - timedelta(seconds=10)
HELD = ExchangePosition(BTC, Side.LONG, Decimal(3), Decimal(88_000), 3)  # the person's


def booked() -> Book:
    """Our long of 2 @ 90,000 and its stop for 2, which the exchange no longer lists."""
    held = protected(position(quantity=Decimal(2), opened_at=NOW - timedelta(minutes=10)), STOP)
    return Book({BTC: held}, {}, working={STOP: stop_order(held, STOP)})


def test_a_growth_waits_while_our_stop_has_ended_unseen() -> None:
    book = booked()
    snapshot = ExchangeSnapshot(NOW, SnapshotSource.REST, {BTC: HELD}, ())
    seen = Observation(snapshot, {}, marks={BTC: Decimal(88_100)}, account_unread=frozenset({BTC}))
    plan = Planner(book, seen, NOW, CONTEXT).run()

    assert plan.book.positions[BTC] == book.positions[BTC]  # nothing booked yet
    assert plan.book.added_unread == {}
    assert [n.event for n in plan.notes if n.symbol == BTC] == ["growth_awaits_orders"]
    [cover] = [a for a in plan.actions if isinstance(a, PlaceStop)]
    assert (cover.side, cover.quantity) == (OrderSide.SELL, Decimal(3))  # what is held


def test_once_the_stop_is_known_filled_the_two_trades_are_booked_apart() -> None:
    """The stop closed ours at its trigger (its reason and price), the person's long is
    adopted with its own trade's fee."""
    book = booked()
    held = book.positions[BTC]
    stop = book.working[STOP]
    filled = replace(stop, status=OrderStatus.FILLED, filled_quantity=Decimal(2),
                     average_price=held.stop_price, updated_at=FIRED_AT)  # fmt: skip
    ours = Fill("7001", STOP, BTC, OrderSide.SELL, Decimal(2), held.stop_price,
                Decimal("69.84"), FIRED_AT)  # fmt: skip
    opened = Fill("7002", "order-9002", BTC, OrderSide.BUY, Decimal(3), Decimal(88_000),
                  Decimal("105.6"), OPENED_AT)  # fmt: skip
    listed = replace(ours, client_order_id="order-9001")
    snapshot = ExchangeSnapshot(NOW, SnapshotSource.REST, {BTC: HELD}, ())
    seen = Observation(snapshot, {STOP: filled}, {STOP: [ours]}, marks={BTC: Decimal(88_100)},
                       account_fills={BTC: [listed, opened]},
                       reflected=frozenset({STOP}))  # fmt: skip
    plan = Planner(book, seen, NOW, CONTEXT).run()

    [trade] = plan.trades
    assert (trade.exit_price, trade.reason) == (held.stop_price, ExitReason.SL_HIT)
    assert trade.position.realized_pnl_usdt == (held.stop_price - 90_000) * 2
    adopted = plan.book.positions[BTC]
    assert (adopted.quantity, adopted.entry_price, adopted.fees_usdt) == (
        Decimal(3),
        Decimal(88_000),
        Decimal("105.6"),
    )
