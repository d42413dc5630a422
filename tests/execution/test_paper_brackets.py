"""The paper exchange holds a position to its leverage brackets as Binance does: a market order
whose position, priced as Binance prices a long (1.0005 × the price), lands in a bracket that
allows less than the symbol's leverage is refused, -2027 "Exceeded the maximum allowable
position at current leverage." Was: no bracket checked, so backtests and paper runs filled
orders live trading would not get (an outside probe, 2026-12-06)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from paper_builders import BTC, COSTS, at, flat_rows, make_bars, market, rules_for

from quantum_trader.clock import ManualClock
from quantum_trader.domain import LeverageBracket, OrderSide, ReasonCode
from quantum_trader.errors import OrderRejected
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.record import replace

BUY, SELL = OrderSide.BUY, OrderSide.SELL
# 10x up to 250,000 USDT, 5x up to 1,000,000.
BRACKETS = (
    LeverageBracket(10, Decimal(0), Decimal(250_000)),
    LeverageBracket(5, Decimal(250_000), Decimal(1_000_000)),
)


async def paper_at(leverage: int) -> PaperExchange:
    """BTC flat at 100 USDT, 10 M USDT, the symbol's leverage set."""
    rules = replace(rules_for(BTC), leverage_brackets=BRACKETS)
    paper = PaperExchange(
        rules={BTC: rules},
        costs=COSTS,
        clock=ManualClock(at(1)),
        initial_balance_usdt=Decimal(10_000_000),
        bars={BTC: make_bars(BTC, flat_rows(100.0, 30))},
        funding={},
    )
    await paper.set_leverage(BTC, leverage)
    return paper


async def test_a_long_beyond_its_leverages_bracket_is_refused_with_2027() -> None:
    paper = await paper_at(10)
    with pytest.raises(OrderRejected, match="-2027") as refused:
        await paper.place_order(market("e1", BUY, "2499.9"))  # 249,990 × 1.0005 ≥ 250,000
    assert refused.value.reason is ReasonCode.LEVERAGE_TOO_HIGH
    await paper.place_order(market("e2", BUY, "2400"))
    with pytest.raises(OrderRejected, match="-2027"):
        await paper.place_order(market("e3", BUY, "100"))  # the position it leaves counts


async def test_a_lower_leverage_takes_the_larger_position_and_a_close_is_never_refused() -> None:
    paper = await paper_at(5)
    await paper.place_order(market("e1", BUY, "2499.9"))
    with pytest.raises(OrderRejected, match="-2027"):
        await paper.place_order(market("e2", BUY, "8000"))  # beyond the last cap
    await paper.place_order(market("x1", SELL, "2499.9", reduce_only=True))
    assert await paper.fetch_positions() == []
