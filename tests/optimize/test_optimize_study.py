"""Whole studies through the real command: results, the daemon started from the chosen
settings, a seed that reproduces a study, two workers on one store, and a study resumed
after its process was stopped and killed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import optuna
import pytest
from daemon_harness import Daemon, eventually, query
from optimize_builders import (
    ONE_FOLD,
    WINDOW,
    clean_env,
    optimize_cli,
    optimize_command,
    write_space,
)

from quantum_trader.optimize.study import open_storage

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def stored(cwd: Path, study: str = "optimize") -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(f"sqlite:///{cwd / 'data' / 'optimize' / 'studies.db'}")
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def finished(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state in COUNTED]


def outcome(trial: optuna.trial.FrozenTrial) -> tuple[Any, ...]:
    return (trial.number, trial.state, trial.params, trial.values)


@pytest.mark.slow
def test_a_small_study_completes_and_its_best_settings_start_the_daemon(tmp_path: Path) -> None:
    space = write_space(tmp_path)
    done = optimize_cli(tmp_path, "--space", str(space), "--trials", "3", "--seed", "3", *WINDOW)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HOLDOUT 2025-10-12→10-14, never seen while choosing, scored once: " in done.stdout
    results = json.loads((tmp_path / "optimize" / "best.results.json").read_text())
    assert sum(results["trials"].get(s, 0) for s in ("complete", "pruned")) == 3
    assert [f["fold"] for f in results["folds"]] == [1, 2]
    for fold in results["folds"]:
        gap = fold["in_sample"]["score"] - fold["out_of_sample"]["score"]
        assert fold["gap"] == pytest.approx(gap)
        assert fold["out_of_sample"]["start"] == fold["in_sample"]["end"]
    assert results["holdout"]["start"] == results["layout"]["holdout"][0]
    assert results["holdout"]["start"] >= results["folds"][-1]["out_of_sample"]["end"]
    best = tmp_path / "optimize" / "best.toml"
    chosen = tomllib.loads(best.read_text())
    for path, value in results["best_params"].items():
        section, name = path.split(".")
        assert chosen[section][name] == value
    daemon = Daemon.start_with_config(tmp_path / "daemon", best)
    eventually(lambda: daemon.logged_so_far("cycle_completed"), 90, "a cycle of the daemon")
    assert daemon.stop(signal.SIGTERM) == 0
    shown = daemon.cli("config", "show", "--config", str(best))
    effective = json.loads(shown.stdout)
    for path, value in results["best_params"].items():
        section, name = path.split(".")
        assert effective[section][name] == value
    assert effective["signals"]["source"] == "rules"


@pytest.mark.slow
def test_a_seed_reproduces_a_study_on_one_worker(tmp_path: Path) -> None:
    space = write_space(tmp_path)
    runs = []
    for name in ("first", "second"):
        cwd = tmp_path / name
        cwd.mkdir()
        done = optimize_cli(cwd, "--space", str(space), "--trials", "2", "--seed", "11", *ONE_FOLD)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append([outcome(t) for t in stored(cwd)])
    assert runs[0] == runs[1]
    assert len({json.dumps(params, sort_keys=True) for _, _, params, _ in runs[0]}) == 2


@pytest.mark.slow
def test_two_worker_processes_share_one_study_without_duplicate_trials(tmp_path: Path) -> None:
    space = write_space(tmp_path)
    done = optimize_cli(
        tmp_path,
        "--space",
        str(space),
        "--trials",
        "4",
        "--workers",
        "2",
        "--seed",
        "5",
        *ONE_FOLD,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = stored(tmp_path)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len(finished(trials)) == 4
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 2  # both workers ran trials
    assert "optimize: 4 of 4 trials finished" in done.stderr


@pytest.mark.slow
def test_an_interrupted_study_resumes_from_its_store_without_redoing_finished_trials(
    tmp_path: Path,
) -> None:
    space = write_space(tmp_path)
    args = ("--space", str(space), "--trials", "4", "--seed", "2", *ONE_FOLD)

    (tmp_path / "tmp").mkdir()  # the cut markets a killed command cannot remove stay here

    def run_until_a_trial_finished(stop: signal.Signals) -> subprocess.Popen[bytes]:
        before = counted(tmp_path)
        process = subprocess.Popen(
            optimize_command(*args),
            cwd=tmp_path,
            env={**clean_env(tmp_path), "TMPDIR": str(tmp_path / "tmp")},
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{stop.name}.stderr").open("wb"),
        )
        eventually(lambda: counted(tmp_path) > before, 180, "a finished trial")
        process.send_signal(stop)
        process.wait(timeout=60)
        return process

    stopped = run_until_a_trial_finished(signal.SIGTERM)
    assert stopped.returncode == 1
    message = (tmp_path / "SIGTERM.stderr").read_text()
    assert "interrupted with" in message
    assert "rerun the same command (--study optimize) to resume" in message
    assert "Traceback" not in message  # was: Optuna's of the trial cut short, above the line
    killed = run_until_a_trial_finished(signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    kept = {t.number: outcome(t) for t in finished(stored(tmp_path))}
    assert 2 <= len(kept) < 4
    (left,) = (tmp_path / "tmp").iterdir()  # the killed command's cut markets

    done = optimize_cli(tmp_path, *args, env={"TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 0, done.stderr[-3000:]
    # The rerun removed them: their marker names a process that is gone.
    line = "optimize: removed 1 scratch directory of optimize runs that no longer exist from "
    assert f"{line}{left.parent} (" in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []
    trials = stored(tmp_path)
    assert len(finished(trials)) == 4
    assert {t.number: outcome(t) for t in trials if t.number in kept} == kept
    interrupted = [t for t in trials if t.state not in COUNTED]
    assert interrupted  # the trial each stop cut short: failed or left running, not counted
    assert len(trials) == 4 + len(interrupted)


def counted(cwd: Path) -> int:
    """Finished trials, read straight from the store's file (cheap enough to poll)."""
    sql = "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
    rows = query(cwd / "data" / "optimize" / "studies.db", sql)
    return int(rows[0][0]) if rows else 0


