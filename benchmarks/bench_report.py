"""The backtest's report phase alone (read backtest.db, build the report, write report.json,
report.html and charts/*.png), this tree against another commit, alternating on one saved run.

    .venv/bin/python -m benchmarks.bench_report                  # 30 days x 8 symbols, bundled
    .venv/bin/python -m benchmarks.bench_report --shared-year    # calendar 2025, 8 x 5m
    .venv/bin/python -m benchmarks.bench_report --run DIR --against main --rounds 7
    .venv/bin/python -m benchmarks.bench_report --run DIR --against HEAD~1 --new HEAD

The run is replayed once (`--run DIR` keeps it in DIR, or reuses it when DIR already holds
backtest.db and context.pkl). `--against REF` (and `--new REF`, else this tree) is exported
with `git archive` and imported in place of this tree's package. Each round runs the report
phase once per tree, in a fresh process each (the command writes one report per process:
first-call costs such as font loading count), alternating which tree goes first; printed are
the medians per part and new/old. The outputs of every process are then compared with the
first one's (benchmarks.compare_reports): the run's context is the same, so even the
wall-time fields must match.

--shared-year needs ../shared/data (not part of the project).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from benchmarks.bench_backtest import SHARED_FUTURES
from benchmarks.bench_side_by_side import compiled
from benchmarks.compare_reports import compare
from benchmarks.scratch import scratch_dir

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("load", "build", "write", "report")

# Replays the window into DIR/backtest.db and keeps the report's context in DIR/context.pkl.
PREPARE = """
import asyncio, pickle, sys
from datetime import datetime
from pathlib import Path
import uvloop
from quantum_trader.backtest import BacktestRequest, prepare_replay, replay_into
from quantum_trader.config import Settings
from quantum_trader.log import configure_logging

run, start, end = Path(sys.argv[1]), *(datetime.fromisoformat(a) for a in sys.argv[2:4])
settings = Settings()
configure_logging(settings.log.format, "ERROR")
request = BacktestRequest(start=start, end=end, out_dir=run)
settings, replay = prepare_replay(settings, request)
context = uvloop.run(replay_into(settings, replay, run, asyncio.Event())).context
(run / "context.pkl").write_bytes(pickle.dumps(context))
"""

# The report phase as `backtest.write_report` runs it, timed part by part; prints JSON.
REPORT = """
import asyncio, json, pickle, sys, time
from pathlib import Path
import uvloop
from quantum_trader.report.build import build_report
from quantum_trader.report.load import load_run
from quantum_trader.report.publish import send_charts, write_outputs

run, out = Path(sys.argv[1]), Path(sys.argv[2])
context = pickle.loads((run / "context.pkl").read_bytes())

async def main():
    t0 = time.perf_counter()
    data = await load_run(run / "backtest.db")
    t1 = time.perf_counter()
    report = build_report(data, context)
    t2 = time.perf_counter()
    await write_outputs(report, await send_charts(data, context), out)
    t3 = time.perf_counter()
    return {"load": t1 - t0, "build": t2 - t1, "write": t3 - t2, "report": t3 - t0}

print(json.dumps(uvloop.run(main())))
"""


def prepare(run: Path, shared_year: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env |= {
        "QT_SIGNALS__SOURCE": "rules",
        "QT_DATA_DIR": str(scratch_dir("qt-bench-data-")),
        "QT_BACKTEST__OPERATOR_RESET_AFTER": "86400",
    }
    window = ["2025-09-10T00:00:00+00:00", "2025-10-10T00:00:00+00:00"]
    if shared_year:
        env["QT_MARKET__REPLAY_DIR"] = str(SHARED_FUTURES)
        window = ["2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"]
    run.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", PREPARE, str(run), *window], env=env, check=True, cwd=ROOT
    )


def export(ref: str, into: Path) -> Path:
    """The package as committed at `ref`, in `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "quantum_trader"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return compiled(into)


def report_once(tree: Path, run: Path, out: Path) -> dict[str, float]:
    """One report phase in a fresh process that imports the package from `tree`."""
    out.mkdir(parents=True)
    env = os.environ | {"PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", REPORT, str(run), str(out)],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared-year", action="store_true")
    parser.add_argument("--run", type=Path, help="keep (or reuse) the replayed run here")
    parser.add_argument("--against", default="main", help="the commit to compare with")
    parser.add_argument("--new", help="a commit to measure instead of this tree")
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    if options.shared_year and not SHARED_FUTURES.is_dir():
        print(f"skipped: {SHARED_FUTURES} not present")
        return 0
    work = Path(tempfile.mkdtemp(prefix="qt-bench-report-"))
    run = options.run or work / "run"
    if not (run / "backtest.db").is_file() or not (run / "context.pkl").is_file():
        prepare(run, options.shared_year)
    new = export(options.new, work / "new") if options.new else compiled(ROOT)
    trees = {"old": export(options.against, work / "old"), "new": new}
    times: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for round_ in range(options.rounds):
        order = ["old", "new"] if round_ % 2 == 0 else ["new", "old"]
        for side in order:
            times[side].append(report_once(trees[side], run, work / "out" / f"{side}-{round_}"))
    _print_medians(times, options.against, options.new or "this tree", options.rounds)
    if _print_comparison(work, options.rounds):
        print(f"outputs kept in {work / 'out'}")
        return 1
    shutil.rmtree(work)  # 60 MB a run on the year: the exported trees and every output
    return 0


def _print_medians(
    times: dict[str, list[dict[str, float]]], against: str, measured: str, rounds: int
) -> None:
    print(f"median of {rounds} rounds, seconds (old = {against}, new = {measured})")
    for part in PARTS:
        old = statistics.median(t[part] for t in times["old"])
        new = statistics.median(t[part] for t in times["new"])
        print(f"  {part:<7} old {old:.3f}  new {new:.3f}  new/old {new / old:.2f}")
    for side in ("old", "new"):
        print(
            f"  {side} report, each round: " + " ".join(f"{t['report']:.3f}" for t in times[side])
        )


def _print_comparison(work: Path, rounds: int) -> int:
    reference = work / "out" / "old-0"
    failures = 0
    for side in ("old", "new"):
        for round_ in range(rounds):
            if (side, round_) == ("old", 0):
                continue
            lines = compare(reference, work / "out" / f"{side}-{round_}")
            failures += sum(": same" not in line for line in lines)
    print(f"outputs of all {2 * rounds} processes identical to old round 0: {failures == 0}")
    if failures:
        print("\n".join(compare(reference, work / "out" / "new-0")))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
