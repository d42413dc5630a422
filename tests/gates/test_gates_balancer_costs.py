"""The balancer's cost score comes from the same cost model as paper fills and sizing."""

from __future__ import annotations

from dataclasses import replace

import gate_builders as b
import pytest

from quantum_trader.gates.balancer import PortfolioBalancer
from quantum_trader.gates.settings import BalancerSettings
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.settings import CostSettings

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
