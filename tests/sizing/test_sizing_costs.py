"""Cost model (SPEC §5.5): slippage anchors and growth, funding, costs at exits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.domain import Side
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

COSTS = CostModel(CostSettings())
BP = 1e-4


@pytest.mark.parametrize(
    ("notional", "atr_pct", "bps"),
    [
        (1_000.0, 0.01, 2.0),  # small, calm
        (10_000.0, 0.0, 2.0),  # small-order boundary
        (30_000.0, 0.0, 3.5),  # halfway between small and large
        (50_000.0, 0.0, 5.0),  # large
        (200_000.0, 0.0, 10.0),  # √4 × 5 bps
        (1_000.0, 0.03, 4.0),  # high volatility +2 bps
        (50_000.0, 0.03, 7.0),
    ],
)
def test_slippage_anchors(notional: float, atr_pct: float, bps: float) -> None:
    assert COSTS.slippage_rate(notional, atr_pct) == pytest.approx(bps * BP)


@given(a=st.floats(0, 1e9), b=st.floats(0, 1e9), v=st.floats(0, 0.5), w=st.floats(0, 0.5))
def test_slippage_never_falls_with_size_or_volatility(
    a: float, b: float, v: float, w: float
) -> None:
    small, large = sorted((a, b))
    calm, wild = sorted((v, w))
    assert COSTS.slippage_rate(small, calm) <= COSTS.slippage_rate(large, calm)
    assert COSTS.slippage_rate(small, calm) <= COSTS.slippage_rate(small, wild)


def test_fees_and_funding() -> None:
    assert COSTS.fee_rate(is_maker=True) == 0.0002
    assert COSTS.fee_rate(is_maker=False) == 0.0004
    assert COSTS.funding_usdt(10_000, 0.0001, Side.LONG, 16) == pytest.approx(2.0)
    assert COSTS.funding_usdt(10_000, 0.0001, Side.SHORT, 16) == pytest.approx(-2.0)


def test_round_trip_at_matches_round_trip_at_the_same_price() -> None:
    same = COSTS.round_trip_at(2.0, 100.0, 100.0, 0.01, Side.LONG, 0.0001)
    plain = COSTS.round_trip(200.0, 0.01, Side.LONG, 0.0001)
    assert same.total_usdt == pytest.approx(plain.total_usdt)


def test_net_outcome_subtracts_costs_from_both_exits() -> None:
    net = COSTS.net_outcome(30.0, 100.0, 97.0, 106.0, 0.01, Side.LONG)
    # in 3000, out 3180 at TP / 2910 at SL; taker 4 bps + slippage 2 bps on both legs.
    assert net.profit_at_tp_usdt == pytest.approx(180 - 6180 * 6 * BP)
    assert net.loss_at_sl_usdt == pytest.approx(90 + 5910 * 6 * BP)
    assert net.cost_pct == pytest.approx(5910 * 6 * BP / 3000)
    assert net.reward_risk < 2.0
    short = COSTS.net_outcome(30.0, 100.0, 103.0, 94.0, 0.01, Side.SHORT)
    assert short.profit_at_tp_usdt == pytest.approx(180 - 5820 * 6 * BP)
