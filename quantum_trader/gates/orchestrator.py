"""Orchestrator policy (SPEC §4.1): the first gate. Candidate + account + regimes → verdict.

Blocking rules run in a fixed order (symbol disabled/blacklisted/held, daily drawdown, open
positions, symbol win rate, CHOPPY confidence, SHORT in an UPTREND, dynamic minimum
confidence); the first that fires is the denial. An approval carries the trade plan: size
factor (policy mode × global regime × regime), exit mode and take-profit R multiple.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from quantum_trader.domain import (
    Candidate,
    ExitMode,
    GateName,
    GlobalRegime,
    MarketView,
    PortfolioView,
    ReasonCode,
    Regime,
    Side,
    TrailMode,
    Verdict,
)
from quantum_trader.gates.settings import OrchestratorSettings
from quantum_trader.portfolio.performance import block_reason
from quantum_trader.record import record


class PolicyMode(StrEnum):
    """How cautious the policy is; follows the daily drawdown and the losing streak."""

    NORMAL = "NORMAL"
    DEFENSIVE = "DEFENSIVE"
    CRITICAL = "CRITICAL"


# Compared per candidate: members kept here, not read through their classes (domain/enums.py).
_NORMAL, _DEFENSIVE, _CRITICAL = PolicyMode.NORMAL, PolicyMode.DEFENSIVE, PolicyMode.CRITICAL
_TRENDING, _RANGING, _CHOPPY, _BREAKOUT = (
    Regime.TRENDING,
    Regime.RANGING,
    Regime.CHOPPY,
    Regime.BREAKOUT,
)
_UPTREND, _SIDEWAYS = GlobalRegime.UPTREND, GlobalRegime.SIDEWAYS
_NAME = GateName.ORCHESTRATOR


@record
class RegimePlan:
    """What a regime does to the trade (SPEC §4.1): TP in R, trail, stop width, size."""

    tp_r_multiple: float
    trail_mode: TrailMode
    stop_atr_factor: float
    size_factor: float
    exit_mode: ExitMode


def policy_mode(portfolio: PortfolioView, settings: OrchestratorSettings) -> PolicyMode:
    """CRITICAL or DEFENSIVE once the daily drawdown or the losing streak reaches its level."""
    dd, streak = portfolio.daily_drawdown, portfolio.losing_streak
    s = settings
    if dd > s.critical_mode_drawdown or streak >= s.critical_mode_losing_streak:
        return _CRITICAL
    if dd > s.defensive_mode_drawdown or streak >= s.defensive_mode_losing_streak:
        return _DEFENSIVE
    return _NORMAL


def mode_floor(mode: PolicyMode, settings: OrchestratorSettings) -> tuple[float, float]:
    """(minimum confidence, risk multiplier) of a policy mode."""
    if mode is _CRITICAL:
        return settings.critical_min_confidence, settings.critical_risk_multiplier
    if mode is _DEFENSIVE:
        return settings.defensive_min_confidence, settings.defensive_risk_multiplier
    return settings.normal_min_confidence, settings.normal_risk_multiplier


def regime_plan(regime: Regime, settings: OrchestratorSettings) -> RegimePlan:
    """TRENDING: TP 2.5R, tight trail; RANGING: TP 1.5R, wider stop; CHOPPY: half size;
    BREAKOUT: full size, wide stop. Exit mode TREND_FOLLOW only when TRENDING."""
    s = settings
    if regime is _TRENDING:
        return RegimePlan(
            s.tp_r_multiple_trending, TrailMode.AGGRESSIVE, 1.0, 1.0, ExitMode.TREND_FOLLOW
        )
    if regime is _RANGING:
        return RegimePlan(
            s.tp_r_multiple_ranging,
            TrailMode.BALANCED,
            s.stop_atr_factor_ranging,
            1.0,
            ExitMode.DEFENSIVE_TRAIL,
        )
    if regime is _BREAKOUT:
        return RegimePlan(
            s.tp_r_multiple_default,
            TrailMode.LOOSE,
            s.stop_atr_factor_breakout,
            1.0,
            ExitMode.DEFENSIVE_TRAIL,
        )
    return RegimePlan(
        s.tp_r_multiple_default,
        TrailMode.AGGRESSIVE,
        1.0,
        s.choppy_size_factor,
        ExitMode.DEFENSIVE_TRAIL,
    )


def dynamic_min_confidence(
    regime: Regime,
    global_regime: GlobalRegime,
    portfolio: PortfolioView,
    s: OrchestratorSettings,
    mode: PolicyMode | None = None,
) -> float:
    """Regime base (TRENDING 0.20, RANGING 0.40, CHOPPY 0.60), +0.20 when the daily drawdown
    exceeds 2 %, +0.15 when the losing streak exceeds 3, +0.10 in a SIDEWAYS global regime;
    never below the policy mode's floor. `mode`: `policy_mode(portfolio, s)`, when the caller
    has it."""
    base = _regime_min_confidence(regime, s)
    if portfolio.daily_drawdown > s.drawdown_confidence_step_at:
        base += s.drawdown_confidence_add
    if portfolio.losing_streak > s.streak_confidence_after:
        base += s.streak_confidence_add
    if global_regime is _SIDEWAYS:
        base += s.sideways_confidence_add
    floor, _ = mode_floor(policy_mode(portfolio, s) if mode is None else mode, s)
    return floor if floor > base else base  # max(), by a comparison: asked per candidate


def _regime_min_confidence(regime: Regime, s: OrchestratorSettings) -> float:
    """The regime's base minimum confidence. By comparisons, not a dict of the four made at
    every call (asked per candidate)."""
    if regime is _TRENDING:
        return s.min_confidence_trending
    if regime is _RANGING:
        return s.min_confidence_ranging
    if regime is _CHOPPY:
        return s.min_confidence_choppy
    return s.min_confidence_breakout  # BREAKOUT


def global_size_factor(global_regime: GlobalRegime, settings: OrchestratorSettings) -> float:
    if global_regime is _UPTREND:
        return settings.uptrend_size_factor
    if global_regime is _SIDEWAYS:
        return settings.sideways_size_factor
    return 1.0


@record
class _Ask:
    candidate: Candidate
    portfolio: PortfolioView
    regime: Regime
    global_regime: GlobalRegime
    now: datetime
    settings: OrchestratorSettings


_Failure = tuple[ReasonCode, str, datetime | None] | None


def _symbol_blocked(a: _Ask) -> _Failure:
    stats = a.portfolio.symbol_stats.get(a.candidate.symbol)
    reason = block_reason(stats, a.now)
    if reason is None or stats is None:
        return None
    if reason is ReasonCode.SYMBOL_HELD_AFTER_FILL_OFF_PLAN and stats.held_until is not None:
        detail = (
            f"its last trade closed FILL_OFF_PLAN (entry filled at or past its own stop or "
            f"target): no entry until {stats.held_until.isoformat()} "
            "(performance.fill_off_plan_hold_s)"
        )
        return reason, detail, stats.held_until
    return reason, f"losing streak {stats.losing_streak}", stats.disabled_until


def _daily_drawdown(a: _Ask) -> _Failure:
    dd = a.portfolio.daily_drawdown
    if dd > a.settings.max_daily_drawdown:
        return ReasonCode.DAILY_DRAWDOWN_LIMIT, f"daily drawdown {dd:.4f}", None
    return None


def _open_positions(a: _Ask) -> _Failure:
    count = len(a.portfolio.positions)
    if count >= a.settings.max_open_positions:
        return ReasonCode.MAX_OPEN_POSITIONS, f"{count} open positions", None
    return None


def _symbol_win_rate(a: _Ask) -> _Failure:
    stats = a.portfolio.symbol_stats.get(a.candidate.symbol)
    if stats is None or stats.trades < a.settings.min_trades_for_win_rate:
        return None
    if stats.win_rate < a.settings.min_symbol_win_rate:
        return ReasonCode.SYMBOL_LOW_WIN_RATE, f"win rate {stats.win_rate:.3f}", None
    return None


def _choppy(a: _Ask) -> _Failure:
    conf = a.candidate.confidence
    if a.regime is _CHOPPY and conf < a.settings.choppy_min_confidence:
        return ReasonCode.CHOPPY_LOW_CONFIDENCE, f"confidence {conf:.3f}", None
    return None


def _short_in_uptrend(a: _Ask) -> _Failure:
    conf = a.candidate.confidence
    if (
        a.global_regime is _UPTREND
        and a.candidate.side is Side.SHORT
        and conf <= a.settings.uptrend_short_min_confidence
    ):
        return ReasonCode.SHORT_IN_UPTREND, f"confidence {conf:.3f}", None
    return None


def _below_dynamic(a: _Ask, minimum: float) -> _Failure:
    conf = a.candidate.confidence
    if conf < minimum:
        return ReasonCode.BELOW_DYNAMIC_CONFIDENCE, f"confidence {conf:.3f} < {minimum:.3f}", None
    return None


# The rules before the last, `_below_dynamic`, whose minimum an approval reports too.
_RULES: tuple[Callable[[_Ask], _Failure], ...] = (
    _symbol_blocked,
    _daily_drawdown,
    _open_positions,
    _symbol_win_rate,
    _choppy,
    _short_in_uptrend,
)


@record
class OrchestratorPolicy:
    """CandidateGate implementing SPEC §4.1. The candidate's regime is the market view's
    regime for its symbol when present, else the one the candidate carries."""

    settings: OrchestratorSettings

    @property
    def name(self) -> GateName:
        return _NAME

    account_inputs_priced = False  # `account_inputs` reads no price

    def account_inputs(self, portfolio: PortfolioView, market: MarketView) -> tuple[object, ...]:
        """What of the account `review` reads besides symbol statistics: the daily drawdown
        only against its thresholds (and its value once over the limit, which the denial
        reports), the losing streak and the number of open positions. Equal inputs give equal
        verdicts, so an executor cycle need not run again while only prices move."""
        s, dd = self.settings, portfolio.daily_drawdown
        over_limit = dd > s.max_daily_drawdown
        return (
            dd if over_limit else None,
            dd > s.drawdown_confidence_step_at,
            dd > s.critical_mode_drawdown,
            dd > s.defensive_mode_drawdown,
            portfolio.losing_streak,
            len(portfolio.positions),
        )

    def review(
        self, candidate: Candidate, portfolio: PortfolioView, market: MarketView, now: datetime
    ) -> Verdict:
        """Deny with the first blocking rule, or allow with the trade plan."""
        regime = market.regimes.get(candidate.symbol, candidate.regime)
        ask = _Ask(candidate, portfolio, regime, market.global_regime, now, self.settings)
        for rule in _RULES:
            failure = rule(ask)
            if failure is not None:
                return self._deny(candidate, *failure)
        mode = policy_mode(portfolio, self.settings)  # read by the minimum and the approval
        minimum = dynamic_min_confidence(regime, ask.global_regime, portfolio, self.settings, mode)
        failure = _below_dynamic(ask, minimum)
        if failure is not None:
            return self._deny(candidate, *failure)
        return self._allow(ask, minimum, mode)

    def _deny(
        self, candidate: Candidate, reason: ReasonCode, detail: str, until: datetime | None
    ) -> Verdict:
        return Verdict.deny(self.name, candidate.symbol, reason, detail, until)

    def _allow(self, a: _Ask, minimum: float, mode: PolicyMode) -> Verdict:
        """The approval, with the trade plan; `minimum`: the dynamic minimum confidence,
        `mode`: the policy mode."""
        s = self.settings
        _, mode_risk = mode_floor(mode, s)
        plan = regime_plan(a.regime, s)
        size = mode_risk * global_size_factor(a.global_regime, s) * plan.size_factor
        detail = (
            f"mode={mode} regime={a.regime} global={a.global_regime} "
            f"min_confidence={minimum:.2f} risk_multiplier={size:.3f} trail={plan.trail_mode} "
            f"stop_atr_factor={plan.stop_atr_factor}"
        )
        return Verdict.allow(
            self.name,
            a.candidate.symbol,
            detail,
            size_factor=size,
            exit_mode=plan.exit_mode,
            tp_r_multiple=plan.tp_r_multiple,
        )
