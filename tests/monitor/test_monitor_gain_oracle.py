"""The stop maths' `_adjust` makes its gain quotient only beyond the entry: the same intents and
changes as the function that always made it (kept here as the oracle), on random positions and
marks at every scale, many-digit values that the context rounds, and marks at the entry."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal
from typing import Any

from position_builders import SETTINGS, position

from quantum_trader.domain import ExitReason, Position, Side, TrailMode
from quantum_trader.monitor.stops import (
    Intent,
    PartialClose,
    StopMoved,
    _adjust,
    _atr,
    _best_stop,
    _Params,
    _params,
    break_even_level,
)


def _oracle(
    position: Position,
    price: Decimal,
    mode: TrailMode,
    atr_pct: float,
    level: Decimal,
    params: _Params,
    changes: dict[str, Any],
) -> tuple[Intent, ...]:
    """`_adjust` before the cut (eb0d5d0): the gain always divided."""
    long, entry = position.side is Side.LONG, position.entry_price
    gain = (price - entry) / entry if long else (entry - price) / entry
    intents: list[Intent] = []
    if not position.partial_taken and gain >= params.partial_trigger:
        intents.append(PartialClose(position.quantity * params.partial_fraction, price))
        changes["partial_taken"] = True
    candidates: list[tuple[Decimal, ExitReason]] = []
    if gain >= params.break_even_trigger:
        candidates.append((level, ExitReason.BREAK_EVEN))
    if position.trailing_active or gain >= params.trailing_trigger:
        if not position.trailing_active:
            changes["trailing_active"] = True
        distance = params.multiples[mode] * _atr(atr_pct) * position.entry_price
        if distance > 0:
            candidates.append((price - distance if long else price + distance, ExitReason.TRAILING))
    stop = position.stop_price
    best = _best_stop(position, price, candidates)
    if best is not None:
        intents.append(StopMoved(stop, best[0], best[1], price))
        stop = changes["stop_price"] = best[0]
    if not position.break_even_done and (stop >= level if long else stop <= level):
        changes["break_even_done"] = True
    return tuple(intents)


def _value(rng: random.Random) -> Decimal:
    """A positive Decimal at any scale, sometimes with more digits than the context keeps."""
    digits = rng.choice([1, 3, 6, 12, 28, 34])
    mantissa = rng.randrange(1, 10**digits)
    return Decimal(mantissa).scaleb(rng.randrange(-40, 30) - digits // 2)


def _near(rng: random.Random, entry: Decimal) -> Decimal:
    """A mark near the entry: at it, a trigger's gain away (exactly or by a last digit), or
    a random fraction away."""
    kind = rng.randrange(5)
    if kind == 0:
        return entry
    if kind in (1, 2):
        trigger = Decimal(rng.choice(["0.01", "0.02", "0.04"]))
        moved = entry + entry * trigger * rng.choice([1, -1])
        if kind == 1:
            return moved
        return moved.next_plus() if rng.random() < 0.5 else moved.next_minus()
    fraction = Decimal(rng.uniform(-0.08, 0.08)).quantize(Decimal("1e-12"))
    return entry * (1 + fraction) if kind == 3 else _value(rng)


def test_adjust_matches_the_oracle_on_random_positions() -> None:
    rng = random.Random(20261207)
    params = _params(SETTINGS)
    for _ in range(200_000):
        side = rng.choice([Side.LONG, Side.SHORT])
        entry = _value(rng)
        price = _near(rng, entry)
        if price <= 0:
            price = entry
        held = replace(
            position(side, entry=entry, stop=_near(rng, entry)),
            partial_taken=rng.random() < 0.3,
            trailing_active=rng.random() < 0.3,
            break_even_done=rng.random() < 0.3,
        )
        mode = rng.choice(list(TrailMode))
        atr_pct = rng.choice([0.0, 0.003, 0.02, float("nan"), rng.uniform(1e-9, 0.2)])
        level = break_even_level(held, SETTINGS, _near(rng, entry) - entry)
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        expected = _oracle(held, price, mode, atr_pct, level, params, old)
        assert repr(_adjust(held, price, mode, atr_pct, level, params, new)) == repr(expected)
        assert repr(new) == repr(old)
