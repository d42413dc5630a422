"""Stop maths for one open position at one mark price (SPEC §6). Pure: the time is an argument.

Conventions (prices in USDT; `sign` is +1 for a long, -1 for a short):
- gain = (price − entry) ÷ entry × sign, an exact Decimal fraction; every trigger is `gain >=
  trigger` (break-even +1 %, trailing +2 %, partial take-profit +4 %).
- The stop is hit when (price − stop) × sign ≤ 0, the take-profit when (price − TP) × sign ≥ 0.
- Trailing distance = mode multiple × `atr_pct` × the ENTRY price. The entry is the reference
  because it reproduces the SPEC example: ATR 1,800 is 2 % of the entry 90,000 and the distance
  stays 1,800 at 91,800 and at 94,000 (2 % of the mark would give 1,836 and 1,880).
- The trailing candidate is the current price minus the distance, so a tightened trail never
  lands beyond the price (an exchange would reject such a stop).
- Time exit: a position older than `max_hold_h` (strictly) is closed unless its stop sits
  strictly beyond the break-even level, i.e. already locks in a profit net of costs.
- A stop hit is SL_HIT at or behind the initial stop, BREAK_EVEN at the break-even level, and
  TRAILING_HIT wherever trailing moved it (`stop_exit_reason`).
- Invariant: the managed stop only moves in the position's favour and always stays strictly on
  the safe side of the price that moved it. The trail mode only tightens.

The code compares per side (a long's stop is hit at price ≤ stop, a short's at price ≥ stop)
where the conventions multiply by `sign`: the same answers exactly (a Decimal difference has
the sign of its operands' order, and a quotient negates with its numerator), without a
Decimal product and a conversion of `sign` each time (≈ 2,000 instructions; the stop maths
runs for every position at every step a backtest checks).
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from quantum_trader.domain import ExitMode, ExitReason, Position, PositionEvent, Side, TrailMode
from quantum_trader.errors import MarketDataError
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import record, replace_from

ZERO = Decimal(0)  # compared against: an int operand is made a Decimal at every comparison
_PARAMS_MAX = 16
_TIGHTNESS = {TrailMode.AGGRESSIVE: 0, TrailMode.BALANCED: 1, TrailMode.LOOSE: 2}
# Read at every tick: members kept here, not read through their classes (domain/enums.py).
_LONG, _TREND_FOLLOW = Side.LONG, ExitMode.TREND_FOLLOW


@record
class ExitAll:
    """Close the whole position at market."""

    reason: ExitReason
    price: Decimal


@record
class PartialClose:
    """Close `quantity` at market; it is unrounded: the caller rounds it down to the step."""

    quantity: Decimal
    price: Decimal
    reason: ExitReason = ExitReason.PARTIAL_TP


@record
class StopMoved:
    """The managed stop moved in the position's favour (reason BREAK_EVEN or TRAILING)."""

    old_stop: Decimal
    new_stop: Decimal
    reason: ExitReason
    price: Decimal


Intent = ExitAll | PartialClose | StopMoved


@record
class PositionDecision:
    """The position's new state and what to do about it, in execution order."""

    position: Position
    intents: tuple[Intent, ...] = ()

    @property
    def exit(self) -> ExitAll | None:
        """The full exit, if this tick closes the position."""
        for intent in self.intents:
            if isinstance(intent, ExitAll):
                return intent
        return None

    def events(self, now: datetime) -> list[PositionEvent]:
        """One event per intent, for the log and the database."""
        if not self.intents:
            return []
        return [_event(self.position.symbol, intent, now) for intent in self.intents]


@record
class _Params:
    """Settings as Decimals, converted once per settings object."""

    break_even_trigger: Decimal
    break_even_offset_pct: Decimal
    partial_trigger: Decimal
    partial_fraction: Decimal
    trailing_trigger: Decimal
    multiples: dict[TrailMode, Decimal]
    max_hold: timedelta


_PARAMS: dict[int, tuple[MonitorSettings, _Params]] = {}


