"""Binance's leverage brackets on an entry (`MarketRules.leverage_brackets`): its notional
below the last bracket's cap, its leverage at most its own notional's bracket's.

Binance takes no position beyond the last cap and refuses a leverage above the notional's
bracket (-2027); the risk guard refuses both (gates/risk_guard.py `_check_leverage`). Each
bracket offers an order: the planned leverage, at most the bracket's, and the notional that
leverage and the bracket allow — below the bracket's cap by `HEADROOM`, within the plan's
notional cap and the margin cap at that leverage. The largest is taken (the higher leverage
on a tie): a lower leverage changes only the margin, and where the margin cap binds, a bracket
of higher leverage may hold more (was: the leverage lowered step by step and never raised
again, up to 3 × the margin locked for the same order; an outside probe, 2026-12-06). The
quantity is rounded down on the market order step and never exceeds the one asked for, so the
bounds already met (budget, fill ticks, the book's depth, the market maximum) still hold.

`HEADROOM`: Binance checks a long market order against the bracket at ask × 1.0005 (its FAQ
"Cost Required to Open a Position"), and the ask and the fill's slippage lie above the price
sized at; an order sized right at a cap was refused on every cycle.
"""

from __future__ import annotations

from decimal import Decimal

from quantum_trader.domain import ZERO, LeverageBracket, LotSize, MarketRules
from quantum_trader.record import record

HEADROOM = Decimal("0.01")


@record
class Bracketed:
    """An entry's quantity and leverage within the brackets; `bound` names the limit that
    lowered the quantity (None: unchanged) and `allowed` what it allowed before rounding."""

    quantity: Decimal
    leverage: int
    allowed: Decimal = ZERO
    bound: str | None = None


@record
class _Asked:
    """The order a bracket is asked to hold: at `price`, at most `quantity` on `lot`'s step at
    `leverage`, within the margin cap (USDT, at whatever leverage) and the notional cap."""

    lot: LotSize
    price: Decimal
    quantity: Decimal
    leverage: int
    margin_cap_usdt: Decimal
    notional_cap_usdt: Decimal


def within_brackets(
    rules: MarketRules,
    lot: LotSize,
    price: Decimal,
    quantity: Decimal,
    leverage: int,
    margin_cap_usdt: Decimal,
    notional_cap_usdt: Decimal,
) -> Bracketed:
    """`quantity` (on `lot`'s step) at `leverage`, as the brackets allow them (module doc):
    the largest of each bracket's offer, quantity 0 where none is left."""
    if not rules.leverage_brackets or price <= 0:
        return Bracketed(quantity, leverage)
    asked = _Asked(lot, price, quantity, leverage, margin_cap_usdt, notional_cap_usdt)
    offers = [_offer(rules, bracket, asked) for bracket in rules.leverage_brackets]
    fitting = [o for o in offers if o is not None]
    if not fitting:
        named = f"the last leverage bracket's cap {rules.leverage_brackets[-1].notional_cap} USDT"
        return Bracketed(ZERO, leverage, ZERO, named)
    best = max(fitting, key=lambda o: (o.quantity, o.leverage))
    return best if best.quantity < quantity else Bracketed(quantity, best.leverage)


def _offer(rules: MarketRules, bracket: LeverageBracket, asked: _Asked) -> Bracketed | None:
    """The largest order `bracket` allows at its leverage, or None: none above 0, or one whose
    notional, at the price or `HEADROOM` above it, lands in a bracket of lower leverage (the
    brackets' leverage need not fall)."""
    at = min(asked.leverage, bracket.initial_leverage, rules.max_leverage)
    if at < 1:
        return None
    cap = bracket.notional_cap / (1 + HEADROOM)
    margin_cap = asked.margin_cap_usdt
    limits = [
        (cap, f"the leverage bracket's cap {bracket.notional_cap} USDT (at {at}x)"),
        (margin_cap * at, f"the margin cap {margin_cap:.2f} USDT at {at}x"),
        (asked.notional_cap_usdt, f"the notional cap {asked.notional_cap_usdt:.2f} USDT"),
    ]
    notional, named = min(limits, key=lambda limit: limit[0])
    price = asked.price
    fitted = min(asked.lot.round_down(max(notional, ZERO) / price), asked.quantity)
    reached = fitted * price
    if (
        fitted <= 0
        or min(rules.max_leverage_for(reached), rules.max_leverage_for(reached * (1 + HEADROOM)))
        < at
    ):
        return None
    return Bracketed(fitted, at, notional / price, named)
