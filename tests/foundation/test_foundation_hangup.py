"""A closed terminal (an SSH session dropped) sends SIGHUP to the whole process group: the batch
commands stop in the order SIGTERM gives them, their helper processes leave it to them, and
under `nohup` the hangup stays ignored. Was (2026-12-04): `backtest`, `walk-forward`, `train`
and `optimize` died on the spot, exit 129, with no line saying what was kept. (`run`:
test_foundation_lifecycle.py; `train`: test_ml_integration.py; `optimize`:
test_optimize_hangup.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env
from daemon_harness import as_a_terminal_job, eventually

from quantum_trader.helper_process import FALLBACK_WARNINGS

pytestmark = pytest.mark.slow
SYMBOLS = "BTC/USDT:USDT,ETH/USDT:USDT"
STOPPED = (
    "error: stopped before the end: nothing was written, the output directory keeps its "
    "previous contents"
)


def backtest(out: Path, end: str, *, nohup: bool = False) -> subprocess.Popen[str]:
    clean = child_env()
    window = ["--start", "2025-09-15", "--end", end, "--symbols", SYMBOLS, "--out", str(out)]
    return as_a_terminal_job(
        [sys.executable, "-m", "quantum_trader", "backtest", *window],
        out.parent,
        {**clean, "QT_DATA_DIR": str(out.parent / "data"), "QT_SIGNALS__SOURCE": "rules"},
        nohup=nohup,
    )


def hang_up_once_replaying(run: subprocess.Popen[str], out: Path) -> None:
    eventually(
        lambda: run.poll() is not None or next(out.parent.glob(".report.partial-*/*.db"), None),
        120,
        "the backtest replaying into its partial directory",
    )
    os.killpg(run.pid, signal.SIGHUP)


def test_a_hangup_stops_a_backtest_as_sigterm_does(tmp_path: Path) -> None:
    out = tmp_path / "report"
    run = backtest(out, "2025-10-15")
    hang_up_once_replaying(run, out)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr[-3000:]
    assert [x for x in stderr.splitlines() if not x.startswith("{")] == [STOPPED]
    assert not any(name in stderr for name in FALLBACK_WARNINGS)  # helpers left it to it
    assert list(tmp_path.iterdir()) == []  # no output, no partial directory


def test_under_nohup_a_hangup_is_ignored_and_the_backtest_finishes(tmp_path: Path) -> None:
    out = tmp_path / "report"
    run = backtest(out, "2025-09-18", nohup=True)
    hang_up_once_replaying(run, out)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    assert '"start": "2025-09-15' in (out / "report.json").read_text()


def test_a_hangup_stops_a_walk_forward_once_its_block_is_trained(tmp_path: Path) -> None:
    out = tmp_path / "wf"
    clean = child_env()
    tiny = {  # ml_fixtures.TINY: a block trains in seconds
        "QT_ENSEMBLE__TREE_ROUNDS": "15",
        "QT_ENSEMBLE__FORECASTER_STEPS": "10",
        "QT_ENSEMBLE__TORCH_THREADS": "1",
        "QT_ENSEMBLE__WALK_FORWARD_FOLDS": "3",
        "QT_ENSEMBLE__VALIDATION_FRACTION": "0.5",
        "QT_ENSEMBLE__EMBARGO_H": "8",
    }
    window = ["--start", "2025-09-20", "--end", "2025-10-02", "--symbols", SYMBOLS]
    blocks = ["--block-days", "4", "--training-days", "7", "--out", str(out)]
    run = as_a_terminal_job(
        [sys.executable, "-m", "quantum_trader", "walk-forward", *window, *blocks],
        tmp_path,
        {**clean, **tiny, "QT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"},
    )
    assert run.stdout is not None
    lines = iter(run.stdout.readline, "")
    assert any(line.startswith("block 1/3: training") for line in lines)
    os.killpg(run.pid, signal.SIGHUP)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr[-3000:]
    assert [x for x in stderr.splitlines() if not x.startswith("{")] == [STOPPED]
    assert list(tmp_path.iterdir()) == []  # no output, no partial directory
