"""Backtest throughput: the whole `quantum-trader backtest` command, wall and CPU time, peak RSS.

    .venv/bin/python -m benchmarks.bench_backtest                 # 30 days x 8 symbols, bundled
    .venv/bin/python -m benchmarks.bench_backtest --shared-year   # SPEC §11: calendar 2025, 8 x 5m

The second needs ../shared/data (not part of the project); it is skipped with a message when
absent. Each run is a fresh process, so import and data loading are included, as for a user.

The year run trades all year: a backtest has no operator, so an emergency shutdown (the
total-decline breaker) would otherwise halt it for good in late January; the simulated operator
(`backtest.operator_reset_after`, here one day, --reset-after to change) resets such a halt
once it has lasted a day, as a person reading the alert would. Trades per month show the work
is spread over the whole window. `--symbols` replays another list (scaling runs).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.scratch import scratch_dir

# ../shared beside the checkout; a worktree one level further down finds it one level up.
SHARED_FUTURES = next(
    (
        folder / "shared" / "data" / "binance" / "futures"
        for folder in Path(__file__).resolve().parents[2:4]
        if (folder / "shared" / "data").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "binance" / "futures",
)


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, float, dict[str, Any]]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one command, its report."""
    out = scratch_dir("qt-bench-")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quantum_trader", "backtest", "--out", str(out), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the one child this process ran
    cpu_s = usage.ru_utime + usage.ru_stime
    return elapsed, cpu_s, usage.ru_maxrss / 1024, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared-year", action="store_true")
    parser.add_argument("--reset-after", default="86400", help="seconds; 'none' never resets")
    parser.add_argument("--symbols", help="comma-separated, e.g. BTC/USDT:USDT,ETH/USDT:USDT")
    parser.add_argument("--start", help="YYYY-MM-DD, overrides the window's start")
    parser.add_argument("--end", help="YYYY-MM-DD, overrides the window's end")
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env["QT_SIGNALS__SOURCE"] = "rules"
    env["QT_DATA_DIR"] = str(scratch_dir("qt-bench-data-"))
    if options.reset_after != "none":
        env["QT_BACKTEST__OPERATOR_RESET_AFTER"] = options.reset_after
    if options.shared_year:
        if not SHARED_FUTURES.is_dir():
            print(f"skipped: {SHARED_FUTURES} not present")
            return
        env["QT_MARKET__REPLAY_DIR"] = str(SHARED_FUTURES)
        args = ["--start", "2025-01-01", "--end", "2026-01-01"]
    else:
        args = ["--start", "2025-09-10", "--end", "2025-10-10"]
    if options.start:
        args[1] = options.start
    if options.end:
        args[3] = options.end
    if options.symbols:
        args += ["--symbols", options.symbols]
    elapsed, cpu_s, peak_mb, report = run(args, env)
    candles = int(str(report["candles"]))
    window = f"{str(report['start'])[:10]} → {str(report['end'])[:10]}"
    print(
        f"{candles:,} candles, {window}: {elapsed:.2f} s wall ({cpu_s:.2f} s CPU) = "
        f"{candles / elapsed:,.0f} candles/s (replay loop alone {report['candles_per_s']}/s); "
        f"peak RSS {peak_mb:.0f} MB; "
        f"{report['trades']} trades, reconciled={report['reconciled']}"
    )
    per_month = collections.Counter(str(t["opened_at"])[:7] for t in report["trade_list"])
    print(
        "trades per month (by entry): "
        + ", ".join(f"{m} {n}" for m, n in sorted(per_month.items()))
    )
    halts = report["halts"]
    print(f"not traded (halted): {halts.get('share_not_traded', 0):.1%} of the window")


if __name__ == "__main__":
    main()
