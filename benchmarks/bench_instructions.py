"""The replay's instructions, counted: a measure of a small change that the machine's noise
cannot hide.

    .venv/bin/python -m benchmarks.bench_instructions                  # this tree, 2 weeks
    .venv/bin/python -m benchmarks.bench_instructions --base 35220d7   # and against a commit
    .venv/bin/python -m benchmarks.bench_instructions --start 2025-06-01 --end 2025-07-01

Wall and CPU time on this machine move by more than a 1 % change from one round to the next
(`bench_side_by_side` shows 0.93–1.02 for the same code), so passes up to the forty-eighth
reverted exact cuts of ≈ 0.5–1.5 % each as "within the noise". Valgrind's callgrind counts
the instructions the interpreter executes instead: the same code on the same inputs gives
about the same count whatever else the machine does (two whole runs of one tree 6 M apart;
an export of HEAD against the working tree, each less its first day, 3,393.7 M against
3,405.4 M: 0.35 % of the replay, on a loaded machine; the scratch paths and the collector's
moments differ). Each figure is `bench_replay_parts --untimed` over
the window less the same over its first day, so the command's start (imports, the market
read, the model over the year: ≈ 10 G instructions) drops out and what remains is the replay
of the window's other days and what grows with them (the report's charts a little). With
--base the base's `quantum_trader` (exported as `bench_side_by_side` does) is counted too,
two runs at a time, one per core. Also prints whether the window's results agree
(`bench_replay_parts`' fingerprint). Under callgrind a run is ≈ 40 × slower: the default two
weeks take ≈ 5 minutes for one tree, ≈ 10 with --base. Needs valgrind and ../shared/data.
--whole counts the window's run alone (the start included, one run a tree): enough to compare
two trees whose start is the same.
Instructions are not seconds (cache misses and branch mispredictions weigh differently), so a
change's worth is confirmed on the year by `bench_side_by_side`, whose rounds agree better
with many of them together.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from benchmarks.bench_side_by_side import PRINT, ROOT, _environment, compiled, export
from benchmarks.scratch import scratch_dir

COLLECTED = re.compile(r"Collected : (\d+)")


def counted(tree: Path, start: str, end: str) -> tuple[int, list[str]]:
    """Instructions of `bench_replay_parts --untimed` from `start` to `end` with `tree`'s
    quantum_trader, and the results' fingerprint lines."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.bench_replay_parts",
        "--untimed",
        f"--start={start}",
        f"--end={end}",
    ]
    # A fixed hash seed: set and dict orders (and so some work) are the same every run. One
    # OpenBLAS thread: its idle threads spin after a call, and callgrind counts every thread's
    # instructions (±250 k a small count moved by them, a fiftieth-pass helper found).
    environment = {**_environment(tree), "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as empty:
        run = subprocess.run(command, cwd=empty, env=environment, capture_output=True, text=True)
    found = COLLECTED.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"a counted run failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    return int(found.group(1)), PRINT.findall(run.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", help="a commit to count too")
    parser.add_argument("--start", default="2025-03-01")
    parser.add_argument("--end", default="2025-03-15")
    parser.add_argument(
        "--whole", action="store_true", help="the window's run only, its start included (faster)"
    )
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: install it (Debian: apt-get install valgrind)")
    first_day = (date.fromisoformat(options.start) + timedelta(days=1)).isoformat()
    trees = {"this tree": compiled(ROOT)}
    if options.base:
        trees = {f"base {options.base}": export(options.base, scratch_dir("qt-count-")), **trees}
    ends = (options.end,) if options.whole else (first_day, options.end)
    jobs = [(name, tree, end) for name, tree in trees.items() for end in ends]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda job: counted(job[1], options.start, job[2]), jobs))
    replays = {}
    print(f"{options.start} → {options.end}, {'whole' if options.whole else 'less its first day'}")
    print("| tree | instructions |\n|---|---|")
    for at, name in enumerate(trees):
        day = 0 if options.whole else runs[len(ends) * at][0]
        window, prints = runs[len(ends) * at + len(ends) - 1]
        replays[name] = (window - day, prints)
        print(f"| {name} | {window - day:,} |")
    if options.base:
        (before, base_prints), (after, prints) = replays.values()
        same = prints == base_prints
        print(f"ratio {after / before:.4f} (this tree ÷ base); same results: {same}")


if __name__ == "__main__":
    main()
