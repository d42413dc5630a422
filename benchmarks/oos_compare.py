"""Backtests side by side in R after costs, with day-block bootstrap 95 % intervals.

Run: .venv/bin/python benchmarks/oos_compare.py LABEL=DIR [LABEL=DIR ...]
Each DIR is a `quantum-trader backtest --out DIR`; its `backtest.db` holds the closed trades
(R after fees and funding, as the backtest books them). Prints, per backtest: trades, mean R
[95 % CI], hit rate (R > 0) [95 % CI], total R, and return from report.json. Intervals
resample whole UTC days of trades (signals/evaluation.py), since trades of a day overlap.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from quantum_trader.signals.evaluation import trade_stats


def closed_trades(out_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(R multiples, close times in ms) of every closed trade of a backtest."""
    with sqlite3.connect(out_dir / "backtest.db") as db:
        rows = db.execute("select r_multiple, closed_at from closed_trades").fetchall()
    r = np.array([float(row[0]) for row in rows])
    ms = np.array(
        [int(datetime.fromisoformat(row[1]).timestamp() * 1000) for row in rows], dtype=np.int64
    )
    return r, ms


HEADER = (
    "| backtest | trades | mean R after costs [95 % CI] | hit rate [95 % CI] | total R",
    "| return |",
)


USAGE = "usage: oos_compare.py LABEL=DIR [LABEL=DIR ...]  (DIR: a `quantum-trader backtest --out`)"


def main(arguments: list[str]) -> int:
    """Print the table; 2 (with the usage line on stderr) when an argument is not LABEL=DIR."""
    if not arguments or any("=" not in argument for argument in arguments):
        print(USAGE, file=sys.stderr)
        return 2
    print(" ".join(HEADER))
    print("|---|---|---|---|---|---|")
    for argument in arguments:
        label, directory = argument.split("=", 1)
        out_dir = Path(directory)
        r, ms = closed_trades(out_dir)
        outcome = np.column_stack([r, r])
        stats = trade_stats(np.ones(r.shape[0], np.int8), outcome, ms, seed=7)
        report = json.loads((out_dir / "report.json").read_text())
        ret = report.get("return_pct", report.get("total_return_pct", float("nan")))
        m, h = stats.mean_r, stats.hit_rate
        print(
            f"| {label} | {stats.trades} | {m.value:+.3f} [{m.low:+.3f}, {m.high:+.3f}] "
            f"| {h.value:.1%} [{h.low:.1%}, {h.high:.1%}] | {stats.total_r:+.1f} | {ret:.2f} % |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
