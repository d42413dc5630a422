"""The stop maths of one reconciled position at its mark price, as keeper actions. Pure.

Wraps monitor/stops.py (SPEC §6): a full exit or a partial take-profit becomes a reduce-only
market `SendExit`; a moved stop changes the position, and the protection step then keeps the
exchange-side stop in step with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from quantum_trader.domain import Position, PositionEvent
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.protect import SendExit
from quantum_trader.monitor import stops

if TYPE_CHECKING:
    from quantum_trader.keeper.plan import Context


def manage(
    position: Position, mark: Decimal | None, now: datetime, context: Context
) -> tuple[Position, list[SendExit], list[PositionEvent]]:
    """The position after this tick's stop maths, the exits to send and the events to record.

    Without a mark price (or with a bad one) nothing moves: the exchange-side stop protects.
    """
    if mark is None or not mark.is_finite() or mark <= 0:
        return position, [], []
    trail = stops.base_trail_mode(
        position.exit_mode, context.monitor, defensive_exit=context.defensive_exit
    )
    decision = stops.manage_position(
        position,
        mark,
        now,
        atr_pct=position.atr_pct,
        trail_mode=trail,
        regime_turned_choppy=position.symbol in context.turned_choppy,
        settings=context.monitor,
    )
    events = decision.events(now)
    side = position.side.exit_order_side
    actions: list[SendExit] = []
    managed = decision.position
    for intent in decision.intents:
        if isinstance(intent, stops.ExitAll):
            return (
                managed,
                [SendExit(position.symbol, side, position.quantity, intent.reason)],
                events,
            )
        if isinstance(intent, stops.PartialClose):
            rules = context.rules.get(position.symbol)
            quantity = rules.round_quantity_down(intent.quantity) if rules else intent.quantity
            if 0 < quantity < position.quantity:  # else too small to split: the rest runs
                actions.append(SendExit(position.symbol, side, quantity, intent.reason))
    return managed, actions, events


def quiet(book: Book, marks: Mapping[str, Decimal], now: datetime, context: Context) -> bool:
    """Whether a tick at `now` that finds the exchange as the book has it (no fill, no
    trigger, these marks) would leave the book as it is: nothing unsettled or firing, and no
    position's stop maths moving anything (a backtest repeats such ticks: replay_quiet.py)."""
    if book.intents or book.unechoed:
        return False
    if any(order.triggered_at is not None for order in book.working.values()):
        return False
    for position in book.positions.values():
        mark = marks.get(position.symbol)
        if mark is None:
            return False
        managed, exits, events = manage(position, mark, now, context)
        if managed is not position or exits or events:
            return False
    return True
