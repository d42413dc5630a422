"""Size multipliers (SPEC §5.2): each factor's rule, its bounds, and the composed product."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sizing_fakes import SYMBOL, candidate, portfolio, stats

from quantum_trader.domain import GlobalRegime, Position, Side, TradePlan
from quantum_trader.sizing.multipliers import (
    compose_multipliers,
    diversification_factor,
    performance_factor,
    symbol_factor,
)
from quantum_trader.sizing.settings import MultiplierSettings

S = MultiplierSettings()
OTHER = "ETH/USDT:USDT"


def position(symbol: str, side: Side) -> Position:
    price = Decimal(100)
    return Position(
        symbol=symbol,
        side=side,
        quantity=Decimal(1),
        entry_price=price,
        leverage=3,
        stop_price=price * Decimal("0.97") if side is Side.LONG else price * Decimal("1.03"),
        take_profit_price=price,
        opened_at=datetime(2025, 9, 1, tzinfo=UTC),
        entry_order_id="e1",
        initial_stop_price=price,
        initial_quantity=Decimal(1),
    )


@pytest.mark.parametrize(
    ("trades", "wins", "factor"),
    [(20, 12, 1.1), (20, 10, 1.0), (20, 8, 0.7), (20, 6, 0.5), (5, 0, 1.0)],
)
def test_symbol_win_rate_tiers(trades: int, wins: int, factor: float) -> None:
    assert symbol_factor(stats(trades, wins), S) == factor


def test_performance_factor_rewards_and_punishes() -> None:
    assert performance_factor([1.0, 2.0], S) == 1.0  # too few trades
    assert performance_factor([2.0, 1.5, 2.5, 1.8, 2.2, -1.0], S) > 1.15
    assert performance_factor([-1.0, -1.0, -0.9, -1.1, 0.5, -1.0], S) < 0.85
    assert performance_factor([2.0] * 10, S) == pytest.approx(1.3)
    assert performance_factor([-1.0] * 10, S) == pytest.approx(0.7)


def test_diversification_penalises_duplicates_not_hedges() -> None:
    long_book = portfolio(positions={OTHER: position(OTHER, Side.LONG)})
    same = diversification_factor(candidate(Side.LONG), long_book, {OTHER: 0.95}, S)
    hedge = diversification_factor(candidate(Side.SHORT), long_book, {OTHER: 0.95}, S)
    calm = diversification_factor(candidate(Side.LONG), long_book, {OTHER: 0.2}, S)
    assert S.diversification_floor <= same < 0.6
    assert hedge == 1.0
    assert calm == 1.0


def test_breakdown_lists_every_factor_for_one_log_line() -> None:
    book = portfolio(stats={SYMBOL: stats(20, 12)})
    breakdown = compose_multipliers(
        candidate(),
        TradePlan(size_factor=0.5),
        book,
        S,
        recent_r=[1.0, -1.0, 2.0, 1.5, -1.0],
        stage_factor=0.5,
        global_regime=GlobalRegime.SIDEWAYS,
    )
    names = [f.name for f in breakdown.factors]
    assert names == [
        "policy",
        "global_regime",
        "symbol",
        "performance",
        "diversification",
        "lifecycle",
    ]
    fields = breakdown.log_fields()
    assert fields["size_policy"] == 0.5
    assert fields["size_global_regime"] == 0.8
    assert fields["size_symbol"] == 1.1
    assert breakdown.apply(TradePlan()).size_factor == pytest.approx(breakdown.total)


@settings(max_examples=200, deadline=None)
@given(
    size_factor=st.floats(allow_nan=True, allow_infinity=True),
    recent=st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), max_size=30),
    rho=st.floats(min_value=-1, max_value=1),
    stage=st.floats(allow_nan=True),
    trades=st.integers(0, 50),
    wins=st.integers(0, 50),
    regime=st.one_of(st.none(), st.sampled_from(list(GlobalRegime))),
    side=st.sampled_from(list(Side)),
    other_side=st.sampled_from(list(Side)),
)
def test_every_factor_stays_in_its_bounds(
    size_factor: float,
    recent: list[float],
    rho: float,
    stage: float,
    trades: int,
    wins: int,
    regime: GlobalRegime | None,
    side: Side,
    other_side: Side,
) -> None:
    book = portfolio(
        stats={SYMBOL: stats(max(trades, wins), wins)},
        positions={OTHER: position(OTHER, other_side)},
    )
    breakdown = compose_multipliers(
        candidate(side),
        TradePlan(size_factor=size_factor),
        book,
        S,
        recent_r=recent,
        correlations={OTHER: rho},
        stage_factor=stage,
        global_regime=regime,
    )
    for factor in breakdown.factors:
        assert factor.low <= factor.value <= factor.high, factor
    assert S.total_low <= breakdown.total <= S.total_high
    assert S.performance_low <= performance_factor(recent, S) <= S.performance_high
