"""Triple-barrier labels from the trade's own exits (López de Prado, AFML ch. 3).

For an hourly bar t and a side, the label is what the product would have earned on that trade,
in R after costs: entry at the close of bar t; stop and target from the sizer's arithmetic
(`plan_stops`: stop = ATR% × `sizing.stop_atr_multiple`, clamped; target = R × stop with R from
the orchestrator's regime plan); then the monitor's own stop maths (`monitor.stops.
manage_position`: break-even, partial take-profit, trailing, the time exit) applied to the
bars after t. Nothing about the exits is written a second time here, so labels and live exits
cannot drift apart.

Each later hourly bar is replayed as four monitor ticks, the adverse extreme before the
favourable one (conservative: when a bar reaches both the stop and the target, the stop wins,
as the paper exchange decides): the open and both extremes at the bar's open time plus one
monitor interval, the close at the bar's close. The exchange-side orders fill as the paper
exchange fills them (`execution/paper_triggers.py`): a stop or take-profit crossed at the open
fills at the open (a gap), otherwise at its trigger price; a partial take-profit and a time exit
are market orders at the tick's price.

Costs come from the cost model (sizing/costs.py): a taker fee and the slippage of a
`notional_usdt` order at the entry's ATR% on every leg, and the funding actually settled while
each part of the position was open (recorded rates; longs pay a positive rate). R is the net PnL
divided by the initial risk |entry − stop| × quantity, exactly as a closed trade's `r_multiple`.

A trade still open `max_scan_h` hours after entry (a stop locked in profit) is closed at that
bar's close; a trade still open when the data ends has no label (NaN), and its row is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import Bars, ExitReason, FloatArray, IntArray, Position, Regime, Side
from quantum_trader.gates.orchestrator import regime_plan
from quantum_trader.gates.settings import OrchestratorSettings, RegimeSettings
from quantum_trader.market import indicators
from quantum_trader.market.regime import REGIMES, regime_series
from quantum_trader.market.replay import FundingSeries
from quantum_trader.monitor import stops
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import record, replace
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import plan_stops
from quantum_trader.sizing.settings import CostSettings, SizingSettings

if TYPE_CHECKING:
    from quantum_trader.config import Settings

SIDES: tuple[Side, Side] = (Side.LONG, Side.SHORT)
"""Column 0 of every (n, 2) label array is the long, column 1 the short."""
STOP_EXITS = frozenset({ExitReason.SL_HIT, ExitReason.BREAK_EVEN, ExitReason.TRAILING_HIT})
EXIT_CODES: tuple[ExitReason, ...] = (
    ExitReason.SL_HIT,
    ExitReason.TP_HIT,
    ExitReason.BREAK_EVEN,
    ExitReason.TRAILING_HIT,
    ExitReason.TIME_EXIT,
)
OPEN_TICK = 0
SCAN_HOLD_FACTOR = 4.0
QUIET_MARGIN = 1e-9
HOUR_MS = 3_600_000
_SIZING_FIELDS = ("stop_atr_multiple", "min_stop_pct", "max_stop_pct")
_ORCHESTRATOR_FIELDS = ("tp_r_multiple_trending", "tp_r_multiple_ranging", "tp_r_multiple_default")
_MONITOR_FIELDS = (
    "interval_s",
    "break_even_trigger",
    "break_even_offset_pct",
    "partial_tp_trigger",
    "partial_tp_fraction",
    "trailing_trigger",
    "trail_atr_aggressive",
    "trail_atr_balanced",
    "trail_atr_loose",
    "trail_mode_trend_follow",
    "trail_mode_defensive_trail",
    "max_hold_h",
)


@record
class ExitRules:
    """The settings that decide a trade's exits and costs: the labels' barriers."""

    sizing: SizingSettings
    orchestrator: OrchestratorSettings
    monitor: MonitorSettings
    costs: CostSettings
    regime: RegimeSettings
    notional_usdt: float

    @classmethod
    def of(cls, settings: Settings) -> ExitRules:
        """The exit rules of the whole configuration (the composition root's settings)."""
        return cls(
            settings.sizing,
            settings.orchestrator,
            settings.monitor,
            settings.costs,
            settings.regime,
            settings.ensemble.label_notional_usdt,
        )

    def fingerprint(self) -> dict[str, object]:
        """Every setting a label depends on, as JSON values (stored with a model set)."""
        return {
            "sizing": _pick(self.sizing.model_dump(mode="json"), _SIZING_FIELDS),
            "orchestrator": _pick(self.orchestrator.model_dump(mode="json"), _ORCHESTRATOR_FIELDS),
            "monitor": _pick(self.monitor.model_dump(mode="json"), _MONITOR_FIELDS),
            "costs": self.costs.model_dump(mode="json"),
            "regime": self.regime.model_dump(mode="json"),
            "notional_usdt": self.notional_usdt,
        }


def _pick(values: dict[str, object], names: Sequence[str]) -> dict[str, object]:
    return {name: values[name] for name in names}


@record
class Outcome:
    """One simulated trade: R after costs, when it was fully closed, and why."""

    r_after_costs: float
    exit_ms: int
    reason: ExitReason


@record
class Labels:
    """Outcomes of a long and a short entered at the close of each requested row.

    `r` is (n, 2) R after costs (NaN where the data ends first); `exit_ms` (n, 2) the close
    time of the last exit (the label's own future window ends there); `reason` (n, 2) the
    index into EXIT_CODES of the final exit (-1 when unknown).
    """

    r: FloatArray
    exit_ms: npt.NDArray[np.int64]
    reason: npt.NDArray[np.int8]


@record
class _Leg:
    quantity: Decimal
    price: Decimal
    time_ms: int


def triple_barrier_labels(
    hourly: Bars, funding: FundingSeries | None, rows: IntArray, rules: ExitRules
) -> Labels:
    """Label a long and a short at each of `rows` (indices into `hourly`) by their outcome."""
    atr_pct = indicators.atr_pct(hourly)
    regimes = regime_series(hourly, rules.regime)
    n = rows.shape[0]
    r = np.full((n, 2), np.nan)
    exit_ms = np.full((n, 2), -1, dtype=np.int64)
    reason = np.full((n, 2), -1, dtype=np.int8)
    for i, t in enumerate(rows.tolist()):
        if not np.isfinite(atr_pct[t]) or atr_pct[t] <= 0:
            continue
        for column, side in enumerate(SIDES):
            outcome = simulate_trade(
                hourly, funding, t, side, float(atr_pct[t]), REGIMES[regimes[t]], rules
            )
            if outcome is not None:
                r[i, column] = outcome.r_after_costs
                exit_ms[i, column] = outcome.exit_ms
                reason[i, column] = EXIT_CODES.index(outcome.reason)
    return Labels(r, exit_ms, reason)


def simulate_trade(
    hourly: Bars,
    funding: FundingSeries | None,
    t: int,
    side: Side,
    atr_pct: float,
    regime: Regime,
    rules: ExitRules,
    skip_quiet_ticks: bool = True,
) -> Outcome | None:
    """Replay the trade entered at the close of bar `t`; None when the data ends first.

    With `skip_quiet_ticks`, a tick whose price lies strictly inside the band where the
    monitor can do nothing (between the stop and the nearest of the target and the break-even,
    trailing and partial triggers, before the time exit, trailing not active) is not handed to
    it: the outcome is the same (tested), only faster.
    """
    position = _open_position(hourly, t, side, atr_pct, regime, rules)
    trail = stops.base_trail_mode(position.exit_mode, rules.monitor)
    interval_ms = int(rules.monitor.interval_s * 1000)
    scan_bars = int(rules.monitor.max_hold_h * SCAN_HOLD_FACTOR)
    last = min(len(hourly) - 1, t + scan_bars)
    legs: list[_Leg] = []
    band = _quiet_band(position, rules) if skip_quiet_ticks else None
    for k in range(t + 1, last + 1):
        for tick, (price, now_ms) in enumerate(_ticks(hourly, k, side, interval_ms)):
            if band is not None and band[0] < price < band[1] and now_ms <= band[2]:
                continue
            decision = stops.manage_position(
                position,
                Decimal(repr(price)),
                utc_from_ms(now_ms),
                atr_pct=atr_pct,
                trail_mode=trail,
                regime_turned_choppy=False,
                settings=rules.monitor,
            )
            position = decision.position
            exit_ = decision.exit
            if exit_ is not None:
                fill = _exit_fill(position, exit_, tick, Decimal(repr(float(hourly.open[k]))))
                legs.append(_Leg(position.quantity, fill, now_ms))
                window_end = int(hourly.time_ms[k]) + HOUR_MS
                return _outcome(position, legs, exit_.reason, window_end, funding, rules)
            position = _take_partials(position, decision, legs, now_ms)
            band = _quiet_band(position, rules) if skip_quiet_ticks else None
    if last == t + scan_bars:
        end_ms = int(hourly.time_ms[last]) + HOUR_MS
        close = Decimal(repr(float(hourly.close[last])))
        legs.append(_Leg(position.quantity, close, end_ms))
        return _outcome(position, legs, ExitReason.TIME_EXIT, end_ms, funding, rules)
    return None


def _take_partials(
    position: Position, decision: stops.PositionDecision, legs: list[_Leg], now_ms: int
) -> Position:
    """Book the decision's partial closes as legs; return the position with what remains."""
    for intent in decision.intents:
        if isinstance(intent, stops.PartialClose):
            legs.append(_Leg(intent.quantity, intent.price, now_ms))
            position = replace(position, quantity=position.quantity - intent.quantity)
    return position


def _quiet_band(position: Position, rules: ExitRules) -> tuple[float, float, int] | None:
    """(low, high, until_ms): prices strictly inside (low, high) at or before until_ms change
    nothing; None once trailing is active (every new price may move the stop).

    Each bound is pulled in by QUIET_MARGIN (relative) so float rounding cannot put a tick on
    the wrong side of a Decimal comparison in the monitor.
    """
    if position.trailing_active:
        return None
    m = rules.monitor
    entry, stop = float(position.entry_price), float(position.stop_price)
    target = float(position.take_profit_price)
    triggers = [m.break_even_trigger, m.trailing_trigger]
    if not position.partial_taken:
        triggers.append(m.partial_tp_trigger)
    reach = entry * min(triggers)
    until_ms = int(position.opened_at.timestamp() * 1000 + m.max_hold_h * HOUR_MS) - 1000
    if position.side is Side.LONG:
        low, high = stop, min(target, entry + reach)
    else:
        low, high = max(target, entry - reach), stop
    return low * (1 + QUIET_MARGIN), high * (1 - QUIET_MARGIN), until_ms


def _open_position(
    hourly: Bars, t: int, side: Side, atr_pct: float, regime: Regime, rules: ExitRules
) -> Position:
    plan = regime_plan(regime, rules.orchestrator)
    stop_plan = plan_stops(atr_pct, regime, plan.tp_r_multiple, rules.sizing)
    entry = Decimal(repr(float(hourly.close[t])))
    sign = Decimal(side.sign)
    stop = entry * (1 - sign * Decimal(repr(stop_plan.sl_pct)))
    target = entry * (1 + sign * Decimal(repr(stop_plan.tp_pct)))
    opened_at = utc_from_ms(int(hourly.time_ms[t]) + HOUR_MS)
    return Position(
        symbol=hourly.symbol,
        side=side,
        quantity=Decimal(1),
        entry_price=entry,
        leverage=1,
        stop_price=stop,
        take_profit_price=target,
        opened_at=opened_at,
        entry_order_id="label",
        initial_stop_price=stop,
        initial_quantity=Decimal(1),
        atr_pct=atr_pct,
        exit_mode=plan.exit_mode,
        highest_price=entry,
        lowest_price=entry,
    )


def _ticks(hourly: Bars, k: int, side: Side, interval_ms: int) -> list[tuple[float, int]]:
    """Open, adverse extreme, favourable extreme (at open + one interval), close (at close)."""
    early = int(hourly.time_ms[k]) + interval_ms
    late = int(hourly.time_ms[k]) + HOUR_MS
    low, high = float(hourly.low[k]), float(hourly.high[k])
    adverse, favourable = (low, high) if side is Side.LONG else (high, low)
    return [
        (float(hourly.open[k]), early),
        (adverse, early),
        (favourable, early),
        (float(hourly.close[k]), late),
    ]


def _exit_fill(position: Position, exit_: stops.ExitAll, tick: int, bar_open: Decimal) -> Decimal:
    """Where the exit fills: a resting stop or target at its trigger (the open on a gap)."""
    if exit_.reason in STOP_EXITS:
        return bar_open if tick == OPEN_TICK else position.stop_price
    if exit_.reason is ExitReason.TP_HIT:
        return bar_open if tick == OPEN_TICK else position.take_profit_price
    return exit_.price


def _outcome(
    position: Position,
    legs: Sequence[_Leg],
    reason: ExitReason,
    window_end_ms: int,
    funding: FundingSeries | None,
    rules: ExitRules,
) -> Outcome:
    """Net PnL of the legs after fees, slippage and funding, in R."""
    costs = CostModel(rules.costs)
    entry = float(position.entry_price)
    sign = position.side.sign
    entry_ms = int(position.opened_at.timestamp() * 1000)
    scale = rules.notional_usdt / entry
    net = 0.0
    for leg in legs:
        quantity, price = float(leg.quantity), float(leg.price)
        trip = costs.round_trip_at(
            quantity * scale, entry, price, position.atr_pct, position.side, rate_8h=0.0, hold_h=0.0
        )
        settled = _settled_funding(funding, entry_ms, leg.time_ms)
        paid = quantity * scale * entry * settled * sign
        net += (price - entry) * sign * quantity * scale - trip.total_usdt - paid
    risk = abs(entry - float(position.initial_stop_price)) * scale
    return Outcome(net / risk, window_end_ms, reason)


def _settled_funding(funding: FundingSeries | None, start_ms: int, end_ms: int) -> float:
    """Sum of the funding rates settled in (start_ms, end_ms]."""
    if funding is None or funding.time_ms.size == 0:
        return 0.0
    lo = int(np.searchsorted(funding.time_ms, start_ms, side="right"))
    hi = int(np.searchsorted(funding.time_ms, end_ms, side="right"))
    return float(funding.rate[lo:hi].sum())
