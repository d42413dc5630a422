"""The market-order maximum (Binance's MARKET_LOT_SIZE maxQty): every sizing method caps an
entry there, rounded down to the market step, and the order records the cap."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from sizing_fakes import candidate, portfolio, rules

from quantum_trader.domain import LotSize, MarketRules, SizedOrder, TradePlan, Verdict
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import MathSizer
from quantum_trader.sizing.methods import make_sizer
from quantum_trader.sizing.settings import CostSettings, SizingSettings

SIZING = SizingSettings()
COSTS = CostModel(CostSettings())


def sized(result: SizedOrder | Verdict) -> SizedOrder:
    assert isinstance(result, SizedOrder), result
    return result


def with_market_max(maximum: str, step: str = "0.01") -> MarketRules:
    return replace(rules(), market_lot=LotSize(Decimal("0.001"), Decimal(step), Decimal(maximum)))


def test_an_entry_above_the_market_maximum_is_capped_there_and_says_so() -> None:
    # The worked example sizes 30 units (3000 USDT at 100); the market takes at most 12.345,
    # 12.34 on its 0.01 step.
    order = sized(MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(),
                                                with_market_max("12.345")))  # fmt: skip
    assert order.quantity == Decimal("12.34")
    assert order.market_max_quantity == Decimal("12.345")
    assert order.notional_usdt == Decimal("1234.00")
    assert order.expected_loss_usdt == Decimal("37.0200")  # 3 a unit to the stop at 97
    assert order.margin_usdt == order.notional_usdt / order.leverage


def test_a_market_maximum_that_does_not_bind_changes_nothing() -> None:
    plain = sized(MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(), rules()))
    roomy = MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(),
                                          with_market_max("30"))  # fmt: skip
    assert plain.market_max_quantity is None
    assert roomy == plain  # 30 units: at the maximum, not above it


def test_rules_without_market_lot_size_cap_at_the_lot_size_maximum() -> None:
    lot_only = replace(rules(), max_quantity=Decimal("7.5"))
    order = sized(MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(), lot_only))
    assert (order.quantity, order.market_max_quantity) == (Decimal("7.500"), Decimal("7.5"))


@pytest.mark.parametrize(
    "method", ["math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "cvar", "rl"]
)
def test_every_method_caps_at_the_market_maximum(method: str) -> None:
    settings = SIZING.model_copy(update={"method": method})
    sizer = make_sizer(settings, COSTS)
    order = sized(sizer.size(candidate(), TradePlan(), portfolio(), with_market_max("2.005")))
    assert order.quantity == Decimal("2.00")
    assert order.market_max_quantity == Decimal("2.005")
