"""Our stop that ran out of position after a sale by hand, its fills unread, booked a tick
before the sale: the trade is still closed at our stop's terms.

The hand-trading campaign, seed 33491 (2026-12-06): a person sold part of our short, then
our stop fired and executed what was left (Binance ends a reduce-only stop's market order
EXPIRED with what it executed). Its fills could not be read (429), and a take-profit of ours
was in doubt, so the tick booked the stop from its order (its fee read later) and left the
person's part for the tick that settled the take-profit. That tick closed the trade MANUAL
at the person's price: an exit of ours booked on an earlier tick is known to the next only
by its last trade (`LastExit`), and there was none read. Now an exit booked with its fills
unread is placed by the time the exchange finished it.
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
    Order,
    OrderKind,
    OrderSide,
    OrderStatus,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book, Intent
from quantum_trader.keeper.plan import Observation, Plan
from quantum_trader.keeper.planner import Planner

STOP, TARGET = "qt-s-BTC-r2-4", "qt-t-BTC-r2-5"
FLAT = ExchangeSnapshot(NOW, SnapshotSource.REST, {}, ())
SOLD_AT = NOW - timedelta(seconds=10)  # the person's sale
FIRED_AT = NOW - timedelta(seconds=4)  # our stop, after it


def first_tick() -> tuple[Plan, Decimal]:
    """Our long of 2 @ 90,000; a person sold 0.8, then our stop for 2 executed the 1.2 left
    at its trigger, EXPIRED; its fills unread; a take-profit of ours not known to the
    exchange yet. The plan, and the stop's price."""
    held = protected(position(quantity=Decimal(2), opened_at=NOW - timedelta(minutes=10)), STOP)
    stop = stop_order(held, STOP)
    ran_out = replace(stop, status=OrderStatus.EXPIRED, filled_quantity=Decimal("1.2"),
                      average_price=held.stop_price, updated_at=FIRED_AT)  # fmt: skip
    target = Order(TARGET, BTC, OrderSide.SELL, OrderKind.TAKE_PROFIT_MARKET, Decimal(2),
                   OrderStatus.UNKNOWN, NOW, trigger_price=Decimal(95_400),
                   reduce_only=True)  # fmt: skip
    book = Book({BTC: held}, {TARGET: Intent(target, NOW)}, working={STOP: stop})
    seen = Observation(FLAT, {STOP: ran_out, TARGET: None}, marks={BTC: Decimal(87_000)},
                       fills_unread=frozenset({STOP}))  # fmt: skip
    return Planner(book, seen, NOW, CONTEXT).run(), held.stop_price


def test_the_sale_booked_a_tick_after_our_stop_closes_the_trade_at_the_stops_terms() -> None:
    first, stop_price = first_tick()
    assert first.book.positions[BTC].quantity == Decimal("0.8")  # the sale awaits the target
    assert first.trades == ()

    later = NOW + timedelta(seconds=30)  # the take-profit settled: never accepted
    book = replace(first.book, intents={})
    sale = Fill("7001", "order-9001", BTC, OrderSide.SELL, Decimal("0.8"), Decimal(88_000),
                Decimal("28.16"), SOLD_AT)  # fmt: skip
    seen = Observation(replace(FLAT, taken_at=later), marks={BTC: Decimal(87_000)},
                       last_exits=first.last_exits, account_fills={BTC: [sale]})  # fmt: skip
    plan = Planner(book, seen, later, CONTEXT).run()

    [trade] = plan.trades
    assert (trade.exit_price, trade.reason) == (stop_price, ExitReason.SL_HIT)  # was: MANUAL
    pnl = (Decimal(88_000) - 90_000) * Decimal("0.8") + (stop_price - 90_000) * Decimal("1.2")
    assert trade.position.realized_pnl_usdt == pnl  # each part at its own price, as before


def test_a_sale_after_our_stop_is_not_taken_for_one_it_closed() -> None:
    """Where the sale's trade is later than the time our stop finished, the trade is the
    person's: MANUAL at their price."""
    first, _ = first_tick()
    later = NOW + timedelta(seconds=30)
    book = replace(first.book, intents={})
    sale = Fill("7001", "order-9001", BTC, OrderSide.SELL, Decimal("0.8"), Decimal(88_000),
                Decimal("28.16"), FIRED_AT + timedelta(seconds=1))  # fmt: skip
    seen = Observation(replace(FLAT, taken_at=later), marks={BTC: Decimal(87_000)},
                       last_exits=first.last_exits, account_fills={BTC: [sale]})  # fmt: skip
    [trade] = Planner(book, seen, later, CONTEXT).run().trades
    assert (trade.exit_price, trade.reason) == (Decimal(88_000), ExitReason.MANUAL)


