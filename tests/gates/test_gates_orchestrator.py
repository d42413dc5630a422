"""Orchestrator policy (SPEC §4.1): each rule just inside and just outside its threshold."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from gate_builders import NOW, candidate, market, portfolio, position
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.domain import (
    ExitMode,
    GlobalRegime,
    MarketView,
    PortfolioView,
    ReasonCode,
    Regime,
    Side,
    SymbolStats,
    Verdict,
)
from quantum_trader.gates.chain import ApprovalChain
from quantum_trader.gates.orchestrator import (
    OrchestratorPolicy,
    PolicyMode,
    dynamic_min_confidence,
    policy_mode,
    regime_plan,
)
from quantum_trader.gates.settings import OrchestratorSettings

POLICY = OrchestratorPolicy(OrchestratorSettings())
ETH = "ETH/USDT:USDT"
CALM = OrchestratorSettings(
    defensive_mode_drawdown=0.5,
    critical_mode_drawdown=0.5,
    defensive_mode_losing_streak=99,
    critical_mode_losing_streak=99,
)


def review(
    confidence: float = 0.7,
    *,
    side: Side = Side.LONG,
    regime: Regime = Regime.TRENDING,
    account: PortfolioView | None = None,
    view: MarketView | None = None,
    global_regime: GlobalRegime = GlobalRegime.DOWNTREND,
) -> Verdict:
    view = view or market(global_regime=global_regime)
    return POLICY.review(
        candidate(ETH, side, confidence, regime), account or portfolio(), view, NOW
    )


def with_stats(**fields: object) -> PortfolioView:
    return portfolio(stats={ETH: SymbolStats(ETH, **fields)})  # type: ignore[arg-type]


def test_a_confident_trend_trade_is_allowed_with_its_plan() -> None:
    verdict = review(0.7, global_regime=GlobalRegime.UPTREND)
    assert verdict.approved
    assert verdict.size_factor == pytest.approx(1.10)
    assert verdict.exit_mode is ExitMode.TREND_FOLLOW
    assert verdict.tp_r_multiple == 2.5


def test_blacklisted_and_disabled_symbols_are_blocked() -> None:
    assert review(account=with_stats(blacklisted=True)).reason is ReasonCode.SYMBOL_BLACKLISTED
    until = NOW + timedelta(hours=1)
    disabled = review(account=with_stats(disabled_until=until))
    assert disabled.reason is ReasonCode.SYMBOL_DISABLED
    assert disabled.until == until
    assert review(account=with_stats(disabled_until=NOW)).approved


def test_a_symbol_held_after_a_fill_off_plan_close_is_blocked_until_the_hold_ends() -> None:
    until = NOW + timedelta(minutes=30)
    held = review(account=with_stats(held_until=until))
    assert held.reason is ReasonCode.SYMBOL_HELD_AFTER_FILL_OFF_PLAN
    assert held.until == until
    assert "FILL_OFF_PLAN" in held.detail
    assert until.isoformat() in held.detail
    assert review(account=with_stats(held_until=NOW)).approved


def test_daily_drawdown_limit() -> None:
    at_limit = review(0.95, account=portfolio(equity="9700", day_start="10000"))
    assert at_limit.approved
    over = review(0.95, account=portfolio(equity="9699.99", day_start="10000"))
    assert over.reason is ReasonCode.DAILY_DRAWDOWN_LIMIT


def test_open_positions_limit() -> None:
    def held(n: int) -> PortfolioView:
        return portfolio(positions=[position(f"S{i}/USDT:USDT") for i in range(n)])

    assert review(account=held(7)).approved
    assert review(account=held(8)).reason is ReasonCode.MAX_OPEN_POSITIONS


def test_symbol_win_rate_only_with_enough_trades() -> None:
    assert review(account=with_stats(trades=9, wins=0, losses=9)).approved
    low = review(account=with_stats(trades=10, wins=3, losses=7))
    assert low.reason is ReasonCode.SYMBOL_LOW_WIN_RATE
    assert review(account=with_stats(trades=20, wins=7, losses=13)).approved


def test_choppy_needs_confidence() -> None:
    denied = review(0.59, regime=Regime.CHOPPY)
    assert denied.reason is ReasonCode.CHOPPY_LOW_CONFIDENCE
    allowed = review(0.60, regime=Regime.CHOPPY)
    assert allowed.approved
    assert allowed.size_factor == pytest.approx(0.5)


def test_shorts_in_an_uptrend_need_high_confidence() -> None:
    up = GlobalRegime.UPTREND
    assert review(0.80, side=Side.SHORT, global_regime=up).reason is ReasonCode.SHORT_IN_UPTREND
    assert review(0.81, side=Side.SHORT, global_regime=up).approved
    assert review(0.30, side=Side.LONG, global_regime=up).approved
    assert review(0.30, side=Side.SHORT, global_regime=GlobalRegime.DOWNTREND).approved


def test_dynamic_minimum_by_regime() -> None:
    ranging = Regime.RANGING
    assert review(0.39, regime=ranging).reason is ReasonCode.BELOW_DYNAMIC_CONFIDENCE
    assert review(0.40, regime=ranging).approved
    assert review(0.19).reason is ReasonCode.BELOW_DYNAMIC_CONFIDENCE
    assert review(0.20).approved


def test_sideways_adds_to_the_minimum_and_shrinks_size() -> None:
    side = GlobalRegime.SIDEWAYS
    assert review(0.49, regime=Regime.RANGING, global_regime=side).reason is (
        ReasonCode.BELOW_DYNAMIC_CONFIDENCE
    )
    allowed = review(0.50, regime=Regime.RANGING, global_regime=side)
    assert allowed.approved
    assert allowed.size_factor == pytest.approx(0.8)
    assert allowed.tp_r_multiple == 1.5
    assert allowed.exit_mode is ExitMode.DEFENSIVE_TRAIL


def test_drawdown_and_streak_raise_the_minimum() -> None:
    down = GlobalRegime.DOWNTREND

    def minimum(**account: object) -> float:
        view = portfolio(**account)  # type: ignore[arg-type]
        return dynamic_min_confidence(Regime.TRENDING, down, view, CALM)

    assert minimum(equity="9800", day_start="10000") == pytest.approx(0.20)
    assert minimum(equity="9799", day_start="10000") == pytest.approx(0.40)
    assert minimum(losing_streak=3) == pytest.approx(0.20)
    assert minimum(losing_streak=4) == pytest.approx(0.35)


def test_policy_modes_follow_drawdown_and_streak() -> None:
    s = OrchestratorSettings()
    assert policy_mode(portfolio(losing_streak=3), s) is PolicyMode.NORMAL
    assert policy_mode(portfolio(losing_streak=4), s) is PolicyMode.DEFENSIVE
    assert policy_mode(portfolio(losing_streak=5), s) is PolicyMode.CRITICAL
    assert policy_mode(portfolio(equity="9800", day_start="10000"), s) is PolicyMode.NORMAL
    assert policy_mode(portfolio(equity="9799", day_start="10000"), s) is PolicyMode.DEFENSIVE
    assert policy_mode(portfolio(equity="9750", day_start="10000"), s) is PolicyMode.DEFENSIVE
    assert policy_mode(portfolio(equity="9749", day_start="10000"), s) is PolicyMode.CRITICAL


def test_policy_mode_floors_and_risk_multipliers() -> None:
    defensive = portfolio(losing_streak=4)
    assert review(0.44, account=defensive).reason is ReasonCode.BELOW_DYNAMIC_CONFIDENCE
    allowed = review(0.45, account=defensive)
    assert allowed.size_factor == pytest.approx(0.5)
    critical = portfolio(losing_streak=5)
    assert review(0.69, account=critical).reason is ReasonCode.BELOW_DYNAMIC_CONFIDENCE
    assert review(0.70, account=critical).size_factor == pytest.approx(0.25)


def test_regime_plans() -> None:
    s = OrchestratorSettings()
    assert regime_plan(Regime.RANGING, s).stop_atr_factor > 1.0
    breakout = regime_plan(Regime.BREAKOUT, s)
    assert breakout.size_factor == 1.0
    assert breakout.stop_atr_factor > 1.0
    assert regime_plan(Regime.CHOPPY, s).size_factor == 0.5


def test_the_market_view_regime_wins_over_the_candidates() -> None:
    view = market(regimes={ETH: Regime.CHOPPY}, global_regime=GlobalRegime.DOWNTREND)
    assert review(0.5, regime=Regime.TRENDING, view=view).reason is (
        ReasonCode.CHOPPY_LOW_CONFIDENCE
    )


def test_the_chain_carries_the_plan() -> None:
    chain = ApprovalChain([POLICY], [])
    view = market(global_regime=GlobalRegime.SIDEWAYS)
    result = chain.approve([candidate(ETH, confidence=0.7)], portfolio(), view, NOW)
    plan = result.approved[0].plan
    assert plan.size_factor == pytest.approx(0.8)
    assert plan.exit_mode is ExitMode.TREND_FOLLOW
    assert plan.tp_r_multiple == 2.5


# In cents, around the thresholds at 2 % and 3 % below the day's start of 10,000.
equities_cents = st.lists(st.integers(960_000, 1_020_000), min_size=3, max_size=3, unique=True)


@given(equities_cents, st.integers(0, 6))
def test_the_equities_with_the_same_account_declaration_form_an_interval(
    cents: list[int], streak: int
) -> None:
    """Groundwork for checking a backtest's quiet stretch once (the band design,
    docs/BENCHMARKS.md): the orchestrator's declaration (`account_inputs`: the daily drawdown
    against its thresholds) is the same at every equity between two equities where it is the
    same, so a price move within them cannot change the cycle's verdicts through it."""
    low, middle, high = sorted(cents)

    def declared(equity_cents: int) -> tuple[object, ...]:
        equity = str(Decimal(equity_cents) / 100)
        account = portfolio(equity=equity, day_start="10000", losing_streak=streak)
        return POLICY.account_inputs(account, market())

    if declared(low) == declared(high):
        assert declared(middle) == declared(low)
