"""The backtest of this tree against an earlier commit's, run at the same time, round by round.

    .venv/bin/python -m benchmarks.bench_side_by_side --base 2f86337   # the year, 5 rounds
    .venv/bin/python -m benchmarks.bench_side_by_side --base HEAD~3 --rounds 8 --bundled

This machine's speed moves by a third within minutes, so one run against another measured an
hour apart says little. Here each round starts both at once, one on each core, and compares
the CPU each spent: two runs side by side see the same machine. Each is `bench_replay_parts
--untimed` (in process, rule signals, the simulated operator after a day) with the base's
`quantum_trader` first on PYTHONPATH (exported with `git archive`), the benchmark script being
this tree's. It prints each round's CPU, their ratio (this tree ÷ the base) and whether the two
result databases' fingerprints agree; the median ratio last. Needs ../shared/data unless
--bundled, and two idle cores.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.scratch import scratch_dir

ROOT = Path(__file__).resolve().parent.parent
CPU = re.compile(r"([0-9.]+) s CPU in all")
PRINT = re.compile(r"^\w+: [0-9,]+ rows, [0-9a-f]{12}$", re.MULTILINE)


def export(revision: str, into: Path) -> Path:
    """`quantum_trader` as it was at `revision`, in a folder of its own."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "quantum_trader"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return compiled(into)


def compiled(tree: Path) -> Path:
    """`tree` with its package's bytecode written, as an install leaves it: a run of a tree
    without it compiles every module it imports first (and with PYTHONDONTWRITEBYTECODE set,
    every time), which a tree just exported pays and a working tree mostly does not."""
    command = [sys.executable, "-m", "compileall", "-q", str(tree / "quantum_trader")]
    subprocess.run(command, check=True)
    return tree


def _command(window: list[str]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bench_replay_parts", "--untimed", *window]


def _environment(first: Path) -> dict[str, str]:
    """This environment but for settings of ours, with `first`'s quantum_trader found first
    (the benchmark runs from an empty folder, so the current one does not come before it)."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("QT_")}
    return {**kept, "PYTHONPATH": f"{first}{os.pathsep}{ROOT}"}


def _cpu(output: str) -> float:
    found = CPU.search(output)
    if found is None:
        raise SystemExit(f"a run printed no CPU figure:\n{output[-2000:]}")
    return float(found.group(1))


def one_round(base: Path, window: list[str]) -> tuple[float, float, bool]:
    """CPU of the base and of this tree, started together, and whether their results agree."""
    with tempfile.TemporaryDirectory() as empty:
        runs = [
            subprocess.Popen(
                _command(window),
                cwd=empty,
                env=_environment(tree),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for tree in (base, ROOT)
        ]
        outputs = [run.communicate()[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        if run.returncode != 0:
            raise SystemExit(f"a run failed (exit {run.returncode}):\n{output[-2000:]}")
    prints = [PRINT.findall(output) for output in outputs]
    return _cpu(outputs[0]), _cpu(outputs[1]), prints[0] == prints[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--start")
    parser.add_argument("--end")
    parser.add_argument("--bundled", action="store_true", help="the bundled sample's futures")
    options = parser.parse_args()
    window = [f"--{name}={value}" for name in ("start", "end") if (value := getattr(options, name))]
    window += ["--bundled"] if options.bundled else []
    base = export(options.base, scratch_dir("qt-side-by-side-"))
    compiled(ROOT)
    ratios = []
    print("| round | base CPU | this tree CPU | ratio | same results |\n|---|---|---|---|---|")
    for number in range(1, options.rounds + 1):
        before, after, same = one_round(base, window)
        ratios.append(after / before)
        print(f"| {number} | {before:.1f} s | {after:.1f} s | {after / before:.3f} | {same} |")
    print(f"median ratio {statistics.median(ratios):.3f} over {len(ratios)} rounds")


if __name__ == "__main__":
    main()
