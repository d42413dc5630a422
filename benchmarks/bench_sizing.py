"""Benchmark: size 50 approved candidates (target ≤ 2 ms), per sizing method.

Run: .venv/bin/python benchmarks/bench_sizing.py
"""

from __future__ import annotations

import random
import statistics
import time
from decimal import Decimal

from quantum_trader.domain import (
    Action,
    Candidate,
    MarketRules,
    PortfolioView,
    Regime,
    Side,
    Signal,
    SymbolStats,
    TradePlan,
)
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.methods import make_sizer
from quantum_trader.sizing.multipliers import compose_multipliers
from quantum_trader.sizing.settings import CostSettings, SizingMethod, SizingSettings

CANDIDATES = 50
REPEATS = 200


def build(rng: random.Random) -> tuple[list[Candidate], dict[str, MarketRules], PortfolioView]:
    candidates, rules, stats = [], {}, {}
    for index in range(CANDIDATES):
        symbol = f"S{index}/USDT:USDT"
        side = rng.choice(list(Side))
        action = Action.BUY if side is Side.LONG else Action.SELL
        price = Decimal(str(round(rng.uniform(0.1, 60_000), 2)))
        signal = Signal(symbol, action, rng.uniform(0.2, 1.0), "bench")
        regime = rng.choice(list(Regime))
        candidates.append(Candidate(signal, side, price, rng.uniform(0.003, 0.06), regime))
        rules[symbol] = MarketRules(
            symbol, Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal(5)
        )
        trades = rng.randint(0, 40)
        stats[symbol] = SymbolStats(symbol, trades, rng.randint(0, trades), streak=1)
    equity = Decimal(25_000)
    book = PortfolioView(
        equity, equity, equity, Decimal(0), {}, equity, equity, equity, symbol_stats=stats
    )
    return candidates, rules, book


def bench(method: SizingMethod, with_multipliers: bool) -> tuple[float, float]:
    """Median and p95 milliseconds to size all candidates once."""
    settings = SizingSettings(method=method)
    sizer = make_sizer(settings, CostModel(CostSettings()))
    candidates, rules, book = build(random.Random(1))
    recent = [1.0, -1.0, 2.0, -0.5, 1.5, -1.0, 2.5]
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for candidate in candidates:
            plan = TradePlan()
            if with_multipliers:
                plan = compose_multipliers(
                    candidate, plan, book, settings.multipliers, recent_r=recent
                ).apply(plan)
            sizer.size(candidate, plan, book, rules[candidate.symbol], 0.0001)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def main() -> None:
    print(f"sizing {CANDIDATES} candidates, {REPEATS} repeats (target ≤ 2 ms)")
    for method in ("math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "rl"):
        median, p95 = bench(method, with_multipliers=False)
        print(f"  {method:<20} median {median:6.3f} ms   p95 {p95:6.3f} ms")
    median, p95 = bench("math", with_multipliers=True)
    print(f"  {'math + multipliers':<20} median {median:6.3f} ms   p95 {p95:6.3f} ms")


if __name__ == "__main__":
    main()
