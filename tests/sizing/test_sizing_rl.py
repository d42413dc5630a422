"""RL sizing agent (SPEC §5.6): it learns the best action, persists, and sizes within caps."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sizing_fakes import SYMBOL, candidate, portfolio, rules, stats

from quantum_trader.domain import ClosedTrade, ExitReason, Regime, Side, SizedOrder, TradePlan
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.desk import RL_PENDING, RL_PENDING_MAX, SizingDesk
from quantum_trader.sizing.rl import ACTIONS, QAgent, RLSizer, decision_of, state_key
from quantum_trader.sizing.settings import CostSettings, RLSettings, SizingSettings
from quantum_trader.storage.memory import InMemoryRepository

RL = RLSettings()


def test_greedy_policy_converges_to_the_best_action() -> None:
    """A bandit per state: one known action pays +1.5 R on average, the rest less."""
    rng = random.Random(7)
    env = random.Random(11)
    agent = QAgent.fresh(RL)
    states = ["TRENDING|c3|e0|s0", "CHOPPY|c1|e2|s-2"]
    best = {states[0]: ACTIONS[17], states[1]: ACTIONS[3]}
    for step in range(12_000):
        state = states[step % 2]
        action = agent.choose(state, rng)
        mean = 1.5 if action == best[state] else env.uniform(-1.0, 0.8)
        agent.learn(state, action, mean + env.gauss(0.0, 0.3))
    for state in states:
        assert agent.greedy(state) == best[state]


def test_bootstrapped_update_uses_the_next_state() -> None:
    agent = QAgent.fresh(RL)
    agent.learn("b", ACTIONS[0], 2.0)
    agent.learn("a", ACTIONS[1], 0.0, next_state="b")
    assert agent.value("a", ACTIONS[1]) == RL.alpha * RL.gamma * RL.alpha * 2.0


def test_q_table_round_trips_through_json() -> None:
    agent = QAgent.fresh(RL)
    agent.learn("s", ACTIONS[5], 1.0)
    payload = json.loads(json.dumps(agent.to_dict()))
    restored = QAgent.from_dict(RL, payload)
    assert restored.table == agent.table
    assert restored.greedy("s") == ACTIONS[5]


def test_state_buckets() -> None:
    book = portfolio(stats={SYMBOL: stats(10, 2)})
    key = state_key(candidate(confidence=0.65, regime=Regime.RANGING), book)
    assert key == "RANGING|c3|e0|s0"


def test_rl_sizer_tags_the_order_with_its_decision() -> None:
    agent = QAgent.fresh(RLSettings(epsilon=0.0))
    agent.learn("CHOPPY|c3|e0|s0", ACTIONS[20], 1.0)
    sizer = RLSizer(SizingSettings(), CostModel(CostSettings()), agent, random.Random(1))
    order = sizer.size(candidate(), TradePlan(), portfolio(), rules())
    assert isinstance(order, SizedOrder)
    decision = decision_of(order)
    assert decision is not None
    assert decision.state == "CHOPPY|c3|e0|s0"
    assert decision.action == ACTIONS[20]
    assert order.leverage == ACTIONS[20].leverage


def closed_trade(entry_order_id: str, r_multiple: float | None) -> ClosedTrade:
    opened = datetime(2025, 10, 1, tzinfo=UTC)
    return ClosedTrade(
        SYMBOL, Side.LONG, Decimal(1), Decimal(100), Decimal(103), opened,
        opened + timedelta(hours=2), ExitReason.TP_HIT, Decimal(3), Decimal(0), Decimal(0),
        r_multiple, entry_order_id,
    )  # fmt: skip


async def test_a_trade_of_unknown_r_teaches_nothing_and_leaves_no_pending_entry() -> None:
    """A trade whose initial risk was unknown has no R to learn from (was: R 0.0, learned as a
    break-even reward), nor to weigh recent performance with."""
    repository = InMemoryRepository()
    settings = SizingSettings(method="rl")
    desk = await SizingDesk.load(settings, CostModel(CostSettings()), repository, MonitorSettings())
    assert desk.agent is not None
    pending = {"state": "s", "action": ACTIONS[0].key}
    for entry in ("qt-e-1", "qt-e-2"):
        await repository.save_state(RL_PENDING, entry, pending)
    unknown = closed_trade(entry_order_id="qt-e-1", r_multiple=None)
    await desk.on_trade_closed(unknown, {})
    assert desk.agent.to_dict()["table"] == {}
    assert desk.recent_r == []
    assert list(await repository.load_state(RL_PENDING)) == ["qt-e-2"]
    await desk.on_trade_closed(closed_trade(entry_order_id="qt-e-2", r_multiple=1.5), {})
    assert desk.agent.to_dict()["table"] != {}  # a known R is learned from
    assert desk.recent_r == [1.5]


async def test_the_decisions_kept_are_bounded_the_oldest_dropped() -> None:
    """A decision no entry's end ever drops (its trade's booking cut off by a stop before it
    was stored) goes once `RL_PENDING_MAX` newer ones are kept. A record of an earlier version
    (an empty payload) goes first."""
    repository = InMemoryRepository()
    settings = SizingSettings(method="rl")
    desk = await SizingDesk.load(settings, CostModel(CostSettings()), repository, MonitorSettings())
    await repository.save_state(RL_PENDING, "qt-e-old", {})  # learnt from, by an earlier version
    order = SizedOrder(
        symbol=SYMBOL, side=Side.LONG, quantity=Decimal(1), entry_price=Decimal(100),
        stop_price=Decimal(97), take_profit_price=Decimal(106), leverage=2,
        notional_usdt=Decimal(100), margin_usdt=Decimal(50), expected_loss_usdt=Decimal(3),
        expected_profit_usdt=Decimal(6), costs_usdt=Decimal(0), atr_pct=0.02, confidence=0.8,
        method=f"rl|s#{ACTIONS[0].key}",
    )  # fmt: skip
    start = datetime(2025, 10, 1, tzinfo=UTC)
    for i in range(RL_PENDING_MAX + 1):
        await desk.on_entry_sending(order, f"qt-e-{i:03d}", start + timedelta(minutes=i))
    kept = await repository.load_state(RL_PENDING)
    assert len(kept) == RL_PENDING_MAX
    assert sorted(kept) == [f"qt-e-{i:03d}" for i in range(1, RL_PENDING_MAX + 1)]
    await desk.on_entry_void("qt-e-001")
    assert "qt-e-001" not in await repository.load_state(RL_PENDING)
