"""An exit of ours that filled for all of the position, something held after it (a person
added before it fired), while another order of ours on the symbol is unsettled.

The hand-trading campaign, seed 33350 (2026-12-06): our short's stop for 2 filled 2 after a
person had added 1 to it, leaving 1 held; its fills could not be read (429), the user stream
was down, and a take-profit of ours was in doubt (503). The tick booked our stop for only 1
(what the positions' difference showed), kept the rest as "held as booked", and the person's
addition — its trade, its fee, its price in the entry — was never booked. Now the planner
waits: nothing is booked while that order is unsettled, what is held is covered, and once it
is settled the exit is booked whole and what is held after it adopted (keeper/exit_replay_settle.py
`_await_exits`).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from position_builders import NOW, SETTINGS, position, protected, stop_order

from quantum_trader.domain import (
    ZERO,
    ExchangePosition,
    ExchangeSnapshot,
    MarketRules,
    Order,
    OrderKind,
    OrderStatus,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book, Intent
from quantum_trader.keeper.plan import Context, Observation, Plan
from quantum_trader.keeper.planner import Planner
from quantum_trader.keeper.protect import PlaceStop
from quantum_trader.keeper.settings import KeeperSettings

BTC = "BTC/USDT:USDT"
CONTEXT = Context(
    {BTC: MarketRules(BTC, Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5))},
    KeeperSettings(),
    SETTINGS,
)
STOP, TARGET = "qt-s-BTC-r1-4", "qt-t-BTC-r1-5"


def stop_filled_beside_an_addition(*, target_unsettled: bool) -> tuple[Book, Observation]:
    """Our long of 2 @ 90,000 with its stop for 2; a person bought 1 more at 90,600 and the
    stop then filled 2 at its trigger: 1 held, at Binance's average entry 90,200. The stop's
    fills unread, its fill not reported before the positions were read; `target_unsettled`: a
    take-profit of ours sent and not answered."""
    held = protected(position(quantity=Decimal(2)), STOP)
    stop = stop_order(held, STOP)
    filled = replace(stop, status=OrderStatus.FILLED, filled_quantity=Decimal(2),
                     average_price=held.stop_price, updated_at=NOW)  # fmt: skip
    intents = {}
    if target_unsettled:
        target = Order(TARGET, BTC, held.side.exit_order_side, OrderKind.TAKE_PROFIT_MARKET,
                       Decimal(2), OrderStatus.UNKNOWN, NOW, trigger_price=Decimal(95_400),
                       reduce_only=True)  # fmt: skip
        intents[TARGET] = Intent(target, NOW)
    book = Book({BTC: held}, intents, working={STOP: stop})
    after = ExchangePosition(BTC, Side.LONG, Decimal(1), Decimal(90_200), 3)
    snapshot = ExchangeSnapshot(NOW, SnapshotSource.REST, {BTC: after}, ())
    found: dict[str, Order | None] = {STOP: filled}
    if target_unsettled:
        found[TARGET] = None  # not known to the exchange yet: unsettled until the grace ends
    observation = Observation(
        snapshot, found, marks={BTC: Decimal(87_000)}, fills_unread=frozenset({STOP})
    )
    return book, observation


def planned(book: Book, observation: Observation) -> Plan:
    return Planner(book, observation, NOW, CONTEXT).run()


def test_our_exit_is_not_booked_short_while_another_order_of_ours_is_unsettled() -> None:
    """Was: the stop booked for 1 of its 2, the books LONG 1 at 90,000 — "held as booked"."""
    plan = planned(*stop_filled_beside_an_addition(target_unsettled=True))

    assert plan.book.positions[BTC].quantity == Decimal(2)  # nothing booked yet
    assert plan.trades == ()
    assert STOP in plan.book.working  # read again at the next tick
    assert [n.event for n in plan.notes if n.symbol == BTC] == ["reduction_awaits_orders"]
    covering = [a for a in plan.actions if isinstance(a, PlaceStop)]
    assert [a.quantity for a in covering] == [Decimal(1)]  # what the exchange holds


def test_once_nothing_else_is_unsettled_the_exit_is_booked_whole_and_the_rest_adopted() -> None:
    """The same tick with no order of ours in doubt (or the next, once it is settled), the
    positions read after the stop's fill was known (a REST read again: `reflected`), the
    account's trades unreadable too: booked as the keeper books such an exit (its own terms),
    what is held after it adopted at Binance's entry."""
    book, observation = stop_filled_beside_an_addition(target_unsettled=False)
    unread = frozenset({BTC})
    plan = planned(book, replace(observation, reflected=frozenset({STOP}), account_unread=unread))

    [trade] = plan.trades
    assert (trade.exit_price, trade.position.quantity) == (Decimal(87_300), ZERO)
    assert trade.position.realized_pnl_usdt == (Decimal(87_300) - 90_000) * 2  # its 2, whole
    adopted = plan.book.positions[BTC]
    assert (adopted.quantity, adopted.entry_price) == (Decimal(1), Decimal(90_200))
