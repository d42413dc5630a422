"""The most one unit of an entry can lose when stopped out: the distance to the stop, the ticks
its two market fills can round against it, slippage, fees and funding.

A market fill starts from the price on the tick (the nearest), moves by the slippage and rounds
against the taker to the tick (execution/paper_ledger.py `taker_price`; a book's levels are a
tick apart): the entry is filled at most a tick beyond its price moved by the slippage, from at
worst the tick past the price on the losing side, and the stop's fill at most a tick beyond the
stop moved by the slippage. The stop is already on the tick (sizing/rounding.py) and the keeper
places it there. With a tick of 0.8 % of the price, a stop 2 ticks away lost 4 (a probe's,
2026-12-06): 1.37 R.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from quantum_trader.domain import Side
from quantum_trader.sizing.rounding import ONE, to_tick

FILLS = 2  # the entry and the stop's fill each round by up to a tick


def fill_base_high(entry: Decimal, tick: Decimal) -> Decimal:
    """The highest tick a market fill at `entry` can start from (above it or on it)."""
    return to_tick(entry, tick, ROUND_CEILING)


def loss_per_unit(
    entry: Decimal,
    stop: Decimal,
    side: Side,
    tick: Decimal,
    fee_rate: Decimal,
    slippage_rate: Decimal,
    funding_rate: Decimal,
) -> Decimal:
    """Upper bound of the loss of one unit entered at `entry` and stopped out at `stop`, in
    USDT: rates are fractions of the price (`slippage_rate` at this order's largest notional,
    `funding_rate` over the expected hold, 0 when it is received)."""
    worst_base = to_tick(entry, tick, ROUND_CEILING if side is Side.LONG else ROUND_FLOOR)
    high_base = fill_base_high(entry, tick)
    moved = (worst_base - stop) * side.sign + FILLS * tick
    slippage = (high_base + stop) * slippage_rate
    # Fees are charged on the fills' prices: at most the bases moved by slippage, plus a tick.
    fees = ((high_base + stop) * (ONE + slippage_rate) + FILLS * tick) * fee_rate
    return moved + slippage + fees + entry * funding_rate
