"""What the integrity check costs when a database is opened, as the file grows.

Every open (`run`, `status`, `positions`, `trades`, operator requests) runs SQLite's
`quick_check` over the whole file and compares the schema with the migrations. Measured side by
side on the same file: opening read-only (with the checks), a bare read-only connection reading
the schema version (the open before the checks existed), and `decision_counts()` (what `status`
reads of the decisions: since migration 0003 the tallies the database keeps, a few rows;
before it, a GROUP BY over every decision, 2.3× the checks).

Run: .venv/bin/python -m benchmarks.bench_open_check [--decisions N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks.bench_storage import make_decisions
from quantum_trader.storage.sqlite import SqliteRepository

REPEATS = 5
BATCH = 50_000


async def build(path: Path, decisions: int) -> None:
    repository = await SqliteRepository.open(path)
    try:
        for start in range(0, decisions, BATCH):
            await repository.record_decisions(make_decisions(min(BATCH, decisions - start)))
            await repository.flush()
    finally:
        await repository.close()


async def checked_open(path: Path) -> None:
    repository = await SqliteRepository.open(path, read_only=True)
    await repository.close()


async def bare_open(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("SELECT max(version) FROM schema_version").fetchall()
    finally:
        conn.close()


async def counts(path: Path) -> None:
    repository = await SqliteRepository.open(path, read_only=True)
    try:
        await repository.decision_counts()
    finally:
        await repository.close()


async def median_s(step: Callable[[Path], Awaitable[None]], path: Path) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await step(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def main(decisions: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        await build(path, decisions)
        size_mb = path.stat().st_size / 1e6
        checked = await median_s(checked_open, path)
        bare = await median_s(bare_open, path)
        counted = await median_s(counts, path) - checked  # the query alone
    print(
        f"{decisions:,} decisions, {size_mb:,.0f} MB: open with checks {checked * 1000:,.0f} ms "
        f"({checked / size_mb * 1000:.2f} ms/MB), bare open {bare * 1000:.1f} ms, "
        f"decision_counts {counted * 1000:,.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().decisions))
