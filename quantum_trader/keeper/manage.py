"""The stop maths of one reconciled position at its mark price, as keeper actions. Pure.

Wraps monitor/stops.py (SPEC §6): a full exit or a partial take-profit becomes a reduce-only
market `SendExit`; a moved stop changes the position, and the protection step then keeps the
exchange-side stop in step with it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from quantum_trader.domain import Position, PositionEvent
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
