"""`--workers` is capped at the cores this process may use: `--workers 64` on 2 cores started
64 processes, each holding a backtest (≈ 400 MB), to share 2 cores (probe of 2026-12-03)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optimize_builders import ONE_FOLD, optimize_cli, write_space

from quantum_trader.optimize.study import cap_workers, memory_warning, usable_cores


def test_more_workers_than_cores_are_capped_at_the_cores_with_one_line() -> None:
    assert cap_workers(64, 2) == (
        2,
        "optimize: --workers 64 capped at 2, the cores this process may use (a trial is a "
        "CPU-bound backtest; each worker is a process of ≈ 400 MB)",
    )
    assert cap_workers(2, 2) == (2, None)
    assert cap_workers(1, 8) == (1, None)


def test_workers_that_may_not_fit_in_memory_are_said_not_capped() -> None:
    assert memory_warning(4, 1_000_000_000) == (
        "optimize: 4 workers need ≈ 1600 MB (400 MB each), 1000 MB of memory is available "
        "now; fewer --workers if the system swaps"
    )
    assert memory_warning(4, 2_000_000_000) is None
    assert memory_warning(1, 1_000) is None  # one worker runs in the command's own process


@pytest.mark.slow
def test_the_command_caps_workers_and_says_so(tmp_path: Path) -> None:
    asked = usable_cores() + 62
    args = ("--space", str(write_space(tmp_path)), "--trials", "1", "--seed", "3", *ONE_FOLD)
    done = optimize_cli(tmp_path, *args, "--workers", str(asked))
    assert done.returncode == 0, done.stderr[-3000:]
    capped = [line for line in done.stderr.splitlines() if "capped" in line]
    assert capped == [cap_workers(asked, usable_cores())[1]]
    results = json.loads((tmp_path / "optimize" / "best.results.json").read_text())
    assert sum(results["trials"].values()) == 1
