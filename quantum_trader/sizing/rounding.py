"""Exchange precision for protective prices: the stop rounds toward the entry, the target away.

A stop rounded toward the entry shortens the stop distance, so the loss at the stop can only
shrink; a take-profit rounded away from the entry keeps the reward:risk at least the planned R,
which the risk guard checks (a 1.5R target rounded inward fell to 1.4999R and was refused).
Quantities round down (`MarketRules.round_quantity_down`).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from quantum_trader.domain import Side

ONE = Decimal(1)


def to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    """Round `price` to a multiple of `tick` (> 0) with the given decimal rounding mode."""
    return (price / tick).to_integral_value(rounding) * tick


def stop_price(entry: Decimal, stop_pct: Decimal, side: Side, tick: Decimal) -> Decimal:
    """Stop `stop_pct` (fraction) away from `entry` on the losing side, rounded toward entry."""
    if side is Side.LONG:
        return to_tick(entry * (ONE - stop_pct), tick, ROUND_CEILING)
    return to_tick(entry * (ONE + stop_pct), tick, ROUND_FLOOR)


def take_profit_price(entry: Decimal, tp_pct: Decimal, side: Side, tick: Decimal) -> Decimal:
    """Target `tp_pct` (fraction) away from `entry` on the winning side, rounded away from it."""
    if side is Side.LONG:
        return to_tick(entry * (ONE + tp_pct), tick, ROUND_CEILING)
    return to_tick(entry * (ONE - tp_pct), tick, ROUND_FLOOR)
