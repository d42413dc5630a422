"""Cost of one cycle of the approval chain: 50 candidates, 8 open positions, four gates.

Run: .venv/bin/python benchmarks/bench_chain.py
Counts: governor.observe (once per cycle), the three candidate gates through ApprovalChain,
then the risk guard on a sized order for every approved candidate. With the default limits of
8 positions, 8 open positions would stop every candidate at the first gate; the position caps
are raised to 12 so that every gate does its full work.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from quantum_trader.domain import (
    Action,
    Candidate,
    GlobalRegime,
    MarketRules,
    MarketView,
    PortfolioView,
    Position,
    Regime,
    Side,
    Signal,
    SizedOrder,
)
from quantum_trader.gates.balancer import PortfolioBalancer
from quantum_trader.gates.chain import ApprovalChain
from quantum_trader.gates.governor import SafetyGovernor
from quantum_trader.gates.orchestrator import OrchestratorPolicy
from quantum_trader.gates.risk_guard import RiskGuard
from quantum_trader.gates.settings import (
    BalancerSettings,
    GovernorSettings,
    OrchestratorSettings,
    RiskGuardSettings,
)

NOW = datetime(2025, 10, 1, 12, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}/USDT:USDT" for i in range(58)]
D = Decimal


def build() -> tuple[list[Candidate], PortfolioView, MarketView]:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.004, 288)
    returns = {s: base * rng.uniform(0, 1.2) + rng.normal(0, 0.004, 288) for s in SYMBOLS}
    rules = {s: MarketRules(s, D("0.01"), D("0.001"), D("0.001"), D("5")) for s in SYMBOLS}
    regimes = [Regime.TRENDING, Regime.RANGING, Regime.CHOPPY, Regime.BREAKOUT]
    market = MarketView(
        NOW,
        dict.fromkeys(SYMBOLS, D(100)),
        rules,
        dict.fromkeys(SYMBOLS, 0.01),
        {s: regimes[i % 4] for i, s in enumerate(SYMBOLS)},
        GlobalRegime.SIDEWAYS,
        returns,
    )
    positions = {
        s: Position(
            s,
            Side.LONG if i % 2 else Side.SHORT,
            D(3),
            D(100),
            3,
            D(98) if i % 2 else D(102),
            D(104),
            NOW,
            f"e{i}",
            D(98),
            D(3),
        )
        for i, s in enumerate(SYMBOLS[:8])
    }
    eq = D(10_000)
    portfolio = PortfolioView(eq, eq, D(9_000), D(1_000), positions, eq, eq, eq)
    candidates = [
        Candidate(
            Signal(s, Action.BUY if i % 3 else Action.SELL, 0.4 + 0.01 * i, "bench"),
            Side.LONG if i % 3 else Side.SHORT,
            D(100),
            0.01,
            regimes[i % 4],
        )
        for i, s in enumerate(SYMBOLS[8:])
    ]
    return candidates, portfolio, market


def sized(candidate: Candidate) -> SizedOrder:
    sign = candidate.side.sign
    return SizedOrder(
        candidate.symbol,
        candidate.side,
        D(10),
        D(100),
        D(100) - 2 * sign,
        D(100) + 4 * sign,
        3,
        D(1000),
        D("333.33"),
        D(20),
        D(40),
        D(1),
        0.01,
        0.7,
    )


def main(cycles: int = 2000) -> None:
    candidates, portfolio, market = build()
    governor = SafetyGovernor(GovernorSettings())
    chain = ApprovalChain(
        [
            OrchestratorPolicy(OrchestratorSettings(max_open_positions=12)),
            PortfolioBalancer(BalancerSettings(max_positions=12, max_net_exposure=2.0)),
            governor,
        ],
        [RiskGuard(RiskGuardSettings())],
    )
    approved = 0
    reached: Counter[str] = Counter()
    timings = []
    for _ in range(cycles):
        start = time.perf_counter()
        governor.observe(portfolio, market, NOW)
        result = chain.approve(candidates, portfolio, market, NOW)
        for item in result.approved:
            chain.check_order(sized(item.candidate), portfolio, market, NOW)
        timings.append(time.perf_counter() - start)
        approved = len(result.approved)
        reached = Counter(f"{v.gate}:{v.reason}" for v in result.verdicts)
    ms = np.array(timings) * 1000
    print(dict(reached))
    print(f"candidates={len(candidates)} open={len(portfolio.positions)} approved={approved}")
    print(
        f"per cycle: median {np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms, "
        f"max {ms.max():.3f} ms over {cycles} cycles"
    )


if __name__ == "__main__":
    main()