def _params(settings: MonitorSettings) -> _Params:
    """Settings as Decimals, cached by identity: hashing a settings model costs more than the
    stop maths of a position. The entry keeps its settings alive, so an id is never reused."""
    known = _PARAMS.get(id(settings))
    if known is not None:
        return known[1]
    params = _Params(
        break_even_trigger=_decimal(settings.break_even_trigger),
        break_even_offset_pct=_decimal(settings.break_even_offset_pct),
        partial_trigger=_decimal(settings.partial_tp_trigger),
        partial_fraction=_decimal(settings.partial_tp_fraction),
        trailing_trigger=_decimal(settings.trailing_trigger),
        multiples={
            TrailMode.AGGRESSIVE: _decimal(settings.trail_atr_aggressive),
            TrailMode.BALANCED: _decimal(settings.trail_atr_balanced),
            TrailMode.LOOSE: _decimal(settings.trail_atr_loose),
        },
        max_hold=timedelta(hours=settings.max_hold_h),
    )
    if len(_PARAMS) >= _PARAMS_MAX:
        _PARAMS.clear()
    _PARAMS[id(settings)] = (settings, params)
    return params


def _decimal(value: float) -> Decimal:
    """The float's shortest decimal spelling: 0.02 becomes Decimal('0.02'), not 0.0200000000…4."""
    return Decimal(repr(value))


def base_trail_mode(
    exit_mode: ExitMode, settings: MonitorSettings, *, defensive_exit: bool = False
) -> TrailMode:
    """The trail mode the orchestrator's exit mode asks for; the governor's DEFENSIVE_EXIT
    forces AGGRESSIVE."""
    if defensive_exit:
        return TrailMode.AGGRESSIVE
    if exit_mode is _TREND_FOLLOW:
        return settings.trail_mode_trend_follow
    return settings.trail_mode_defensive_trail


def tighter(*modes: TrailMode) -> TrailMode:
    """The tightest of the given trail modes (AGGRESSIVE < BALANCED < LOOSE)."""
    return min(modes, key=_TIGHTNESS.__getitem__)


def break_even_level(
    position: Position, settings: MonitorSettings, offset: Decimal | None = None
) -> Decimal:
    """Entry plus `offset` (USDT per unit, default entry × break_even_offset_pct) in the
    position's favour."""
    if offset is None:
        offset = position.entry_price * _params(settings).break_even_offset_pct
    entry = position.entry_price
    return entry + offset if position.side is _LONG else entry - offset


def manage_position(
    position: Position,
    price: Decimal,
    now: datetime,
    *,
    atr_pct: float,
    trail_mode: TrailMode,
    regime_turned_choppy: bool,
    settings: MonitorSettings,
    break_even_offset: Decimal | None = None,
) -> PositionDecision:
    """Apply one mark price to one position: exit it, or ratchet its stop and take a partial.

    `atr_pct` is the current ATR as a fraction of price (0.02 = 2 %); a non-finite or
    non-positive value suspends trailing for this tick. `trail_mode` is the base mode
    (`base_trail_mode`); the effective mode is the tightest of it, the position's own mode, and
    AGGRESSIVE when the regime just turned TRENDING → CHOPPY, and it is kept on the position.
    `break_even_offset` (USDT per unit) overrides the setting; pass Decimal(0) for "exactly the
    entry". Exits are checked on the stop as it stood before this tick; a full exit carries no
    other intent. Raises MarketDataError for a non-positive or non-finite price.
    """
    if not price.is_finite() or price <= ZERO:
        raise MarketDataError(f"{position.symbol}: bad mark price {price}")
    params = _params(settings)
    mode = position.trail_mode
    if regime_turned_choppy:
        mode = TrailMode.AGGRESSIVE
    elif _TIGHTNESS[trail_mode] < _TIGHTNESS[mode]:
        mode = trail_mode
    changes = _tracking(position, price, mode)
    entry = position.entry_price
    if break_even_offset is None:
        break_even_offset = entry * params.break_even_offset_pct
    # break_even_level, without a call
    level = entry + break_even_offset if position.side is _LONG else entry - break_even_offset
    reason = _exit_reason(position, price, now, level, params)
    if reason is not None:
        return PositionDecision(_updated(position, changes), (ExitAll(reason, price),))
    intents = _adjust(position, price, mode, atr_pct, level, params, changes)
    return PositionDecision(_updated(position, changes), intents)


def _tracking(position: Position, price: Decimal, mode: TrailMode) -> dict[str, Any]:
    """Field changes that follow the price alone: the trail mode and the extremes seen."""
    changes: dict[str, Any] = {}
    if mode is not position.trail_mode:
        changes["trail_mode"] = mode
    _extremes(position, price, changes)
    return changes


def with_extremes(position: Position, price: Decimal) -> Position:
    """`position` with `price` recorded as its highest or lowest price seen, where it is one
    (itself otherwise): what a tick whose stop maths have nothing else to do leaves."""
    changes: dict[str, Any] = {}
    _extremes(position, price, changes)
    return _updated(position, changes)


