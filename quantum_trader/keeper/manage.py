"""The stop maths of one reconciled position at its mark price, as keeper actions. Pure.

Wraps monitor/stops.py (SPEC §6): a full exit or a partial take-profit becomes a reduce-only
market `SendExit`; a moved stop changes the position, and the protection step then keeps the
exchange-side stop in step with it. A partial take-profit is sized so that both the part and
what is left meet the symbol's minimum quantity: Binance refuses a reduce-only order below it,
so a rest below it could neither be stopped nor closed (`partial_size`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from quantum_trader.domain import MarketRules, Position, PositionEvent
from quantum_trader.keeper.protect import SendExit
from quantum_trader.monitor import stops
from quantum_trader.monitor.stops import ZERO

if TYPE_CHECKING:
    from quantum_trader.keeper.plan import Context


def manage(
    position: Position, mark: Decimal | None, now: datetime, context: Context
) -> tuple[Position, list[SendExit], list[PositionEvent]]:
    """The position after this tick's stop maths, the exits to send and the events to record.

    Without a mark price (or with a bad one) nothing moves: the exchange-side stop protects.
    """
    if mark is None or not mark.is_finite() or mark <= ZERO:
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
    if not decision.intents:  # most ticks: the position (its extremes, its trail mode) only
        return decision.position, [], []
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
            quantity = partial_size(
                intent.quantity, position.quantity, context.rules.get(position.symbol)
            )
            if quantity > ZERO:  # else too small to split: the rest runs
                actions.append(SendExit(position.symbol, side, quantity, intent.reason))
    return managed, actions, events


def partial_size(wanted: Decimal, held: Decimal, rules: MarketRules | None) -> Decimal:
    """The part of `held` a partial take-profit of `wanted` closes: on the market order's step,
    at least its minimum, leaving at least the minimum a stop or a close of the rest needs
    (less where it would leave too little; 0: no partial)."""
    if rules is None:
        return wanted if 0 < wanted < held else Decimal(0)
    lot = rules.market_order_lot.lot  # both filters' step and minimum: the rest's stop too
    part = lot.round_down(min(wanted, held - lot.min_quantity))
    return part if lot.min_quantity <= part < held and part > 0 else Decimal(0)
