"""An entry is a market order: the sizer sizes it to Binance's MARKET_LOT_SIZE step and minimum
(on LOT_SIZE's too), and a refusal names the limit that bound it and the filter it comes from.

The probe's rules (2026-12-06): SOL with LOT_SIZE step 0.01 and MARKET_LOT_SIZE step 1 (the
entries were sized to 0.01 and refused `quantity 258.38 is not a multiple of market order step
1` every 5 minutes); ETH with a market minimum of 0.5 (a small account's 0.126 refused)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from sizing_fakes import T0, candidate, flat_bars, portfolio, rules

from quantum_trader.clock import ManualClock
from quantum_trader.domain import (
    LotSize,
    MarketRules,
    OrderKind,
    OrderRequest,
    OrderSide,
    ReasonCode,
    SizedOrder,
    TradePlan,
    Verdict,
)
from quantum_trader.domain.market import common_step
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import MathSizer
from quantum_trader.sizing.methods import make_sizer
from quantum_trader.sizing.settings import CostSettings, SizingSettings

SIZING = SizingSettings()
COSTS = CostModel(CostSettings())
WIDE = SIZING.model_copy(update={"max_margin_fraction": 1.0})  # the budget binds, not margin
D = Decimal


def with_market_lot(
    market_minimum: str,
    market_step: str,
    market_maximum: str | None = None,
    *,
    step: str = "0.001",
    min_quantity: str = "0.001",
    min_notional: str = "5",
) -> MarketRules:
    """The sizing tests' rules (LOT_SIZE `step` and `min_quantity`) with a MARKET_LOT_SIZE."""
    maximum = None if market_maximum is None else D(market_maximum)
    market = LotSize(D(market_minimum), D(market_step), maximum)
    lot_size = rules(step=step, min_quantity=min_quantity, min_notional=min_notional)
    return replace(lot_size, market_lot=market)


SOL = with_market_lot("1", "1", "1000", step="0.01", min_quantity="0.01")
ETH = with_market_lot("0.5", "0.001", "100")


def sized(result: SizedOrder | Verdict) -> SizedOrder:
    assert isinstance(result, SizedOrder), result
    return result


def refused(result: SizedOrder | Verdict) -> Verdict:
    assert isinstance(result, Verdict), result
    assert not result.approved
    return result


def test_an_entry_is_sized_to_the_market_order_step() -> None:
    # 200 USDT budget over ≈ 3.13 a unit: 63.87 units on LOT_SIZE's 0.01, 63 on the market's 1.
    order = sized(MathSizer(WIDE, COSTS).size(candidate(), TradePlan(), portfolio(), SOL))
    assert order.quantity == D(63)
    assert order.quantity % SOL.step_size == 0


@pytest.mark.parametrize(
    "method", ["math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "cvar", "rl"]
)
def test_every_method_sizes_to_the_market_order_step(method: str) -> None:
    sizer = make_sizer(WIDE.model_copy(update={"method": method}), COSTS)
    order = sized(sizer.size(candidate(), TradePlan(), portfolio(), SOL))
    assert order.quantity % 1 == 0


def test_an_entry_below_the_market_minimum_is_refused_naming_the_filter() -> None:
    # 2 % of 20 USDT at about 3 a unit: 0.13 units, above LOT_SIZE's minimum 0.001, below the
    # market order minimum 0.5 (the probe's ETH on a 2,000 USDT account: 0.126).
    verdict = refused(
        MathSizer(WIDE, COSTS).size(
            candidate(), TradePlan(), portfolio(D(20)), with_market_lot("0.5", "0.001")
        )
    )
    assert verdict.reason is ReasonCode.BELOW_MIN_QUANTITY
    assert "below the market order minimum 0.5 (MARKET_LOT_SIZE)" in verdict.detail
    assert "the risk budget 0.40 USDT" in verdict.detail


def test_a_market_maximum_below_one_step_is_refused_naming_the_maximum() -> None:
    # The probe's `mmaxltmin`: MARKET_LOT_SIZE maxQty 0.0005 below its step and minimum 0.001.
    tiny = with_market_lot("0.001", "0.001", "0.0005")
    verdict = refused(MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(), tiny))
    assert verdict.reason is ReasonCode.SIZE_ZERO
    assert "rounds to zero on the market order step 0.001 (MARKET_LOT_SIZE)" in verdict.detail
    assert "the market order maximum 0.0005 (MARKET_LOT_SIZE)" in verdict.detail


def test_a_notional_below_the_minimum_says_the_quantity_was_capped_at_the_market_maximum() -> None:
    # The probe's XRP: capped at MARKET_LOT_SIZE maxQty 0.5, 50 USDT against a minimum of 100.
    capped = with_market_lot("0.001", "0.001", "0.5", min_notional="100")
    verdict = refused(MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(), capped))
    assert verdict.reason is ReasonCode.BELOW_MIN_NOTIONAL
    assert verdict.detail == (
        "notional 50.00 < minimum 100 (MIN_NOTIONAL): quantity 0.5 set by the market order "
        "maximum 0.5 (MARKET_LOT_SIZE)"
    )


def test_a_lot_size_step_coarser_than_the_market_step_still_binds() -> None:
    # Both filters checked (the paper exchange does): 0.05 and 0.02 meet on 0.1.
    both = with_market_lot("0.02", "0.02", step="0.05", min_quantity="0.05")
    order = sized(MathSizer(WIDE, COSTS).size(candidate(), TradePlan(), portfolio(), both))
    assert order.quantity % D("0.1") == 0
    assert common_step(D("0.05"), D("0.02")) == D("0.1")
    assert common_step(D("0.01"), D("1")) == D("1")


async def test_the_sized_entry_fills_on_the_paper_exchange() -> None:
    symbol = SOL.symbol
    paper = PaperExchange(
        rules={symbol: SOL},
        costs=COSTS,
        clock=ManualClock(T0),
        initial_balance_usdt=D(10_000),
        bars={symbol: flat_bars(D(100))},
        funding={},
    )
    order = sized(MathSizer(WIDE, COSTS).size(candidate(), TradePlan(), portfolio(), SOL))
    await paper.set_leverage(symbol, order.leverage)
    request = OrderRequest("e1", symbol, OrderSide.BUY, OrderKind.MARKET, order.quantity)
    filled = await paper.place_order(request)
    assert filled.filled_quantity == order.quantity


@pytest.mark.parametrize(
    ("quantity", "fitted"),
    [("8", "10"), ("10", "10"), ("10.5", "11"), ("24", "24"), ("0.3", "10"), ("11.01", "12")],
)
def test_rounding_up_to_fit_gives_the_smallest_quantity_on_the_step_at_least_the_minimum(
    quantity: str, fitted: str
) -> None:
    # A whole position's close below the minimum or off the step (keeper/carry_actions.py):
    # reduce-only, so the exchange executes what is held of it.
    lot = LotSize(D(10), D(1))
    assert lot.round_up_to_fit(D(quantity)) == D(fitted)