def _extremes(position: Position, price: Decimal, changes: dict[str, Any]) -> None:
    if price > position.highest_price:
        changes["highest_price"] = price
    if position.lowest_price <= ZERO or price < position.lowest_price:
        changes["lowest_price"] = price


def _updated(position: Position, changes: dict[str, Any]) -> Position:
    # One copy per tick at most: copying a 24-field record dominates the tick's cost.
    return replace_from(position, changes) if changes else position


def _atr(atr_pct: float) -> Decimal:
    if not math.isfinite(atr_pct) or atr_pct <= 0:
        return ZERO
    return _positive_decimal(atr_pct)


@functools.lru_cache(maxsize=1024)
def _positive_decimal(value: float) -> Decimal:
    """`_decimal` of a finite positive float, cached: a position's ATR is the same float every
    tick, and spelling it costs more than its stop maths. (Positive only: 0.0 and -0.0 share a
    cache entry.)"""
    return _decimal(value)


def _exit_reason(
    position: Position, price: Decimal, now: datetime, level: Decimal, params: _Params
) -> ExitReason | None:
    long, stop = position.side is _LONG, position.stop_price
    if price <= stop if long else price >= stop:
        return stop_exit_reason(position, level)
    target = position.take_profit_price
    if target > ZERO and (price >= target if long else price <= target):
        return ExitReason.TP_HIT
    if now - position.opened_at > params.max_hold and (stop <= level if long else stop >= level):
        return ExitReason.TIME_EXIT  # held too long, its stop locking in no profit
    return None


def stop_exit_reason(position: Position, break_even: Decimal) -> ExitReason:
    """Name a hit of the managed stop by where it sits.

    At or behind the initial stop: SL_HIT. Exactly at the break-even level: BREAK_EVEN. Moved
    by trailing anywhere else: TRAILING_HIT. Also names an exchange-side stop that filled.
    """
    sign = position.side.sign
    stop = position.stop_price
    if (stop - position.initial_stop_price) * sign <= 0:
        return ExitReason.SL_HIT
    if stop == break_even and position.break_even_done:
        return ExitReason.BREAK_EVEN
    if position.trailing_active:
        return ExitReason.TRAILING_HIT
    return ExitReason.BREAK_EVEN if position.break_even_done else ExitReason.SL_HIT


def _adjust(
    position: Position,
    price: Decimal,
    mode: TrailMode,
    atr_pct: float,
    level: Decimal,
    params: _Params,
    changes: dict[str, Any],
) -> tuple[Intent, ...]:
    """Partial take-profit, break-even and trailing; records field changes in `changes`
    (`atr_pct` spelled as a Decimal only where trailing reads it: most ticks it does not)."""
    long, entry = position.side is _LONG, position.entry_price
    # At or behind the entry the gain is not positive, below every trigger (the settings keep
    # them positive): the quotient is made only beyond it.
    if price > entry if long else price < entry:
        gain = (price - entry) / entry if long else (entry - price) / entry
    else:
        gain = ZERO
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
        if distance > ZERO:
            candidates.append((price - distance if long else price + distance, ExitReason.TRAILING))
    stop = position.stop_price
    best = _best_stop(position, price, candidates)
    if best is not None:
        intents.append(StopMoved(stop, best[0], best[1], price))
        stop = changes["stop_price"] = best[0]
    if not position.break_even_done and (stop >= level if long else stop <= level):
        changes["break_even_done"] = True
    return tuple(intents)


def _best_stop(
    position: Position, price: Decimal, candidates: list[tuple[Decimal, ExitReason]]
) -> tuple[Decimal, ExitReason] | None:
    """The candidate furthest in the position's favour that improves the stop and stays
    strictly on the safe side of `price`; on a tie the first listed wins."""
    long = position.side is _LONG
    best: tuple[Decimal, ExitReason] | None = None
    floor = position.stop_price
    for stop, reason in candidates:
        if price > stop > floor if long else price < stop < floor:
            best, floor = (stop, reason), stop
    return best


def _event(symbol: str, intent: Intent, now: datetime) -> PositionEvent:
    if isinstance(intent, StopMoved):
        return PositionEvent(
            symbol,
            now,
            intent.reason,
            f"stop {intent.old_stop} -> {intent.new_stop}",
            price=intent.price,
            new_stop_price=intent.new_stop,
        )
    if isinstance(intent, PartialClose):
        return PositionEvent(
            symbol, now, intent.reason, "partial take-profit", intent.price, intent.quantity
        )
    return PositionEvent(symbol, now, intent.reason, "exit", intent.price)
