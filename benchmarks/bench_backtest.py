"""Backtest throughput: the whole `quantum-trader backtest` command, wall time and peak RSS.

    .venv/bin/python -m benchmarks.bench_backtest                 # 30 days x 8 symbols, bundled
    .venv/bin/python -m benchmarks.bench_backtest --shared-year   # SPEC §11: calendar 2025, 8 x 5m

The second needs ../shared/data (not part of the project); it is skipped with a message when
absent. Each run is a fresh process, so import and data loading are included, as for a user.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED_FUTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance" / "futures"


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    out = Path(tempfile.mkdtemp(prefix="qt-bench-"))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quantum_trader", "backtest", "--out", str(out), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return elapsed, peak_mb, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared-year", action="store_true")
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env["QT_SIGNALS__SOURCE"] = "rules"
    if options.shared_year:
        if not SHARED_FUTURES.is_dir():
            print(f"skipped: {SHARED_FUTURES} not present")
            return
        env["QT_MARKET__REPLAY_DIR"] = str(SHARED_FUTURES)
        args = ["--start", "2025-01-01", "--end", "2026-01-01"]
    else:
        args = ["--start", "2025-09-10", "--end", "2025-10-10"]
    elapsed, peak_mb, report = run(args, env)
    candles = int(str(report["candles"]))
    window = f"{str(report['start'])[:10]} → {str(report['end'])[:10]}"
    print(
        f"{candles:,} candles, {window}: {elapsed:.2f} s wall = {candles / elapsed:,.0f} "
        f"candles/s (replay loop alone {report['candles_per_s']}/s); peak RSS {peak_mb:.0f} MB; "
        f"{report['trades']} trades, reconciled={report['reconciled']}"
    )


if __name__ == "__main__":
    main()
