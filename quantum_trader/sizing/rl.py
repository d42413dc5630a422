"""RL sizing agent (SPEC §5.6), an optional mode: tabular Q-learning over trade contexts.

State: regime × confidence bucket × exposure bucket × streak bucket. Action: size ×0.5/0.75/
1.0/1.25 × leverage 1/2/3/5 × TP/SL style (TIGHT, NORMAL, WIDE). Reward: the trade's realized
R multiple. The agent is the only stateful object in sizing: `learn` updates its Q-table in
place, `to_dict`/`from_dict` persist it (Repository.save_state). The RNG is passed in, so a
seeded run is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from itertools import product
from typing import Any

from quantum_trader.domain import (
    Candidate,
    MarketRules,
    PortfolioView,
    SizedOrder,
    TradePlan,
    Verdict,
)
from quantum_trader.record import record, replace
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.mathematician import MathSizer, StopPlan, plan_risk, plan_stops
from quantum_trader.sizing.settings import RLSettings, SizingSettings

SIZE_MULTIPLES = (0.5, 0.75, 1.0, 1.25)
LEVERAGES = (1, 2, 3, 5)
# style → (stop distance multiple, take-profit R or None for the regime's R)
STYLES: dict[str, tuple[float, float | None]] = {
    "TIGHT": (0.75, 1.5),
    "NORMAL": (1.0, None),
    "WIDE": (1.25, 2.5),
}


@record
class RLAction:
    size_multiple: float
    leverage: int
    style: str

    @property
    def key(self) -> str:
        return f"{self.size_multiple}x|{self.leverage}L|{self.style}"


ACTIONS = tuple(RLAction(s, lev, st) for s, lev, st in product(SIZE_MULTIPLES, LEVERAGES, STYLES))
ACTION_BY_KEY = {a.key: a for a in ACTIONS}


def state_key(candidate: Candidate, portfolio: PortfolioView) -> str:
    """Discretize the context: regime, confidence in fifths, gross exposure ÷ equity in halves
    (capped at 3), losing/winning streak of the symbol clipped to ±3."""
    confidence = min(max(int(candidate.confidence * 5), 0), 4)
    equity = float(portfolio.equity_usdt)
    exposure = float(portfolio.gross_notional_usdt) / equity if equity > 0 else 3.0
    exposure_bucket = min(int(exposure * 2), 3)
    stats = portfolio.symbol_stats.get(candidate.symbol)
    streak = min(max(stats.streak if stats else 0, -3), 3)
    return f"{candidate.regime}|c{confidence}|e{exposure_bucket}|s{streak}"


class QAgent:
    """Tabular Q-learning: Q(s, a) += α (r + γ max_a' Q(s', a') − Q(s, a)); unseen Q = 0."""

    def __init__(self, settings: RLSettings, table: dict[str, dict[str, float]]) -> None:
        self.settings = settings
        self.table = table

    @classmethod
    def fresh(cls, settings: RLSettings) -> QAgent:
        return cls(settings, {})

    def value(self, state: str, action: RLAction) -> float:
        return self.table.get(state, {}).get(action.key, 0.0)

    def greedy(self, state: str) -> RLAction:
        """The best known action (first in ACTIONS order on ties)."""
        row = self.table.get(state)
        if not row:
            return ACTIONS[0]
        return max(ACTIONS, key=lambda a: row.get(a.key, 0.0))

    def choose(self, state: str, rng: random.Random) -> RLAction:
        """ε-greedy: a uniformly random action with probability ε, else the greedy one."""
        if rng.random() < self.settings.epsilon:
            return ACTIONS[rng.randrange(len(ACTIONS))]
        return self.greedy(state)

    def learn(
        self, state: str, action: RLAction, reward_r: float, next_state: str | None = None
    ) -> None:
        """Update Q from a closed trade's realized R; `next_state` None ends the episode."""
        s = self.settings
        future = 0.0
        if next_state is not None:
            future = max(self.value(next_state, a) for a in ACTIONS)
        old = self.value(state, action)
        target = reward_r + s.gamma * future
        self.table.setdefault(state, {})[action.key] = old + s.alpha * (target - old)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "table": {s: dict(row) for s, row in self.table.items()}}

    @classmethod
    def from_dict(cls, settings: RLSettings, payload: Mapping[str, Any]) -> QAgent:
        table = payload.get("table", {})
        return cls(
            settings,
            {
                str(s): {str(a): float(q) for a, q in row.items() if a in ACTION_BY_KEY}
                for s, row in table.items()
            },
        )


@record
class RLDecision:
    """What the agent chose for an order; learn from it when the trade closes."""

    state: str
    action: RLAction


def decision_of(order: SizedOrder) -> RLDecision | None:
    """Recover the agent's decision from an RL order's `method` tag (`rl|state|action`)."""
    parts = order.method.split("|", 1)
    if parts[0] != "rl" or len(parts) < 2:
        return None
    state, _, action_key = parts[1].rpartition("#")
    action = ACTION_BY_KEY.get(action_key)
    return RLDecision(state, action) if action else None


@record
class RLSizer:
    """Sizes with the action the agent picks; stops, rounding and caps as the math sizer."""

    settings: SizingSettings
    costs: CostModel
    agent: QAgent
    rng: random.Random

    def size(
        self,
        candidate: Candidate,
        plan: TradePlan,
        portfolio: PortfolioView,
        rules: MarketRules,
        funding_rate_8h: float = 0.0,
    ) -> SizedOrder | Verdict:
        """Pick an action (ε-greedy), size with it, tag the order with the decision."""
        state = state_key(candidate, portfolio)
        action = self.agent.choose(state, self.rng)
        tag = f"rl|{state}#{action.key}"
        sizer = MathSizer(self.settings, self.costs, tag)
        if candidate.price <= 0 or not math.isfinite(candidate.atr_pct):
            return sizer.size(candidate, plan, portfolio, rules, funding_rate_8h)
        base = plan_stops(candidate.atr_pct, candidate.regime, plan.tp_r_multiple, self.settings)
        stops = _styled(base, action.style, self.settings)
        leverage = max(min(action.leverage, rules.max_leverage, self.settings.max_leverage), 1)
        risk = plan_risk(
            portfolio.equity_usdt,
            portfolio.wallet_usdt,
            stops.sl_pct,
            leverage,
            plan.size_factor * action.size_multiple,
            self.settings,
        )
        return sizer.build_order(candidate, plan, rules, stops, risk, funding_rate_8h)


def _styled(base: StopPlan, style: str, settings: SizingSettings) -> StopPlan:
    stop_multiple, r_multiple = STYLES[style]
    sl_pct = min(max(base.sl_pct * stop_multiple, settings.min_stop_pct), settings.max_stop_pct)
    r = base.r_multiple if r_multiple is None else r_multiple
    return replace(base, sl_pct=sl_pct, tp_pct=sl_pct * r, r_multiple=r)
