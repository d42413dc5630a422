"""Sizing methods (SPEC §5.3), selected by `sizing.method`, behind one `Sizer` protocol.

Every method keeps the math sizer's stops, rounding, margin cap and cost-inclusive budget
(`MathSizer.build_order`); they differ in how much of the base risk (`risk_per_trade`) a trade
gets and in leverage:

- math: SPEC §5.1 (Kelly leverage, full base risk);
- kelly: risk = kelly_fraction × f* of equity (f* from the symbol's record; base risk without
  one; no edge → no trade);
- fixed_risk: base risk, default leverage;
- volatility_adjusted: base risk × target ATR% ÷ ATR%, within [½, 1½];
- regime_based: base risk × a factor per regime;
- cvar: risk per unit is the larger of the stop distance and the 95 % CVaR of recent returns.
"""

from __future__ import annotations

import random
from typing import Protocol

import numpy as np

from quantum_trader.domain import (
    Candidate,
    FloatArray,
    GateName,
    MarketRules,
    PortfolioView,
    ReasonCode,
    Regime,
    SizedOrder,
    TradePlan,
    Verdict,
)
from quantum_trader.record import record, replace
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import (
    MathSizer,
    RiskPlan,
    StopPlan,
    choose_leverage,
    kelly_edge,
    plan_risk,
    plan_stops,
    to_decimal,
)
from quantum_trader.sizing.rl import QAgent, RLSizer
from quantum_trader.sizing.settings import SizingSettings

REGIME_SCALE = {
    Regime.TRENDING: 1.0,
    Regime.BREAKOUT: 1.0,
    Regime.RANGING: 0.75,
    Regime.CHOPPY: 0.5,
}


class Sizer(Protocol):
    """Anything that turns an approved candidate into an order or a SIZER denial."""

    def size(
        self,
        candidate: Candidate,
        plan: TradePlan,
        portfolio: PortfolioView,
        rules: MarketRules,
        funding_rate_8h: float = 0.0,
    ) -> SizedOrder | Verdict: ...


def expected_shortfall(returns: FloatArray, level: float) -> float:
    """Mean loss (positive fraction) in the worst (1 − level) tail of `returns`; 0 if no loss."""
    finite = np.sort(returns[np.isfinite(returns)])
    if finite.size == 0:
        return 0.0
    tail = max(int(np.ceil(finite.size * (1.0 - level))), 1)
    return max(-float(np.mean(finite[:tail])), 0.0)


@record
class MethodSizer:
    """One of the alternative methods. `returns` maps a symbol to its recent returns (cvar)."""

    settings: SizingSettings
    costs: CostModel
    method: str
    returns: dict[str, FloatArray] | None = None

    def with_returns(self, returns: dict[str, FloatArray]) -> MethodSizer:
        """The same sizer reading this cycle's recent returns (MarketView.returns)."""
        return replace(self, returns=returns)

    def size(
        self,
        candidate: Candidate,
        plan: TradePlan,
        portfolio: PortfolioView,
        rules: MarketRules,
        funding_rate_8h: float = 0.0,
    ) -> SizedOrder | Verdict:
        """Size with this method; denials as MathSizer, plus SIZE_ZERO when Kelly has no edge."""
        math = MathSizer(self.settings, self.costs, self.method)
        if candidate.price <= 0 or not np.isfinite(candidate.atr_pct):
            return math.size(candidate, plan, portfolio, rules, funding_rate_8h)
        s = self.settings
        stops = plan_stops(candidate.atr_pct, candidate.regime, plan.tp_r_multiple, s)
        stats = portfolio.symbol_stats.get(candidate.symbol)
        if self.method == "fixed_risk":
            leverage = s.default_leverage
        else:
            leverage = choose_leverage(stats, stops.r_multiple, s)
        leverage = max(min(leverage, rules.max_leverage, s.max_leverage), 1)
        scale = self._scale(candidate, portfolio, stops)
        if scale <= 0:
            detail = f"{self.method}: no positive risk for this trade"
            return Verdict.deny(GateName.SIZER, candidate.symbol, ReasonCode.SIZE_ZERO, detail)
        risk = plan_risk(
            portfolio.equity_usdt,
            portfolio.wallet_usdt,
            stops.sl_pct,
            leverage,
            plan.size_factor * scale,
            s,
        )
        risk = self._tail_cap(candidate, stops, risk)
        return math.build_order(candidate, plan, rules, stops, risk, funding_rate_8h)

    def _scale(self, candidate: Candidate, portfolio: PortfolioView, stops: StopPlan) -> float:
        """This method's risk as a multiple of the base risk per trade."""
        s = self.settings
        if self.method == "kelly":
            stats = portfolio.symbol_stats.get(candidate.symbol)
            if stats is None or stats.trades < s.kelly_min_trades:
                return 1.0
            edge = kelly_edge(stats.win_rate, stops.r_multiple) * s.kelly_fraction
            return edge / s.risk_per_trade
        if self.method == "volatility_adjusted":
            ratio = s.volatility_target_atr_pct / max(candidate.atr_pct, 1e-9)
            return min(max(ratio, 0.5), 1.5)
        if self.method == "regime_based":
            return REGIME_SCALE[candidate.regime]
        return 1.0

    def _tail_cap(self, candidate: Candidate, stops: StopPlan, risk: RiskPlan) -> RiskPlan:
        """For cvar: notional ≤ budget ÷ max(stop distance, CVaR of recent returns)."""
        if self.method != "cvar":
            return risk
        series = (self.returns or {}).get(candidate.symbol)
        if series is None or series.size < self.settings.cvar_min_returns:
            return risk
        cvar = expected_shortfall(series, self.settings.cvar_level)
        risk_pct = max(stops.sl_pct, cvar)
        cap = risk.budget_usdt / to_decimal(risk_pct)
        return replace(risk, notional_usdt=min(risk.notional_usdt, cap))


def make_sizer(
    settings: SizingSettings,
    costs: CostModel,
    agent: QAgent | None = None,
    rng: random.Random | None = None,
) -> Sizer:
    """The sizer `settings.method` names: `math` (default), one of the §5.3 methods, or `rl`.

    For `rl`, pass the agent restored from storage (`QAgent.from_dict`) to keep what it
    learned; `rng` defaults to one seeded with `settings.rl.seed`.
    """
    if settings.method == "math":
        return MathSizer(settings, costs)
    if settings.method == "rl":
        return RLSizer(
            settings,
            costs,
            agent or QAgent.fresh(settings.rl),
            rng or random.Random(settings.rl.seed),  # noqa: S311 - exploration, not secrets
        )
    return MethodSizer(settings, costs, settings.method)
