"""The math sizer (SPEC §5.1): the worked example, leverage, regimes, denials and properties."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sizing_fakes import (
    bracket_sets,
    candidate,
    guard_review,
    paper_loss_at_stop,
    portfolio,
    rules,
    stats,
)

from quantum_trader.domain import (
    GateName,
    LotSize,
    MarketRules,
    ReasonCode,
    Regime,
    Side,
    SizedOrder,
    SymbolStats,
    TradePlan,
    Verdict,
)
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import (
    MathSizer,
    choose_leverage,
    plan_risk,
    plan_stops,
    to_decimal,
)
from quantum_trader.sizing.settings import CostSettings, SizingSettings

SIZING = SizingSettings()
COSTS = CostModel(CostSettings())
FREE = CostModel(
    CostSettings(
        maker_fee=0, taker_fee=0, slippage_small=0, slippage_large=0, slippage_high_volatility_add=0
    )
)


def sized(result: SizedOrder | Verdict) -> SizedOrder:
    assert isinstance(result, SizedOrder), result
    return result


def test_worked_example_arithmetic() -> None:
    stops = plan_stops(0.02, Regime.CHOPPY, None, SIZING)
    assert stops.sl_pct == pytest.approx(0.03)
    assert stops.tp_pct == pytest.approx(0.06)
    risk = plan_risk(Decimal(10_000), Decimal(10_000), stops.sl_pct, 3, 1.0, SIZING)
    assert risk.budget_usdt == Decimal(200)
    assert round(risk.uncapped_notional_usdt) == 6667
    assert risk.margin_cap_usdt == Decimal(1000)
    assert risk.notional_usdt == Decimal(3000)
    assert risk.margin_usdt == Decimal(1000)


@pytest.mark.parametrize("model", [FREE, COSTS], ids=["no_costs", "default_costs"])
def test_worked_example_order(model: CostModel) -> None:
    order = sized(MathSizer(SIZING, model).size(candidate(), TradePlan(), portfolio(), rules()))
    assert order.leverage == 3
    assert order.notional_usdt == Decimal(3000)
    assert order.margin_usdt == Decimal(1000)
    assert order.stop_price == Decimal("97.00")
    assert order.take_profit_price == Decimal("106.00")
    assert order.expected_loss_usdt == Decimal(90)
    assert order.expected_profit_usdt == Decimal(180)
    assert order.reward_risk == pytest.approx(2.0)


def test_costs_are_reported_and_fit_in_the_budget() -> None:
    order = sized(MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(), rules()))
    # 5910 traded (3000 in, 2910 out at the stop): taker 4 bps + slippage 2 bps (small order)
    # + ⅔ bps (ATR 2 % is a third of the way from normal 1.5 % to high 3 %), no funding.
    assert order.costs_usdt == Decimal("3.94")


def test_uncapped_loss_at_stop_plus_costs_is_the_budget() -> None:
    wide = SIZING.model_copy(update={"max_margin_fraction": 1.0})
    # Besides the costs, each fill may round a tick (0.01) against the trade: 0.02 a unit.
    order = sized(MathSizer(wide, COSTS).size(candidate(), TradePlan(), portfolio(), rules()))
    total = order.expected_loss_usdt + order.costs_usdt + order.quantity * Decimal("0.02")
    assert Decimal(199) < total <= Decimal(200)
    free_order = sized(MathSizer(wide, FREE).size(candidate(), TradePlan(), portfolio(), rules()))
    free_total = free_order.expected_loss_usdt + free_order.quantity * Decimal("0.02")
    assert Decimal("199.99") < free_total <= Decimal(200)


@pytest.mark.parametrize(
    ("regime", "r"),
    [(Regime.TRENDING, 2.5), (Regime.RANGING, 1.5), (Regime.CHOPPY, 2.0), (Regime.BREAKOUT, 2.0)],
)
def test_take_profit_r_follows_the_regime(regime: Regime, r: float) -> None:
    assert plan_stops(0.02, regime, None, SIZING).r_multiple == r
    assert plan_stops(0.02, regime, 3.0, SIZING).r_multiple == 3.0


def test_stop_distance_is_clamped() -> None:
    assert plan_stops(0.0, Regime.CHOPPY, None, SIZING).sl_pct == SIZING.min_stop_pct
    assert plan_stops(0.5, Regime.CHOPPY, None, SIZING).sl_pct == SIZING.max_stop_pct


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, 3),
        (stats(5, 5), 3),  # too few trades for a Kelly estimate
        (stats(20, 4), 1),  # no edge: W=0.2, R=2 → f* < 0
        (stats(20, 12), 2),  # f* = 0.6 − 0.4/2 = 0.4; half Kelly × 10 = 2
        (stats(20, 20), 5),  # f* = 1; half Kelly × 10 = 5
    ],
)
def test_leverage_from_kelly(record: SymbolStats | None, expected: int) -> None:
    assert choose_leverage(record, 2.0, SIZING) == expected


def test_leverage_never_exceeds_the_market_maximum() -> None:
    book = {"BTC/USDT:USDT": stats(20, 20)}
    order = sized(
        MathSizer(SIZING, COSTS).size(
            candidate(), TradePlan(), portfolio(stats=book), rules(max_leverage=2)
        )
    )
    assert order.leverage == 2


def test_size_factor_scales_the_budget_up_to_the_cap() -> None:
    half = plan_risk(Decimal(10_000), Decimal(10_000), 0.03, 3, 0.5, SIZING)
    more = plan_risk(Decimal(10_000), Decimal(10_000), 0.03, 3, 1.5, SIZING)
    assert half.budget_usdt == Decimal(100)
    assert more.budget_usdt == Decimal(200)


@pytest.mark.parametrize(
    ("market", "equity", "reason"),
    [
        (rules(step="100"), Decimal(10_000), ReasonCode.SIZE_ZERO),
        (rules(min_quantity="1000"), Decimal(10_000), ReasonCode.BELOW_MIN_QUANTITY),
        (rules(min_notional="100"), Decimal(100), ReasonCode.BELOW_MIN_NOTIONAL),
        (rules(tick="10"), Decimal(10_000), ReasonCode.SIZE_ZERO),
    ],
)
def test_denials(market: MarketRules, equity: Decimal, reason: ReasonCode) -> None:
    result = MathSizer(SIZING, COSTS).size(candidate(), TradePlan(), portfolio(equity), market)
    assert isinstance(result, Verdict)
    assert (result.gate, result.approved, result.reason) == (GateName.SIZER, False, reason)


def test_non_finite_atr_is_denied() -> None:
    result = MathSizer(SIZING, COSTS).size(
        candidate(atr_pct=float("nan")), TradePlan(), portfolio(), rules()
    )
    assert isinstance(result, Verdict)
    assert result.reason is ReasonCode.SIZE_ZERO


TICKS = st.sampled_from(["0.0001", "0.001", "0.01", "0.1", "1"])
STEPS = st.sampled_from(["0.0001", "0.001", "0.01", "0.1", "1", "10"])


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    tick = Decimal(draw(TICKS))
    # Ticks coarse beside the price too (the probe's: 0.8 % of it), and prices between ticks
    # (a recorded close need not be on the tick).
    ticks = draw(
        st.one_of(
            st.integers(min_value=50, max_value=10_000_000),
            st.integers(min_value=20, max_value=2_000),
        )
    )
    between = Decimal(draw(st.sampled_from([0, 0, 1, 25, 50, 99]))) / 100
    wins = draw(st.integers(min_value=0, max_value=40))
    return {
        "side": draw(st.sampled_from(list(Side))),
        "price": tick * (ticks + between),
        "tick": str(tick),
        "step": draw(STEPS),
        "atr_pct": draw(st.floats(min_value=0.0, max_value=0.2)),
        "regime": draw(st.sampled_from(list(Regime))),
        "equity": Decimal(draw(st.integers(min_value=50, max_value=5_000_000))),
        "wallet_ratio": draw(st.floats(min_value=0.5, max_value=1.5)),
        "size_factor": draw(st.floats(min_value=0.05, max_value=2.0)),
        "tp_r": draw(st.one_of(st.none(), st.floats(min_value=0.5, max_value=4.0))),
        "funding": draw(st.floats(min_value=-0.003, max_value=0.003)),
        "record": stats(wins + draw(st.integers(min_value=0, max_value=40)), wins),
        "margin_fraction": draw(st.floats(min_value=0.01, max_value=1.0)),
        # MARKET_LOT_SIZE: none, or a step and a minimum that are multiples of LOT_SIZE's.
        "market_lot": draw(
            st.one_of(
                st.none(),
                st.tuples(st.sampled_from([1, 10, 100]), st.sampled_from([1, 5, 50])),
            )
        ),
        "brackets": draw(st.one_of(st.just(()), bracket_sets())),
    }


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_sizer_properties(case: dict[str, object]) -> None:
    side = case["side"]
    price = case["price"]
    equity = case["equity"]
    assert isinstance(side, Side)
    assert isinstance(price, Decimal)
    assert isinstance(equity, Decimal)
    wallet = (equity * to_decimal(float(case["wallet_ratio"]))).quantize(Decimal("0.01"))  # type: ignore[arg-type]
    config = SIZING.model_copy(update={"max_margin_fraction": case["margin_fraction"]})
    cand = candidate(side, price, case["atr_pct"], case["regime"])  # type: ignore[arg-type]
    plan = TradePlan(size_factor=case["size_factor"], tp_r_multiple=case["tp_r"])  # type: ignore[arg-type]
    book = portfolio(equity, wallet, {cand.symbol: case["record"]})  # type: ignore[dict-item]
    market = rules(tick=str(case["tick"]), step=str(case["step"]), min_quantity=str(case["step"]))
    market = replace(market, leverage_brackets=case["brackets"])  # type: ignore[arg-type]
    market_lot = case["market_lot"]
    if market_lot is not None:
        assert isinstance(market_lot, tuple)
        steps, minimum_steps = market_lot
        market_step = market.step_size * steps
        market = replace(market, market_lot=LotSize(market_step * minimum_steps, market_step))
    funding = float(case["funding"])  # type: ignore[arg-type]
    result = MathSizer(config, COSTS).size(cand, plan, book, market, funding)
    if isinstance(result, Verdict):
        assert result.gate is GateName.SIZER
        assert not result.approved
        assert result.reason in {
            ReasonCode.SIZE_ZERO,
            ReasonCode.BELOW_MIN_QUANTITY,
            ReasonCode.BELOW_MIN_NOTIONAL,
        }
        return
    _check_order(result, config, equity, wallet, plan, funding)
    assert guard_review(result, market, book).reason is not ReasonCode.LEVERAGE_TOO_HIGH
    _check_paper_loss(result, market, budget_of(config, equity, plan), funding)
    assert market.is_quantity_precise(result.quantity)
    assert result.quantity % market.market_lot_size.step_size == 0
    assert market.is_price_precise(result.stop_price)
    assert market.is_price_precise(result.take_profit_price)
    assert result.quantity >= market.min_quantity
    assert result.quantity >= market.market_lot_size.min_quantity
    assert result.notional_usdt >= market.min_notional


def budget_of(config: SizingSettings, equity: Decimal, plan: TradePlan) -> Decimal:
    fraction = min(config.risk_per_trade * plan.size_factor, config.max_risk_fraction)
    return equity * to_decimal(fraction)


def _check_paper_loss(
    order: SizedOrder, market: MarketRules, budget: Decimal, funding: float
) -> None:
    """The README's promise with the paper exchange's own fills: the loss at the stop, with
    fees, slippage, the fills' rounding to the tick and the funding the sizer expects, never
    exceeds the budget."""
    loss = paper_loss_at_stop(order, market, COSTS)
    hold_h = COSTS.settings.expected_hold_h
    paid = COSTS.funding_usdt(float(order.notional_usdt), funding, order.side, hold_h)
    # The ledger rounds each fee to 1e-8 USDT.
    assert loss + to_decimal(paid) <= budget + Decimal("0.00000002"), (loss, budget)


def _check_order(
    order: SizedOrder,
    config: SizingSettings,
    equity: Decimal,
    wallet: Decimal,
    plan: TradePlan,
    funding: float,
) -> None:
    budget = budget_of(config, equity, plan)
    loss = (order.entry_price - order.stop_price) * order.side.sign * order.quantity
    assert loss == order.expected_loss_usdt
    costs = COSTS.round_trip_at(
        float(order.quantity),
        float(order.entry_price),
        float(order.stop_price),
        order.atr_pct,
        order.side,
        funding,
    )
    # Costs come from the float cost model: allow its rounding error only.
    assert float(loss) + costs.total_usdt <= float(budget) * (1 + 1e-12)
    assert loss + order.costs_usdt <= budget + Decimal("0.00000002")
    assert order.margin_usdt <= to_decimal(config.max_margin_fraction) * wallet
    assert 1 <= order.leverage <= config.max_leverage
    sign = order.side.sign
    assert (order.entry_price - order.stop_price) * sign > 0
    assert (order.take_profit_price - order.entry_price) * sign > 0
