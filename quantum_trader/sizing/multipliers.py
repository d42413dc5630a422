"""Size multipliers (SPEC §5.2), composed in one visible place: each factor bounded and listed.

policy (the plan's size factor) × global regime × symbol performance × recent performance ×
diversification × lifecycle stage. The product multiplies the risk budget; the sizer still
caps the budget at `max_risk_fraction` of equity, so an upward factor never breaks the risk
guard's limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from quantum_trader.domain import (
    Candidate,
    GlobalRegime,
    PortfolioView,
    SymbolStats,
    TradePlan,
)
from quantum_trader.record import record, replace
from quantum_trader.sizing.settings import MultiplierSettings


@record
class Factor:
    """One multiplier with the bounds it was clamped to: low ≤ value ≤ high."""

    name: str
    value: float
    low: float
    high: float


@record
class SizingBreakdown:
    """All factors and their bounded product, for one log line and one size factor."""

    factors: tuple[Factor, ...]
    low: float
    high: float

    @property
    def total(self) -> float:
        return _clamp(math.prod(f.value for f in self.factors), self.low, self.high)

    def log_fields(self) -> dict[str, float]:
        """`size_<name>` per factor and `size_total`, e.g. for `log.info("sized", **fields)`."""
        fields = {f"size_{f.name}": round(f.value, 4) for f in self.factors}
        fields["size_total"] = round(self.total, 4)
        return fields

    def apply(self, plan: TradePlan) -> TradePlan:
        """The plan with its size factor replaced by the composed total."""
        return replace(plan, size_factor=self.total)


def compose_multipliers(
    candidate: Candidate,
    plan: TradePlan,
    portfolio: PortfolioView,
    settings: MultiplierSettings,
    *,
    recent_r: Sequence[float] = (),
    correlations: Mapping[str, float] | None = None,
    stage_factor: float = 1.0,
    global_regime: GlobalRegime | None = None,
) -> SizingBreakdown:
    """Compose every size multiplier for one candidate.

    `plan.size_factor` carries the policy mode's risk multiplier (and whatever the chain already
    applied). Pass `global_regime` only when the chain has not applied it yet. `recent_r` holds
    the realized R multiples of recent closed trades (any symbol, oldest first); `correlations`
    maps an open position's symbol to its return correlation with the candidate; `stage_factor`
    comes from `lifecycle.stage_factor`.
    """
    s = settings
    factors = (
        _bounded("policy", plan.size_factor, (s.policy_low, s.policy_high)),
        _bounded("global_regime", regime_factor(global_regime, s), _regime_bounds(s)),
        _bounded(
            "symbol",
            symbol_factor(portfolio.symbol_stats.get(candidate.symbol), s),
            (s.symbol_poor_factor, max(s.symbol_high_factor, 1.0)),
        ),
        _bounded(
            "performance", performance_factor(recent_r, s), (s.performance_low, s.performance_high)
        ),
        _bounded(
            "diversification",
            diversification_factor(candidate, portfolio, correlations or {}, s),
            (s.diversification_floor, 1.0),
        ),
        _bounded("lifecycle", stage_factor, (0.0, 1.0)),
    )
    return SizingBreakdown(factors, s.total_low, s.total_high)


def regime_factor(global_regime: GlobalRegime | None, settings: MultiplierSettings) -> float:
    """UPTREND ×1.10, SIDEWAYS ×0.80, DOWNTREND ×1.0; 1.0 when not given."""
    if global_regime is None:
        return 1.0
    return {
        GlobalRegime.UPTREND: settings.uptrend_factor,
        GlobalRegime.SIDEWAYS: settings.sideways_factor,
        GlobalRegime.DOWNTREND: settings.downtrend_factor,
    }[global_regime]


def symbol_factor(stats: SymbolStats | None, settings: MultiplierSettings) -> float:
    """Win rate > 55 % ×1.1; 35–45 % ×0.7; < 35 % ×0.5; else 1.0 (needs a record)."""
    s = settings
    if stats is None or stats.trades < s.symbol_min_trades:
        return 1.0
    win_rate = stats.win_rate
    if win_rate > s.symbol_high_win_rate:
        return s.symbol_high_factor
    if win_rate < s.symbol_poor_win_rate:
        return s.symbol_poor_factor
    if win_rate < s.symbol_weak_win_rate:
        return s.symbol_weak_factor
    return 1.0


def performance_factor(recent_r: Sequence[float], settings: MultiplierSettings) -> float:
    """Map recent win rate and per-trade Sharpe of R to [performance_low, performance_high].

    score = ½·clip((win rate − ½) ÷ ¼, −1, 1) + ½·clip(Sharpe, −1, 1); 1.0 with too few trades.
    """
    values = [float(r) for r in recent_r if math.isfinite(r)]
    if len(values) < settings.performance_min_trades:
        return 1.0
    win_rate = sum(1 for r in values if r > 0) / len(values)
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in values) / (len(values) - 1))
    sharpe = mean / std if std > 0 else math.copysign(1.0, mean) if mean else 0.0
    score = 0.5 * _clamp((win_rate - 0.5) / 0.25, -1.0, 1.0) + 0.5 * _clamp(sharpe, -1.0, 1.0)
    if score >= 0:
        return 1.0 + score * (settings.performance_high - 1.0)
    return 1.0 + score * (1.0 - settings.performance_low)


def diversification_factor(
    candidate: Candidate,
    portfolio: PortfolioView,
    correlations: Mapping[str, float],
    settings: MultiplierSettings,
) -> float:
    """Shrink size as the candidate duplicates an open position's risk.

    A position's directional correlation is ρ × (same direction ? 1 : −1): a long highly
    correlated with an open short hedges it and is not penalised. Above the threshold the
    factor falls linearly to the floor at ρ = 1.
    """
    worst = 0.0
    for symbol, position in portfolio.positions.items():
        rho = correlations.get(symbol)
        if symbol == candidate.symbol or rho is None or not math.isfinite(rho):
            continue
        worst = max(worst, rho * candidate.side.sign * position.side.sign)
    excess = (worst - settings.diversification_threshold) / (
        1.0 - settings.diversification_threshold
    )
    return 1.0 - _clamp(excess, 0.0, 1.0) * (1.0 - settings.diversification_floor)


def _regime_bounds(settings: MultiplierSettings) -> tuple[float, float]:
    values = (settings.uptrend_factor, settings.sideways_factor, settings.downtrend_factor, 1.0)
    return min(values), max(values)


def _bounded(name: str, value: float, bounds: tuple[float, float]) -> Factor:
    low, high = bounds
    return Factor(name, _clamp(value, low, high), low, high)


def _clamp(value: float, low: float, high: float) -> float:
    if not math.isfinite(value):
        return low
    # min(max(value, low), high) by comparisons (in 3.11 a two-value min() or max() parses
    # its keywords at every call: ≈ 1,400 instructions)
    at_least = low if low > value else value
    return high if high < at_least else at_least
