"""Sizing methods (SPEC §5.3) behind one protocol, and the safety properties they all keep."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sizing_fakes import SYMBOL, bracket_sets, candidate, guard_review, portfolio, rules, stats

from quantum_trader.domain import (
    GateName,
    LeverageBracket,
    ReasonCode,
    Regime,
    Side,
    SizedOrder,
    TradePlan,
    Verdict,
)
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import MathSizer, to_decimal
from quantum_trader.sizing.methods import MethodSizer, expected_shortfall, make_sizer
from quantum_trader.sizing.rl import RLSizer
from quantum_trader.sizing.settings import CostSettings, SizingMethod, SizingSettings

COSTS = CostModel(CostSettings())
# An uncapped margin so the risk budget, not the margin cap, decides the size.
WIDE = SizingSettings(max_margin_fraction=1.0)
METHODS: list[SizingMethod] = [
    "math",
    "kelly",
    "fixed_risk",
    "volatility_adjusted",
    "regime_based",
    "rl",
]


def sized(result: SizedOrder | Verdict) -> SizedOrder:
    assert isinstance(result, SizedOrder), result
    return result


def loss(method: SizingMethod, **kwargs: object) -> Decimal:
    sizer = make_sizer(WIDE.model_copy(update={"method": method}), COSTS)
    order = sized(sizer.size(candidate(**kwargs), TradePlan(), portfolio(), rules()))  # type: ignore[arg-type]
    return order.expected_loss_usdt + order.costs_usdt


@pytest.mark.parametrize("method", METHODS)
def test_make_sizer_picks_the_method(method: SizingMethod) -> None:
    sizer = make_sizer(SizingSettings(method=method), COSTS)
    expected = {"math": MathSizer, "rl": RLSizer}.get(method, MethodSizer)
    assert isinstance(sizer, expected)
    order = sized(sizer.size(candidate(), TradePlan(), portfolio(), rules()))
    assert order.method.split("|")[0] == method


def test_kelly_without_edge_does_not_trade() -> None:
    sizer = make_sizer(SizingSettings(method="kelly"), COSTS)
    book = portfolio(stats={SYMBOL: stats(20, 4)})
    result = sizer.size(candidate(), TradePlan(), book, rules())
    assert isinstance(result, Verdict)
    assert (result.gate, result.reason) == (GateName.SIZER, ReasonCode.SIZE_ZERO)


def test_kelly_scales_with_the_edge() -> None:
    sizer = make_sizer(WIDE.model_copy(update={"method": "kelly"}), COSTS)
    # W = 0.36, R = 2: f* = 0.04, half Kelly = 2 % — the base risk; W = 0.35 gives less.
    small = sized(
        sizer.size(candidate(), TradePlan(), portfolio(stats={SYMBOL: stats(100, 35)}), rules())
    )
    base = sized(
        sizer.size(candidate(), TradePlan(), portfolio(stats={SYMBOL: stats(100, 36)}), rules())
    )
    assert small.expected_loss_usdt < base.expected_loss_usdt


def test_volatility_adjusted_shrinks_in_high_volatility() -> None:
    assert loss("volatility_adjusted", atr_pct=0.04) < loss("fixed_risk", atr_pct=0.04)
    assert loss("volatility_adjusted", atr_pct=0.01) == loss("fixed_risk", atr_pct=0.01)


def test_regime_based_halves_choppy_risk() -> None:
    choppy = loss("regime_based", regime=Regime.CHOPPY)
    trending = loss("regime_based", regime=Regime.TRENDING)
    assert choppy < trending * Decimal("0.51")


def test_expected_shortfall() -> None:
    returns = np.array([-0.10, -0.02, 0.01, 0.02, 0.03] * 4, dtype=np.float64)
    assert expected_shortfall(returns, 0.95) == pytest.approx(0.10)
    assert expected_shortfall(np.abs(returns), 0.95) == 0.0


def test_cvar_uses_the_tail_when_it_is_wider_than_the_stop() -> None:
    base = MethodSizer(WIDE, COSTS, "cvar")
    calm = np.full(50, 0.001, dtype=np.float64)
    fat = np.concatenate([np.full(45, 0.001), np.full(5, -0.09)])
    same = sized(
        base.with_returns({SYMBOL: calm}).size(candidate(), TradePlan(), portfolio(), rules())
    )
    tail = sized(
        base.with_returns({SYMBOL: fat}).size(candidate(), TradePlan(), portfolio(), rules())
    )
    fixed = sized(
        MethodSizer(WIDE, COSTS, "fixed_risk").size(candidate(), TradePlan(), portfolio(), rules())
    )
    assert same.quantity == fixed.quantity
    # notional ≤ budget ÷ CVaR = 200 ÷ 0.09
    assert tail.notional_usdt <= Decimal(200) / Decimal("0.09")
    assert tail.quantity < same.quantity


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    side=st.sampled_from(list(Side)),
    ticks=st.integers(min_value=100, max_value=5_000_000),
    atr_pct=st.floats(min_value=0.0, max_value=0.2),
    regime=st.sampled_from(list(Regime)),
    equity=st.integers(min_value=50, max_value=2_000_000),
    wins=st.integers(0, 30),
    losses=st.integers(0, 30),
    size_factor=st.floats(min_value=0.05, max_value=2.0),
    margin_fraction=st.floats(min_value=0.01, max_value=1.0),
    brackets=st.one_of(st.just(()), bracket_sets()),
)
def test_every_method_keeps_the_caps(
    method: SizingMethod,
    side: Side,
    ticks: int,
    atr_pct: float,
    regime: Regime,
    equity: int,
    wins: int,
    losses: int,
    size_factor: float,
    margin_fraction: float,
    brackets: tuple[LeverageBracket, ...],
) -> None:
    config = SizingSettings(method=method, max_margin_fraction=margin_fraction)
    returns = {SYMBOL: np.linspace(-0.05, 0.05, 40)}
    sizer = make_sizer(config, COSTS)
    if isinstance(sizer, MethodSizer):
        sizer = sizer.with_returns(returns)
    book = portfolio(Decimal(equity), stats={SYMBOL: stats(wins + losses, wins)})
    cand = candidate(side, Decimal("0.01") * ticks, atr_pct, regime)
    market = replace(rules(), leverage_brackets=brackets)
    result = sizer.size(cand, TradePlan(size_factor=size_factor), book, market)
    if isinstance(result, Verdict):
        assert result.gate is GateName.SIZER
        return
    cap = to_decimal(config.max_risk_fraction) * Decimal(equity)
    assert result.expected_loss_usdt + result.costs_usdt <= cap + Decimal("0.00000002")
    assert result.margin_usdt <= to_decimal(margin_fraction) * Decimal(equity)
    assert 1 <= result.leverage <= config.max_leverage
    assert guard_review(result, market, book).reason is not ReasonCode.LEVERAGE_TOO_HIGH
    assert (result.entry_price - result.stop_price) * side.sign > 0
    assert (result.take_profit_price - result.entry_price) * side.sign > 0
