"""The backtest command's phases, and where its replay waits instead of running.

    .venv/bin/python -m benchmarks.bench_phases                         # the year of SPEC §11
    .venv/bin/python -m benchmarks.bench_phases --start 2025-12-01 --window 500

Runs `quantum-trader backtest` in this process with the second pass's settings (rule signals,
the simulated operator after a day, ../shared's futures, a fresh data directory) and marks
around its phases: when each began, its wall time and the main thread's CPU in it (the
imports from this script's start, after the interpreter's own and the few standard modules
it needs first). Then the
replay by windows of steps: wall time less the main thread's CPU is time it did not run,
either waiting (voluntary context switches: a lock, a pipe, a thread) or preempted by
another process (involuntary), counted with `getrusage(RUSAGE_THREAD)` (Linux). The
fourteenth pass found the replay's lost first second so (docs/BENCHMARKS.md). The marks cost
microseconds; the command's own helper processes run as they do for a user.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import sys
import tempfile
import threading
import time
from typing import Any

from benchmarks.wrapping import around  # the standard library alone: before the clock

STARTED = time.perf_counter()  # the imports of the command are timed from here

Mark = tuple[str, float, float, float | None]  # label, start, end, the main thread's CPU
MARKS: list[Mark] = []
MAIN = threading.get_ident()


def marked(owner: Any, name: str, label: str) -> None:
    """Replace `owner.name` by the same callable that records a Mark around each call."""

    def end(begun: tuple[float, float]) -> None:
        start, cpu = begun
        spent = time.thread_time() - cpu if threading.get_ident() == MAIN else None
        MARKS.append((label, start - STARTED, time.perf_counter() - STARTED, spent))

    around(owner, name, lambda: (time.perf_counter(), time.thread_time()), end)


Sample = tuple[float, float, int, int]  # wall, thread CPU, voluntary and involuntary switches


def sample() -> Sample:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return time.perf_counter(), time.thread_time(), usage.ru_nvcsw, usage.ru_nivcsw


def sampled_every(steps: int, samples: list[Sample]) -> None:
    """Sample the main thread every `steps` replay steps (`check_stop` runs once a step)."""
    from quantum_trader import backtest

    check_stop, count = backtest.check_stop, [0]

    def counted(stopping: asyncio.Event) -> None:
        if count[0] % steps == 0:
            samples.append(sample())
        count[0] += 1
        check_stop(stopping)

    backtest.check_stop = counted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2026-01-01")
    parser.add_argument("--window", type=int, default=2000, help="steps per sample")
    options = parser.parse_args()
    from quantum_trader import backtest, cli
    from quantum_trader.market.correlations_aside import CorrelationsAside
    from quantum_trader.report import build, chart_process, publish
    from quantum_trader.storage.split import SplitRepository

    MARKS.append(("imports (to the CLI)", 0.0, time.perf_counter() - STARTED, None))
    from benchmarks.bench_alternating import SETTINGS

    for owner, name, label in (
        (backtest, "prepare_replay", "loading the market"),
        (backtest, "recorded_model", "the market model (worker thread)"),
        (CorrelationsAside, "start", "the correlation process started"),
        (backtest, "assemble", "the core assembled"),
        (backtest, "_replay", "the replay"),
        (backtest, "held_for_charts", "the charts' records, as held"),
        (backtest, "held_run", "the run's records, as held"),
        (chart_process.ChartProcess, "send", "the charts sent"),
        (SplitRepository, "save_ledger", "saving the ledger"),
        (backtest, "write_report", "the report"),
        (build, "build_report", "  the report's figures"),
        (publish, "_page", "  the page (worker thread)"),
        (chart_process.ChartProcess, "answer", "  waiting for the charts"),
    ):
        marked(owner, name, label)
    samples: list[Sample] = []
    sampled_every(options.window, samples)
    os.environ.update(SETTINGS)
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as out:
        os.environ["QT_DATA_DIR"] = data
        sys.argv = ["quantum-trader", "backtest", "--start", options.start, "--end"]
        sys.argv += [options.end, "--out", f"{out}/report"]
        try:
            cli.main()
        except SystemExit as exit_:
            if exit_.code:
                raise
    ended = time.perf_counter() - STARTED
    print("| phase | began | wall | main thread CPU |\n|---|---|---|---|")
    for label, start, end, cpu in sorted(MARKS, key=lambda m: m[1]):
        spent = f"{cpu:.3f} s" if cpu is not None else "-"
        print(f"| {label} | {start:.3f} s | {end - start:.3f} s | {spent} |")
    print(f"| the whole command | 0 | {ended:.3f} s | - |")
    print(f"\nThe replay by {options.window} steps: not running (wall - CPU), switches vol/invol")
    waits = [
        (w1 - w0 - (c1 - c0), v1 - v0, i1 - i0)
        for (w0, c0, v0, i0), (w1, c1, v1, i1) in itertools.pairwise(samples)
    ]
    for index, (lost, voluntary, involuntary) in enumerate(waits):
        if lost >= 0.005:
            print(f"steps {index * options.window:>7,}+: {lost:.3f} s, {voluntary}/{involuntary}")
    print(f"in all {sum(w[0] for w in waits):.3f} s over {len(waits)} windows")


if __name__ == "__main__":
    main()
