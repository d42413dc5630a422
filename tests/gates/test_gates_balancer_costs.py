"""The balancer's cost score comes from the same cost model as paper fills and sizing, for the
order the sizer will make (bounded by the book's depth and the last leverage bracket's cap as
the sizer bounds it)."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import gate_builders as b
import pytest

from quantum_trader.domain import LeverageBracket, ReasonCode
from quantum_trader.gates.balancer import PortfolioBalancer
from quantum_trader.gates.balancer_rules import candidate_exposure, priority
from quantum_trader.gates.settings import BalancerSettings
from quantum_trader.sizing.brackets import HEADROOM
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings, SizingSettings

CALM, WILD = "BNB/USDT:USDT", "SOL/USDT:USDT"  # neither has a category boost


def ranked(balancer: PortfolioBalancer, atr_wild: float) -> list[tuple[str, float]]:
    view = b.market((CALM, WILD))
    view = replace(view, atr_pct={CALM: 0.01, WILD: atr_wild})
    candidates = [
        replace(b.candidate(CALM), atr_pct=0.01),
        replace(b.candidate(WILD), atr_pct=atr_wild),
    ]
    output = balancer.analyze(candidates, b.portfolio(), view, b.NOW)
    return [(t.symbol, t.priority) for t in (*output.allowed, *output.dropped)]


def test_volatile_slippage_costs_priority_through_the_cost_model() -> None:
    costs = CostModel(CostSettings())
    with_model = PortfolioBalancer(BalancerSettings(), costs)
    priorities = dict(ranked(with_model, atr_wild=0.05))
    calm_trip = costs.round_trip(3000.0, 0.01, b.candidate().side).total_usdt / 3000 * 100
    wild_trip = costs.round_trip(3000.0, 0.05, b.candidate().side).total_usdt / 3000 * 100
    assert wild_trip > calm_trip
    stability_gap = 10 * (0.05 - 0.01) / BalancerSettings().stability_max_atr_pct
    expected_gap = stability_gap + 5 * (wild_trip - calm_trip)
    assert priorities[CALM] - priorities[WILD] == pytest.approx(expected_gap)


def test_without_a_cost_model_the_settings_estimate_is_used() -> None:
    flat = PortfolioBalancer(BalancerSettings())
    priorities = dict(ranked(flat, atr_wild=0.05))
    stability_gap = 10 * (0.05 - 0.01) / BalancerSettings().stability_max_atr_pct
    assert priorities[CALM] - priorities[WILD] == pytest.approx(stability_gap)


def test_a_large_accounts_candidate_is_estimated_as_the_sizer_caps_it_at_the_books_depth() -> None:
    """At 1e11 USDT the likely order before the depth bound slips so far that its cost put
    every candidate below the priority floor (an outside probe: no trade at all from that paper
    balance): the sizer never sends that order, it stops where the expected slippage reaches
    its share of the stop, so the balancer estimates and prices that one."""
    costs, share, s = (
        CostModel(CostSettings()),
        SizingSettings().max_slippage_stop_share,
        BalancerSettings(),
    )
    atr = 0.01
    view = replace(b.market((CALM,)), atr_pct={CALM: atr})
    cand = replace(b.candidate(CALM), atr_pct=atr)
    account = b.portfolio(equity="100000000000")
    depth = costs.notional_within_slippage(atr * s.candidate_stop_atr_multiple * share, atr)
    likely = candidate_exposure(cand, 1e11, s)
    assert 0 < depth < likely.notional_usdt  # the bound binds at this size
    capped = candidate_exposure(cand, 1e11, s, depth)
    assert capped.notional_usdt == depth
    assert capped.risk_usdt == pytest.approx(likely.risk_usdt * depth / likely.notional_usdt)

    unbounded = PortfolioBalancer(s, costs).analyze([cand], account, view, b.NOW)
    assert [d.reason for d in unbounded.dropped] == [ReasonCode.LOW_PRIORITY]
    bounded = PortfolioBalancer(s, costs, share).analyze([cand], account, view, b.NOW)
    assert [d.symbol for d in bounded.allowed] == [CALM]
    trip = costs.round_trip(depth, atr, cand.side).total_usdt / depth * 100
    assert bounded.allowed[0].priority == pytest.approx(priority(cand, view, None, s, trip))


def test_below_the_books_depth_the_estimate_is_unchanged() -> None:
    costs, share = CostModel(CostSettings()), SizingSettings().max_slippage_stop_share
    assert dict(ranked(PortfolioBalancer(BalancerSettings(), costs, share), 0.05)) == dict(
        ranked(PortfolioBalancer(BalancerSettings(), costs), 0.05)
    )


def test_a_large_accounts_candidate_is_estimated_at_most_at_the_last_leverage_brackets_cap() -> (
    None
):
    """The sizer stops below the last leverage bracket's cap by its headroom (Binance takes no
    larger position): the balancer estimates, and prices, the candidate there, not at the order
    the account alone would make."""
    costs, s, atr = CostModel(CostSettings()), BalancerSettings(), 0.01
    cap = float(Decimal(1_000_000) / (1 + HEADROOM))  # the cap less the sizer's headroom
    bracket = LeverageBracket(5, Decimal(0), Decimal(1_000_000))
    capped = replace(b.rules(CALM), leverage_brackets=(bracket,))
    view = replace(b.market((CALM,), market_rules={CALM: capped}), atr_pct={CALM: atr})
    cand = replace(b.candidate(CALM), atr_pct=atr)
    balancer = PortfolioBalancer(s, costs)
    assert balancer.depths([cand], view.rules) == {CALM: cap}
    assert balancer.depths([cand], {}) == {CALM: math.inf}  # no rules known: no bound
    assert candidate_exposure(cand, 1e8, s).notional_usdt > cap

    output = balancer.analyze([cand], b.portfolio(equity="100000000"), view, b.NOW)
    trip = costs.round_trip(cap, atr, cand.side).total_usdt / cap * 100
    assert output.allowed[0].priority == pytest.approx(priority(cand, view, None, s, trip))
