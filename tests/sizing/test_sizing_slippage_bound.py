"""The sizer bounds an entry by the market's depth as the cost model sees it: the expected
slippage of the entry stays within `max_slippage_stop_share` of the stop distance, so a fill
moved by its own market impact lands between the stop and the target (never past the target,
which the position would then book as a TP_HIT loss at once)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sizing_fakes import candidate, portfolio, rules

from quantum_trader.domain import ReasonCode, Side, SizedOrder, TradePlan, Verdict
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import MathSizer
from quantum_trader.sizing.methods import make_sizer
from quantum_trader.sizing.settings import CostSettings, SizingSettings

SIZING = SizingSettings()
COSTS = CostModel(CostSettings())
HUGE = portfolio(Decimal(1_000_000_000))  # the probe's 1e9 USDT paper account


def sized(result: SizedOrder | Verdict) -> SizedOrder:
    assert isinstance(result, SizedOrder), result
    return result


def expected_fill(order: SizedOrder, costs: CostModel = COSTS) -> Decimal:
    """Where the paper exchange fills this market entry: moved against the taker by the cost
    model's slippage at the order's notional (execution/paper_ledger.taker_price)."""
    rate = costs.slippage_rate(float(order.notional_usdt), order.atr_pct)
    return order.entry_price * (1 + Decimal(repr(rate)) * order.side.sign)


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_a_huge_account_sizes_no_entry_whose_slippage_passes_the_target(side: Side) -> None:
    # ATR 0.5 %: stop 0.75 % (99.25 long), target 2 R (101.50). Uncapped, the margin cap
    # allows 3e8 USDT: √(3e8 ÷ 5e4) × 5 bps ≈ 3.9 % of impact, a fill at ≈ 103.9, past the target.
    sizer = MathSizer(SIZING, COSTS)
    order = sized(sizer.size(candidate(side=side, atr_pct=0.005), TradePlan(), HUGE, rules()))
    distance = (order.entry_price - order.stop_price) * order.side.sign
    slip = (expected_fill(order) - order.entry_price) * order.side.sign
    assert slip <= distance * Decimal(repr(SIZING.max_slippage_stop_share))
    assert (order.take_profit_price - expected_fill(order)) * order.side.sign > 0
    assert order.slippage_max_quantity is not None
    assert order.quantity <= order.slippage_max_quantity


def test_the_bound_does_not_bind_at_a_normal_balance() -> None:
    order = sized(
        MathSizer(SIZING, COSTS).size(candidate(atr_pct=0.005), TradePlan(), portfolio(), rules())
    )
    assert order.slippage_max_quantity is None


def test_an_entry_whose_smallest_size_slips_too_far_is_refused_and_says_why() -> None:
    # 30 bps of slippage at any size against a 0.2 % stop: a quarter of it is 5 bps.
    costs = CostModel(CostSettings(slippage_small=0.003, slippage_large=0.003))
    verdict = MathSizer(SIZING, costs).size(
        candidate(atr_pct=0.001), TradePlan(), portfolio(), rules()
    )
    assert isinstance(verdict, Verdict)
    assert not verdict.approved
    assert verdict.reason is ReasonCode.SIZE_ZERO
    assert "slippage" in verdict.detail


@pytest.mark.parametrize(
    "method", ["math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "cvar", "rl"]
)
def test_every_method_bounds_the_slippage(method: str) -> None:
    sizer = make_sizer(SIZING.model_copy(update={"method": method}), COSTS)
    order = sized(sizer.size(candidate(atr_pct=0.005), TradePlan(), HUGE, rules()))
    assert (order.take_profit_price - expected_fill(order)) * order.side.sign > 0


@pytest.mark.parametrize(("max_rate", "notional"), [(0.0003, 23_333.33), (0.001, 200_000.0)])
def test_the_depth_is_the_inverse_of_the_slippage_rate(max_rate: float, notional: float) -> None:
    # 2 bps to 10 k, linear to 5 bps at 50 k, then 5 bps × √(notional ÷ 50 k).
    depth = COSTS.notional_within_slippage(max_rate, atr_pct=0.01)
    assert depth == pytest.approx(notional, rel=1e-6)
    assert COSTS.slippage_rate(depth, 0.01) == pytest.approx(max_rate)
    assert COSTS.notional_within_slippage(0.0001, atr_pct=0.01) == 0.0  # below 2 bps: none
