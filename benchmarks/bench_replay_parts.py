"""Where a backtest's replay spends its time, part by part, and a fingerprint of its results.

    .venv/bin/python -m benchmarks.bench_replay_parts                  # the year of SPEC §11
    .venv/bin/python -m benchmarks.bench_replay_parts --full-steps     # every step run in full
    .venv/bin/python -m benchmarks.bench_replay_parts --start 2025-10-12 --end 2025-10-20
    .venv/bin/python -m benchmarks.bench_replay_parts --untimed       # for benchmarks.spy_shares

In process, rule signals, the simulated operator resetting a halt after a day, ../shared's
futures (the bundled sample with --bundled). Each part of a step is timed around its call (the
table of docs/BENCHMARKS.md "Where the replay's time goes now"): the timing wraps cost a little
each, so read the shares. The fingerprint (rows and SHA-256 of every table of the result
database, the counts of repeated and spared work left out of the saved state) is the referee
for work that skips steps: it must be the same with --full-steps.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bench_backtest import SHARED_FUTURES
from benchmarks.scratch import scratch_dir
from benchmarks.wrapping import around
from quantum_trader.backtest import UNCHANGED_KEY, BacktestRequest, run_backtest
from quantum_trader.config import Settings
from quantum_trader.cycle import Executor
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.log import configure_logging
from quantum_trader.replay_quiet import QuietSteps

COUNTS = (
    "repeated_steps",
    "repeated_with_positions",
    "repeated_with_new_extremes",
    "repeated_in_stretches",
    "repeated_in_priced_stretches",
    "priced_stretches_checked_at_once",
    "repeated_cycles",
    "spared_ticks",
)
PARTS: tuple[tuple[type, str, str], ...] = (
    (QuietSteps, "repeats", "the checks of a step that may repeat"),
    (QuietSteps, "repeat", "repeating one"),
    (QuietSteps, "tick_spared", "sparing the keeper's tick of a step that runs"),
    (PositionKeeper, "tick", "the keeper's ticks that still run"),
    (QuietSteps, "repeats_cycle", "the cycle's checks after a tick"),
    (Executor, "run_cycle", "the executor cycles that still run"),
    (QuietSteps, "before", "noting what a step that ran may change"),
    (QuietSteps, "after", "noting what it left"),
)
SECONDS: dict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter[str] = collections.Counter()


def timed(owner: type, name: str) -> None:
    """Replace `owner.name` by the same method that adds its time to SECONDS and CALLS."""

    def end(started: float) -> None:
        SECONDS[name] += time.perf_counter() - started
        CALLS[name] += 1

    around(owner, name, time.perf_counter, end)


DERIVED = ("schema_version", "decision_tallies")


def fingerprint(database: Path) -> list[tuple[str, int, str]]:
    """Each table's name, rows and a short SHA-256 of them (the schema's creation time, the
    decisions' tallies, which the database derives from the decisions fingerprinted here,
    and the counts of repeated and spared work aside)."""
    prints = []
    with sqlite3.connect(database) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        for (table,) in sorted(tables.fetchall()):
            if table in DERIVED:
                continue
            rows = connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            if table == "state":
                rows = [_without_counts(row) for row in rows]
            digest = hashlib.sha256(repr(rows).encode()).hexdigest()[:12]
            prints.append((str(table), len(rows), digest))
    return prints


def _without_counts(row: tuple[Any, ...]) -> tuple[Any, ...]:
    namespace, key, payload = row[0], row[1], row[2]
    if (namespace, key) != UNCHANGED_KEY:
        return (namespace, key, payload)
    data = {k: v for k, v in json.loads(payload).items() if k not in COUNTS}
    return (namespace, key, json.dumps(data, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2025-01-07")
    parser.add_argument("--end", default="2026-01-01")
    parser.add_argument("--bundled", action="store_true", help="the bundled sample's futures")
    parser.add_argument("--full-steps", action="store_true", help="skip_quiet_steps = false")
    parser.add_argument(
        "--untimed", action="store_true", help="no timing wraps (for a sampling profiler)"
    )
    options = parser.parse_args()
    market: dict[str, Any] = {}
    if not options.bundled:
        if not SHARED_FUTURES.is_dir():
            print(f"skipped: {SHARED_FUTURES} not present (--bundled replays the sample)")
            return
        market["replay_dir"] = str(SHARED_FUTURES)
    out = scratch_dir("qt-bench-parts-")
    settings = Settings(
        data_dir=out / "data",
        signals={"source": "rules"},
        market=market,
        backtest={"operator_reset_after": "P1D", "skip_quiet_steps": not options.full_steps},
    )
    configure_logging(settings.log.format, "ERROR")
    for owner, name, _ in () if options.untimed else PARTS:
        timed(owner, name)
    window = [datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (options.start, options.end)]
    request = BacktestRequest(window[0], window[1], out_dir=out / "run")
    started = time.process_time()
    asyncio.run(run_backtest(settings, request))
    print(f"{options.start} → {options.end}: {time.process_time() - started:.1f} s CPU in all")
    print("| part | calls | time | per call |\n|---|---|---|---|")
    for _, name, label in PARTS:
        if CALLS[name]:
            seconds, calls = SECONDS[name], CALLS[name]
            each = 1e6 * seconds / calls
            print(f"| {label} (`{name}`) | {calls:,} | {seconds:.1f} s | {each:.0f} µs |")
    database = out / "run" / "backtest.db"
    with sqlite3.connect(database) as connection:
        query = "SELECT payload FROM state WHERE namespace = ? AND key = ?"
        saved = json.loads(connection.execute(query, UNCHANGED_KEY).fetchone()[0])
    print(", ".join(f"{count} {saved.get(count, 0):,}" for count in COUNTS))
    for table, rows, digest in fingerprint(database):
        print(f"{table}: {rows:,} rows, {digest}")


if __name__ == "__main__":
    main()
