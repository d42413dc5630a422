"""Time recording + flushing 100,000 decisions (a backtest's worth) in SQLite and in memory.

Run: .venv/bin/python benchmarks/bench_storage.py [--decisions N] [--batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from quantum_trader.domain import Decision, GateName, ReasonCode, Side, Verdict
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.sqlite import SqliteRepository

START = datetime(2025, 1, 1, tzinfo=UTC)
GATES = list(GateName)
REASONS = [ReasonCode.APPROVED, ReasonCode.LOW_CONFIDENCE, ReasonCode.PAUSED, ReasonCode.MAX_LONGS]


def make_decisions(n: int) -> list[Decision]:
    """`n` decisions spread over 5-minute cycles, with a small `extra` like the executor's."""
    out = []
    for i in range(n):
        verdict = Verdict(GATES[i % len(GATES)], f"S{i % 8}/USDT:USDT", i % 4 == 0, REASONS[i % 4])
        moment = START + timedelta(minutes=5 * (i // 8))
        extra: dict[str, object] = {"regime": "TRENDING", "atr_pct": 0.0123}
        out.append(Decision(f"c{i // 8}", moment, verdict, 0.42, Side.LONG, extra))
    return out


async def bench(
    repo: SqliteRepository | InMemoryRepository, decisions: list[Decision], batch: int
) -> tuple[float, float]:
    started = time.perf_counter()
    for i in range(0, len(decisions), batch):
        await repo.record_decisions(decisions[i : i + batch])
    await repo.flush()
    recorded = time.perf_counter() - started
    started = time.perf_counter()
    counts = await repo.decision_counts()
    counted = time.perf_counter() - started
    assert sum(counts.values()) == len(decisions)
    return recorded, counted


async def main(n: int, batch: int) -> None:
    decisions = make_decisions(n)
    with tempfile.TemporaryDirectory() as folder:
        sqlite_repo = await SqliteRepository.open(Path(folder) / "bench.db")
        try:
            recorded, counted = await bench(sqlite_repo, decisions, batch)
        finally:
            await sqlite_repo.close()
    print(
        f"sqlite: record+flush {n:,} decisions (batches of {batch}): {recorded:.3f} s "
        f"({n / recorded:,.0f}/s); decision_counts {counted * 1000:.1f} ms"
    )
    recorded, counted = await bench(InMemoryRepository(), decisions, batch)
    print(
        f"memory: record {n:,} decisions: {recorded:.3f} s ({n / recorded:,.0f}/s); "
        f"decision_counts {counted * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.decisions, args.batch))