def test_a_stop_that_ran_out_then_an_open_by_hand_closes_the_trade_at_the_stops_terms() -> None:
    """The hand-trading campaign, seed 33545: a person sold part of our long, our stop then
    ran out of position (its fills read this time), and a person opened a long again before
    the look: the growth is replayed from the position as booked, whose last part went with
    the person's sale — but our stop came after that sale and closed the rest, so the trade's
    exit is our stop's (was: MANUAL at the person's price); what is held is adopted."""
    held = protected(position(quantity=Decimal(2), opened_at=NOW - timedelta(minutes=10)), STOP)
    stop = stop_order(held, STOP)
    ran_out = replace(stop, status=OrderStatus.EXPIRED, filled_quantity=Decimal("1.5"),
                      average_price=held.stop_price, updated_at=FIRED_AT)  # fmt: skip
    ours = Fill("7002", STOP, BTC, OrderSide.SELL, Decimal("1.5"), held.stop_price,
                Decimal("52.38"), FIRED_AT)  # fmt: skip
    sale = Fill("7001", "order-9001", BTC, OrderSide.SELL, Decimal("0.5"), Decimal(88_000),
                Decimal("17.6"), SOLD_AT)  # fmt: skip
    opened = Fill("7003", "order-9002", BTC, OrderSide.BUY, Decimal(3), Decimal(87_500),
                  Decimal("105"), FIRED_AT + timedelta(seconds=2))  # fmt: skip
    listed = replace(ours, client_order_id="order-9000")  # as userTrades lists our stop's
    snapshot = ExchangeSnapshot(NOW, SnapshotSource.REST,
                                {BTC: ExchangePosition(BTC, Side.LONG, Decimal(3),
                                                       Decimal(87_500), 3)}, ())  # fmt: skip
    seen = Observation(snapshot, {STOP: ran_out}, {STOP: [ours]}, marks={BTC: Decimal(87_400)},
                       account_fills={BTC: [sale, listed, opened]},
                       reflected=frozenset({STOP}))  # fmt: skip
    book = Book({BTC: held}, {}, working={STOP: stop})
    plan = Planner(book, seen, NOW, CONTEXT).run()

    [trade] = plan.trades
    assert (trade.exit_price, trade.reason) == (held.stop_price, ExitReason.SL_HIT)
    pnl = (Decimal(88_000) - 90_000) * Decimal("0.5") + (held.stop_price - 90_000) * Decimal("1.5")
    assert trade.position.realized_pnl_usdt == pnl
    adopted = plan.book.positions[BTC]
    assert (adopted.quantity, adopted.entry_price) == (Decimal(3), Decimal(87_500))


def test_our_stop_that_sold_more_than_booked_books_the_addition_by_hand_it_sold() -> None:
    """The hand-trading campaign, seed 33553: our long booked at 1 while its stop still
    stood for 2; a person bought 1 more, unseen, and the stop sold the 2. Reduce-only, our
    stop cannot sell what was not held: the position had been added to by hand. Replayed
    from the position as booked with the account's trades: the addition's price and fee in
    the trade, its exit our stop's (was: the stop booked for the 1 booked, the person's
    trade and fee in no booking, PnL short by the addition's own)."""
    held = protected(position(quantity=Decimal(1), opened_at=NOW - timedelta(minutes=10)), STOP)
    stop = stop_order(held, STOP, quantity=Decimal(2))
    filled = replace(stop, status=OrderStatus.FILLED, filled_quantity=Decimal(2),
                     average_price=held.stop_price, updated_at=FIRED_AT)  # fmt: skip
    ours = Fill("7002", STOP, BTC, OrderSide.SELL, Decimal(2), held.stop_price,
                Decimal("69.84"), FIRED_AT)  # fmt: skip
    added = Fill("7001", "order-9001", BTC, OrderSide.BUY, Decimal(1), Decimal(89_000),
                 Decimal("35.6"), SOLD_AT)  # fmt: skip
    listed = replace(ours, client_order_id="order-9000")
    seen = Observation(FLAT, {STOP: filled}, {STOP: [ours]}, marks={BTC: Decimal(87_200)},
                       account_fills={BTC: [added, listed]},
                       reflected=frozenset({STOP}))  # fmt: skip
    book = Book({BTC: held}, {}, working={STOP: stop})
    plan = Planner(book, seen, NOW, CONTEXT).run()

    [trade] = plan.trades
    assert (trade.exit_price, trade.reason) == (held.stop_price, ExitReason.SL_HIT)
    pnl = (held.stop_price - 90_000) + (held.stop_price - 89_000)
    assert trade.position.realized_pnl_usdt == pnl
    assert trade.position.fees_usdt == held.fees_usdt + Decimal("69.84") + Decimal("35.6")
    assert plan.book.positions == {}
