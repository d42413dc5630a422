"""A closed terminal sends SIGHUP to the whole process group (the command and its workers):
a study stops as SIGTERM stops it, with its one line and exit 1 (was: exit 129 on the spot,
its cut copies of the market left in the temporary directory)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from daemon_harness import as_a_terminal_job, eventually
from optimize_builders import ONE_FOLD, clean_env, optimize_command, write_space


@pytest.mark.slow
def test_a_hangup_stops_a_study_as_sigterm_does(tmp_path: Path) -> None:
    space = write_space(tmp_path)
    args = ("--space", str(space), "--trials", "4", "--seed", "2", *ONE_FOLD)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    run = as_a_terminal_job(
        optimize_command(*args), tmp_path, {**clean_env(tmp_path), "TMPDIR": str(temporary)}
    )
    eventually(
        lambda: run.poll() is not None or any(temporary.glob("qt-optimize-*/runs/*")),
        180,
        "a trial's backtest",
    )
    os.killpg(run.pid, signal.SIGHUP)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert last.startswith("error: interrupted with "), stderr[-3000:]
    assert last.endswith("rerun the same command (--study optimize) to resume")
    assert list(temporary.iterdir()) == []  # its scratch copies of the market removed
