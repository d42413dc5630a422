"""`benchmarks/oos_compare.py`, the command docs/VALIDATION.md runs to build its tables: the
return column as the tables print it (it printed report.json's raw float), and a usage line
instead of a traceback for `--help` or an argument that is not LABEL=DIR."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "oos_compare.py"


def compare(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def backtest_dir(path: Path, r_multiples: list[float], return_pct: float) -> Path:
    """A directory as `backtest --out` leaves it, reduced to what the script reads."""
    path.mkdir()
    with sqlite3.connect(path / "backtest.db") as db:
        db.execute("create table closed_trades (r_multiple text, closed_at text)")
        db.executemany(
            "insert into closed_trades values (?, ?)",
            [
                (str(r), f"2025-12-{day + 1:02d}T12:00:00+00:00")
                for day, r in enumerate(r_multiples)
            ],
        )
    (path / "report.json").write_text(json.dumps({"return_pct": return_pct}))
    return path


def test_a_row_prints_the_return_as_the_validation_tables_do(tmp_path: Path) -> None:
    out = backtest_dir(tmp_path / "rules", [1.0, -1.0, -1.0, 0.5], -5.0592)
    done = compare(f"rule agent={out}")
    assert done.returncode == 0, done.stderr
    header, _rule, row = done.stdout.strip().splitlines()
    assert header.startswith("| backtest | trades |")
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[0] == "rule agent"
    assert cells[1] == "4"
    assert cells[4] == "-0.5"
    assert cells[5] == "-5.06 %"


def test_help_or_an_argument_without_a_label_prints_the_usage_and_exits_2(tmp_path: Path) -> None:
    for arguments in (("--help",), (str(tmp_path),), ()):
        done = compare(*arguments)
        assert done.returncode == 2, arguments
        assert done.stderr.startswith("usage: oos_compare.py LABEL=DIR"), done.stderr
        assert "Traceback" not in done.stderr
