"""A backtest's outputs are replaced whole or not at all: a stopped or failed run leaves the
previous outputs exactly as they were, and a directory of other files is never replaced."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from child_env import child_env
from daemon_harness import eventually

from quantum_trader.errors import ConfigurationError
from quantum_trader.report.outputs import MARKER, staged_output

SYMBOLS = "BTC/USDT:USDT,ETH/USDT:USDT"


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` (relative name → sha256)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def fail_halfway(out: Path) -> None:
    with staged_output(out) as work:
        (work / "report.json").write_text("half")
        raise RuntimeError("the run failed")


def test_a_failed_run_leaves_the_previous_outputs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with staged_output(out) as work:
        (work / "report.json").write_text("old")
    before = snapshot(out)
    with pytest.raises(RuntimeError):
        fail_halfway(out)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_finished_run_replaces_the_outputs_whole(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with staged_output(out) as work:
        (work / "report.html").write_text("old")  # an output the new run does not write
    with staged_output(out) as work:
        (work / "report.json").write_text("new")
    assert sorted(snapshot(out)) == [MARKER, "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_swap_cut_short_by_a_kill_is_finished_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with staged_output(out) as work:
        (work / "report.json").write_text("old")
    out.rename(tmp_path / ".report.previous")  # killed between the two renames
    with pytest.raises(RuntimeError), staged_output(out):
        raise RuntimeError("this run fails too")
    assert (out / "report.json").read_text() == "old"


@pytest.mark.parametrize("name", ["data", "notes.txt"])
def test_a_directory_of_other_files_is_never_replaced(tmp_path: Path, name: str) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("precious")
    with pytest.raises(ConfigurationError, match="not a backtest's outputs"), staged_output(out):
        pass
    assert (out / name).read_text() == "precious"


def test_an_output_directory_that_cannot_be_made_is_one_configuration_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / "a-file" / "report"  # refused to root as well, unlike a permission
    with pytest.raises(ConfigurationError) as refused, staged_output(out):
        pass
    (line,) = refused.value.problems
    assert line.startswith(f"--out {out}: cannot write there (")
    assert line.endswith("choose a directory you can write to")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize(
    "added", ["important.txt", "mywork/notes", "charts/notes.txt", "models/notes.txt", "charts.png"]
)
def test_a_file_put_beside_earlier_outputs_is_never_replaced(tmp_path: Path, added: str) -> None:
    out = tmp_path / "report"
    with staged_output(out) as work:  # an earlier run's outputs, with the marker
        (work / "report.json").write_text("old")
        (work / "charts").mkdir()
        (work / "charts" / "equity.png").write_bytes(b"png")
    (out / added).parent.mkdir(parents=True, exist_ok=True)
    (out / added).write_text("precious")
    before = snapshot(out)
    with pytest.raises(ConfigurationError) as refused, staged_output(out):
        pass
    (line,) = refused.value.problems
    assert (
        f"not a backtest's outputs ({added.split('/')[0] if added.startswith('mywork') else added})"
        in line
    )
    assert snapshot(out) == before


def test_a_walk_forwards_models_are_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with staged_output(out) as work:
        (work / "models" / "block-01").mkdir(parents=True)
        (work / "models" / "block-01" / "manifest.json").write_text("{}")
    with staged_output(out) as work:
        (work / "report.json").write_text("new")
    assert sorted(snapshot(out)) == [MARKER, "report.json"]


def test_the_working_directory_is_never_replaced(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="working directory"), staged_output(Path(".")):
        pass


def test_a_run_into_outputs_another_run_is_writing_is_refused_naming_it(tmp_path: Path) -> None:
    """Was (two backtests with one --out, found by an outside-style probe): the later swap
    failed with a traceback, `OSError: [Errno 39] Directory not empty`, exit 1, its partial
    directory left, or its recovery put one run's old outputs back under the other's swap."""
    out = tmp_path / "report"
    clean = child_env()
    with staged_output(out) as work:
        (work / "report.json").write_text("first")
        done = subprocess.run(
            [sys.executable, "-m", "quantum_trader", "backtest", "--out", str(out)],
            env={**clean, "QT_DATA_DIR": str(tmp_path / "data")},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if not x.startswith("{")]
    assert line == (
        f"configuration error: --out {out}: another backtest or walk-forward (PID "
        f"{os.getpid()}) is writing there; wait for it to finish, or choose another directory"
    )
    assert (out / "report.json").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def backtest(out: Path, start: str, end: str, symbols: str) -> subprocess.Popen[str]:
    clean = child_env()
    window = ["--start", start, "--end", end, "--symbols", symbols, "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "quantum_trader", "backtest", *window],
        env={**clean, "QT_DATA_DIR": str(out.parent / "data"), "QT_SIGNALS__SOURCE": "rules"},
        cwd=out.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigterm_during_a_real_backtest_keeps_the_complete_old_outputs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    first = backtest(out, "2025-09-20", "2025-09-22", SYMBOLS)
    assert first.wait(120) == 0, first.communicate()[1]
    old = snapshot(out)
    assert {"report.json", "report.html", "backtest.db", "charts/equity.png"} <= set(old)

    second = backtest(out, "2025-09-15", "2025-10-15", "BTC/USDT:USDT,ETH/USDT:USDT,SOL/USDT:USDT")
    partial = eventually(
        lambda: next(iter(tmp_path.glob(".report.partial-*/backtest.db")), None),
        120,
        "the second backtest replaying into its partial directory",
    )
    second.send_signal(signal.SIGTERM)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 1, stderr
    assert "stopped before the end" in stderr
    assert snapshot(out) == old  # the complete old outputs, not a byte changed
    assert not partial.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.slow
def test_ctrl_c_after_the_replay_still_leaves_complete_new_outputs(tmp_path: Path) -> None:
    # The report's files exist in the partial directory for ≈ 20 ms before the swap: poll
    # fast, and start again (up to ATTEMPTS runs) when a run swaps before the poll saw them.
    for attempt in range(ATTEMPTS):
        out = tmp_path / f"attempt-{attempt}" / "report"
        out.parent.mkdir()
        run = backtest(out, "2025-09-20", "2025-09-21", SYMBOLS)
        if _writing_its_report(run, out):
            break
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr  # finished before the poll caught it
    else:
        pytest.fail(f"no run of {ATTEMPTS} was caught writing its report")
    run.send_signal(signal.SIGINT)  # the replay is over: the run finishes its outputs
    _, stderr = run.communicate(timeout=120)
    files = snapshot(out)
    if run.returncode == 0:  # finished: every output is the new run's
        assert {"report.json", "report.html", "backtest.db", "charts/equity.png"} <= set(files)
        assert '"start": "2025-09-20' in (out / "report.json").read_text()
    else:  # stopped before its swap: nothing of it is left
        assert "stopped before the end" in stderr
        assert not out.exists()


ATTEMPTS = 5


def _writing_its_report(run: subprocess.Popen[str], out: Path) -> bool:
    """Whether `run` was seen with its charts in its partial directory (its replay is over,
    its report being written) before it ended; polls every millisecond for 120 s at most."""
    pattern = f".{out.name}.partial-*/charts"
    deadline = time.monotonic() + 120
    while run.poll() is None and time.monotonic() < deadline:
        if next(iter(out.parent.glob(pattern)), None) is not None:
            return True
        time.sleep(0.001)
    return False