@pytest.mark.slow
def test_a_stop_while_the_holdout_is_scored_is_one_line_and_leaves_no_copy_of_the_market(
    tmp_path: Path,
) -> None:
    # Found by an outside probe (2026-12-03): outside the trials no handler was installed, so
    # SIGTERM killed the command (exit 143) with the cut markets left in the temporary
    # directory, and SIGINT ended it with 130 and no word.
    space = write_space(tmp_path)
    args = ("--space", str(space), "--trials", "1", "--seed", "3", *ONE_FOLD)
    first = optimize_cli(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    written = {p.name: p.read_bytes() for p in (tmp_path / "optimize").iterdir()}
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    for stop in (signal.SIGTERM, signal.SIGINT):
        # The study holds its trial already: the rerun goes straight to the holdout.
        process = subprocess.Popen(
            optimize_command(*args),
            cwd=tmp_path,
            env={**clean_env(tmp_path), "TMPDIR": str(temporary)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        eventually(lambda: any(temporary.glob("qt-optimize-*/runs/*")), 120, "the holdout")
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 1, stderr[-3000:]
        assert stderr.splitlines()[-1] == (
            "error: interrupted while scoring the holdout; the 1 finished trial of 1 is kept "
            "in the store: rerun the same command (--study optimize) to score it"
        )
        assert list(temporary.iterdir()) == []
        assert {p.name: p.read_bytes() for p in (tmp_path / "optimize").iterdir()} == written


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie left unreaped by a container's init does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_the_workers_of_a_killed_command_stop_instead_of_running_on(tmp_path: Path) -> None:
    # Found by an outside probe (2026-12-03): after kill -9 of the command its worker
    # processes, left to init, went on and ran every trial of their share, unseen.
    space = write_space(tmp_path)
    args = ("--space", str(space), "--trials", "200", "--workers", "2", *ONE_FOLD)
    (tmp_path / "tmp").mkdir()  # the cut markets a killed command cannot remove stay here
    process = subprocess.Popen(
        optimize_command(*args),
        cwd=tmp_path,
        env={**clean_env(tmp_path), "TMPDIR": str(tmp_path / "tmp")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def workers() -> set[int] | None:
        sql = "SELECT value_json FROM trial_user_attributes WHERE key = 'worker_pid'"
        pids = {int(row[0]) for row in query(tmp_path / "data" / "optimize" / "studies.db", sql)}
        return pids if len(pids) == 2 else None

    pids = eventually(workers, 180, "both workers running a trial")
    process.kill()
    process.wait(timeout=10)
    try:
        eventually(lambda: not any(alive(pid) for pid in pids), 30, "the workers to stop")
    finally:
        for pid in pids:  # a failing run leaves no worker behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert len(finished(stored(tmp_path))) < 200
