"""Binance's leverage brackets on an entry (`MarketRules.leverage_brackets`): its notional
below the last bracket's cap, its leverage at most its own notional's bracket's.

Binance takes no position beyond the last cap and refuses a leverage above the notional's
bracket; the risk guard refuses both (gates/risk_guard.py `_check_leverage`). The leverage is
lowered first, which changes only the margin; where the margin cap then binds, the quantity
shrinks with it. Each step rounds down on the market order step, so the quantity only falls:
the bounds already met (budget, fill ticks, the book's depth, the market maximum) still hold.
"""

from __future__ import annotations

from decimal import Decimal

from quantum_trader.domain import ZERO, LotSize, MarketRules
from quantum_trader.record import record


@record
class Bracketed:
    """An entry's quantity and leverage within the brackets; `bound` names the bracket limit
    that lowered the quantity (None: unchanged) and `allowed` what it allowed before rounding."""

    quantity: Decimal
    leverage: int
    allowed: Decimal = ZERO
    bound: str | None = None


def within_brackets(
    rules: MarketRules,
    lot: LotSize,
    price: Decimal,
    quantity: Decimal,
    leverage: int,
    margin_cap_usdt: Decimal,
    notional_cap_usdt: Decimal,
) -> Bracketed:
    """`quantity` (on `lot`'s step) at `leverage`, as the brackets allow them: the notional
    below the last cap, then the leverage lowered to the notional's bracket, the notional at
    most `notional_cap_usdt` and `margin_cap_usdt` × that leverage. Loops while a smaller
    notional lands in a bracket of lower leverage still; the leverage falls every time."""
    fitted, cap = Bracketed(quantity, leverage), rules.notional_cap
    if cap is None:
        return fitted
    if quantity * price >= cap:
        below = _largest_quantity(lot, cap, price, below=True)
        named = f"the last leverage bracket's cap {cap} USDT"
        fitted = Bracketed(below, leverage, cap / price, named)
    while (allowed := rules.max_leverage_for(fitted.quantity * price)) < fitted.leverage:
        limit = min(notional_cap_usdt, margin_cap_usdt * allowed)
        if fitted.quantity * price <= limit:
            fitted = Bracketed(fitted.quantity, allowed, fitted.allowed, fitted.bound)
            continue
        named = (
            f"the margin cap {margin_cap_usdt:.2f} USDT at {allowed}x, the leverage bracket's "
            f"at notional {fitted.quantity * price:.2f} USDT"
        )
        fitted = Bracketed(_largest_quantity(lot, limit, price), allowed, limit / price, named)
    return fitted


def _largest_quantity(
    lot: LotSize, notional_usdt: Decimal, price: Decimal, *, below: bool = False
) -> Decimal:
    """The largest quantity on the step whose notional is at most (`below`: under) the limit."""
    quantity = lot.round_down(max(notional_usdt, ZERO) / price)
    # Decimal division rounds to 28 digits; one step back keeps the limit exactly.
    over = quantity * price >= notional_usdt if below else quantity * price > notional_usdt
    return max(quantity - lot.step_size, ZERO) if quantity > 0 and over else quantity
