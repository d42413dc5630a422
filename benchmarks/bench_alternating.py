"""The whole `backtest` command of this tree against an earlier commit's, one after the other.

    .venv/bin/python -m benchmarks.bench_alternating --base fb7b73a --rounds 6   # the year

`bench_side_by_side` runs both at once, one per core, and compares CPU: right for work that
stays in one process. The command also uses the other core (its helper processes), so this
one runs the two commands alternately (which goes first switches each round) on an
otherwise idle machine and compares wall time,
as a user and `../shared/anchorbench` see it; CPU (user + sys, helpers included) and peak
RSS (the largest of the command's processes) are printed beside it. Each run is
`python -m quantum_trader backtest` over calendar 2025 of ../shared's futures with rule
signals and the simulated operator after a day (the second pass's command), the base's
`quantum_trader` first on PYTHONPATH (`bench_side_by_side.export`). Their reports must agree
but for the wall-time fields (`compare_reports`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_backtest import SHARED_FUTURES
from benchmarks.bench_side_by_side import ROOT, _environment, compiled, export
from benchmarks.compare_reports import compare
from benchmarks.scratch import scratch_dir

SETTINGS = {
    "QT_MARKET__REPLAY_DIR": str(SHARED_FUTURES),
    "QT_SIGNALS__SOURCE": "rules",
    "QT_BACKTEST__OPERATOR_RESET_AFTER": "86400",
}
WINDOW = ["--start", "2025-01-01", "--end", "2026-01-01"]


def one_run(tree: Path, out: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds and peak RSS (MB) of the command from `tree`, writing to `out`."""
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as empty:
        env = {**_environment(tree), **SETTINGS, "QT_DATA_DIR": data}
        command = [sys.executable, "-m", "quantum_trader", "backtest", *WINDOW, "--out", str(out)]
        started = time.perf_counter()
        run = subprocess.Popen(command, cwd=empty, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(run.pid, 0)
        wall = time.perf_counter() - started
    run.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if run.returncode != 0:
        raise SystemExit(f"the command from {tree} failed (exit {run.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    options = parser.parse_args()
    if not SHARED_FUTURES.is_dir():
        raise SystemExit(f"{SHARED_FUTURES}: not found (../shared/data is not part of the project)")
    base = export(options.base, scratch_dir("qt-alternating-"))
    compiled(ROOT)
    outputs = scratch_dir("qt-alternating-out-")
    ratios = []
    print("| round | base wall | this tree wall | ratio | CPU base / this | peak RSS base / this |")
    print("|---|---|---|---|---|---|")
    for number in range(1, options.rounds + 1):
        # Base first in odd rounds, this tree first in even ones: on a machine whose speed
        # drifts within minutes, a fixed order favours whichever runs first.
        order = [("base", base), ("this", ROOT)][:: 1 if number % 2 else -1]
        runs = {name: one_run(tree, outputs / f"{name}-{number}") for name, tree in order}
        (before, cpu_before, rss_before), (after, cpu_after, rss_after) = runs["base"], runs["this"]
        differ = compare(outputs / "base-1", outputs / f"this-{number}")
        if any("same" not in line for line in differ):
            raise SystemExit("the reports differ:\n" + "\n".join(differ))
        ratios.append(after / before)
        print(
            f"| {number} | {before:.2f} s | {after:.2f} s | {after / before:.3f} "
            f"| {cpu_before:.1f} / {cpu_after:.1f} s | {rss_before:.0f} / {rss_after:.0f} MB |"
        )
    print(f"median ratio {statistics.median(ratios):.3f} over {len(ratios)} rounds (reports agree)")


if __name__ == "__main__":
    main()
