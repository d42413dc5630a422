"""The quick benchmarks, one after another, each in its own process (`make bench`).

    .venv/bin/python -m benchmarks.run_all

Runs the component benchmarks of docs/BENCHMARKS.md whose inputs ship with the project (no
trained models, no ../shared/data, no hours-long soak); those others are listed at the end
with the command that runs them. Each benchmark prints its own figures; a failing one is
reported and the rest still run, and the exit code is 1 if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time

QUICK: tuple[tuple[str, ...], ...] = (
    ("benchmarks.bench_chain",),
    ("benchmarks.bench_sizing",),
    ("benchmarks.bench_monitor",),
    ("benchmarks.bench_paper",),
    ("benchmarks.bench_storage",),
    ("benchmarks.bench_open_check", "--decisions", "200000"),
    ("benchmarks.bench_backtest",),
    ("benchmarks.bench_request_weight", "--minutes", "2"),
)

BY_HAND = (
    "python -m benchmarks.bench_backtest --shared-year      # needs ../shared/data",
    "python -m benchmarks.bench_scaling                     # needs ../shared/data",
    "python -m benchmarks.bench_replay_parts                # needs ../shared/data",
    "python -m benchmarks.spy_shares RAW                    # a py-spy profile: see its doc",
    "python -m benchmarks.bench_side_by_side --base REV     # needs ../shared/data, 2 cores",
    "python -m benchmarks.bench_instructions --base REV     # instructions counted, valgrind",
    "python -m benchmarks.enum_reads                        # enum members read by class",
    "python -m benchmarks.bench_alternating --base REV      # the whole command, old vs new",
    "python -m benchmarks.bench_phases                      # the command's phases and waits",
    "python -m benchmarks.bench_report --against REV        # the report phase, old vs new",
    "python -m benchmarks.compare_reports OUT_A OUT_B       # two reports, byte for byte",
    "python -m benchmarks.bench_ml_training --days 90       # minutes of training",
    "python -m benchmarks.bench_ml_inference --models DIR   # needs trained models",
    "python -m benchmarks.bench_ml_daemon_rss --models DIR  # needs trained models",
    "python -m benchmarks.bench_daemon --speed 600 --cycles 1000",
    "python -m benchmarks.bench_soak --hours 24             # hours",
)


def main() -> int:
    failed: list[str] = []
    for module, *args in QUICK:
        print(f"\n== {module} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", module, *args], check=False).returncode
        print(f"-- {module}: exit {code}, {time.perf_counter() - started:.1f} s", flush=True)
        if code != 0:
            failed.append(module)
    print("\nNot run here (inputs or time they need):")
    for line in BY_HAND:
        print(f"  {line}")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
