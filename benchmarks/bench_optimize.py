"""`quantum-trader optimize`: trials per minute with 1 and with 2 worker processes.

    .venv/bin/python -m benchmarks.bench_optimize [--trials 6] [--rounds 2]

The same study (the space below, BTC and ETH, 2 folds of 3 days and a 3-day holdout ending
2025-10-14, seed 1) runs in a fresh SQLite store with 1 worker, then with 2, alternately,
`--rounds` times, so both see the same load on a shared machine. Trials per minute count the
trial phase only: from the first trial's start to the last trial's end as Optuna stored them
(the command's start-up, the market cuts and the holdout run are excluded, and reported as
the whole command's wall time). The load average is read before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import optuna

from benchmarks.scratch import scratch_dir

SPACE = """\
[space]
"orchestrator.min_confidence_trending" = { low = 0.10, high = 0.60 }
"sizing.stop_atr_multiple" = { low = 1.0, high = 3.0 }
"monitor.trail_mode_trend_follow" = { choices = ["AGGRESSIVE", "BALANCED", "LOOSE"] }
"""
STUDY = (
    "--symbols", "BTC/USDT:USDT,ETH/USDT:USDT", "--end", "2025-10-14", "--fold-days", "3",
    "--folds", "2", "--holdout-days", "3", "--objective", "return_over_drawdown", "--seed", "1",
)  # fmt: skip


def run(workers: int, trials: int) -> dict[str, float]:
    cwd = scratch_dir("qt-bench-optimize-")
    (cwd / "space.toml").write_text(SPACE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env["QT_DATA_DIR"] = str(cwd / "data")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    command = [sys.executable, "-m", "quantum_trader", "optimize", "--space", "space.toml"]
    command += ["--trials", str(trials), "--workers", str(workers), *STUDY]
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    storage = f"sqlite:///{cwd / 'data' / 'optimize' / 'studies.db'}"
    trials_done = optuna.load_study(study_name="optimize", storage=storage).get_trials()
    first = min(t.datetime_start for t in trials_done if t.datetime_start)
    last = max(t.datetime_complete for t in trials_done if t.datetime_complete)
    phase = (last - first).total_seconds()
    return {
        "workers": workers,
        "trials": len(trials_done),
        "trial_phase_s": round(phase, 1),
        "trials_per_min": round(len(trials_done) / phase * 60, 2),
        "command_wall_s": round(wall, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for _ in range(options.rounds):
        for workers in (1, 2):
            row = run(workers, options.trials)
            rows.append(row)
            print(json.dumps(row), flush=True)
    ratios = [
        two["trials_per_min"] / one["trials_per_min"]
        for one, two in zip(rows[::2], rows[1::2], strict=True)
    ]
    print(json.dumps({"speed-up 2 vs 1 worker per round": [round(r, 2) for r in ratios],
                      "median": round(statistics.median(ratios), 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
