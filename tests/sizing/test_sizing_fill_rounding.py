"""The loss at the stop stays within the budget when the tick is coarse beside the price.

A market fill rounds against the taker to the tick (the paper exchange's `taker_price`, as a
book whose levels are a tick apart): the entry up to a tick worse, the stop's fill too. The
probe's TINY (DOGE × 5e-5, tick 1e-7 ≈ 0.8 % of the price, 2026-12-06): a stop 2 ticks away
lost 4, every SL_HIT at −1.37 R, 96.36 USDT against a budget of 87.64."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sizing_fakes import candidate, paper_loss_at_stop, portfolio, rules

from quantum_trader.domain import Side, SizedOrder, TradePlan, Verdict
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import MathSizer
from quantum_trader.sizing.settings import CostSettings, SizingSettings

SIZING = SizingSettings()
COSTS = CostModel(CostSettings())
TINY = rules(tick="0.0000001", step="1000", min_quantity="1000", symbol="TINY/USDT:USDT")


def sized(result: SizedOrder | Verdict) -> SizedOrder:
    assert isinstance(result, SizedOrder), result
    return result


def test_the_probes_coarse_tick_loses_no_more_than_the_budget_at_the_stop() -> None:
    # 10,000 USDT at a size factor of 0.4382: a budget of 87.64. ATR 1.04 %: a stop 1.56 %
    # below 0.0000129, 0.0000127 on the tick. The margin cap (3,000 USDT at leverage 3) sized
    # 232,558,000, 46.5 USDT to the stop: the fills at 0.0000130 and 0.0000126 lost 93 + fees.
    order = sized(
        MathSizer(SIZING, COSTS).size(
            candidate(price=Decimal("0.0000129"), atr_pct=0.0104, symbol=TINY.symbol),
            TradePlan(size_factor=0.4382),
            portfolio(Decimal(10_000)),
            TINY,
        )
    )
    assert order.stop_price == Decimal("0.0000127")
    budget = Decimal("87.64")
    assert paper_loss_at_stop(order, TINY, COSTS) <= budget
    assert paper_loss_at_stop(order, TINY, COSTS) > budget * Decimal("0.95")  # not overly shy


@pytest.mark.parametrize(
    ("side", "price"), [(Side.LONG, Decimal("100.06")), (Side.SHORT, Decimal("100.04"))]
)
def test_a_price_between_ticks_counts_the_tick_it_may_be_filled_from(
    side: Side, price: Decimal
) -> None:
    # On a 0.1 tick the paper exchange fills from the nearest tick, 100.1 for the buyer and
    # 100.0 for the seller (0.04 against either), moves it by the slippage and rounds against
    # the taker again, as it does the stop's fill; the budget (200 USDT) binds.
    wide = SIZING.model_copy(update={"max_margin_fraction": 1.0})
    coarse = rules(tick="0.1")
    order = sized(MathSizer(wide, COSTS).size(candidate(side, price), TradePlan(), portfolio(),
                                              coarse))  # fmt: skip
    assert paper_loss_at_stop(order, coarse, COSTS) <= Decimal(200)
