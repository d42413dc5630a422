"""The models directory as a user keeps it: their own folders beside the sets, and a CURRENT
or a manifest that is not what `train` wrote (found by an outside probe of the ML commands)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from child_env import child_env
from ml_fixtures import (  # noqa: F401 (trained_fixture is the fixture `trained`)
    TINY,
    copy_data_dir,
    settings_for,
    trained_fixture,
)
from structlog.testing import capture_logs

from quantum_trader.app_signals import choose_signal_source
from quantum_trader.config import Settings
from quantum_trader.signals.manifest import Manifest, SetSpec
from quantum_trader.signals.model_set import MANIFEST_FILE, current_set, publish_model_set
from quantum_trader.signals.models.base import TREE_MODELS
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.training import TrainingResult


def empty_set(day: int) -> Manifest:
    """A set of no model, named as `train` names its sets."""
    trained_at = datetime(2025, 1, day, tzinfo=UTC)
    return Manifest(
        set_id=f"{trained_at:%Y%m%dT%H%M%SZ}-0000{day:02x}",
        trained_at=trained_at,
        spec=SetSpec((), 168, 8, {}),
        symbols=("BTC/USDT:USDT",),
        training_start=trained_at - timedelta(days=30),
        training_end=trained_at,
        models=(),
    )


def test_train_removes_only_its_own_older_sets_and_logs_each(tmp_path: Path) -> None:
    """Was: every folder holding a manifest.json counted as a set, sorted by name, so a user's
    `0-known-good` backup (sorting before the dates) was deleted by the next train."""
    models = tmp_path / "models"
    for mine in ("0-known-good", "my-copy", "zz-notes"):
        (models / mine).mkdir(parents=True)
        (models / mine / MANIFEST_FILE).write_text("{}")
    published = [empty_set(day) for day in range(1, 6)]
    with capture_logs() as logs:
        for manifest in published:
            publish_model_set(models, manifest, {})
    kept = sorted(p.name for p in models.iterdir() if p.is_dir())
    newest = [m.set_id for m in published[-3:]]
    assert kept == sorted(["0-known-good", "my-copy", "zz-notes", *newest])
    removed = [e for e in logs if e["event"] == "model_set_removed"]
    assert [e["model_set"] for e in removed] == [m.set_id for m in published[:2]]
    assert (models / "CURRENT").read_text().strip() == published[-1].set_id


def edited_manifest(data_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    current = current_set(data_dir / "models")
    assert current is not None
    path = current / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _model_twice(manifest: dict[str, Any]) -> None:
    manifest["models"].append(manifest["models"][0])


def _symbols_a_string(manifest: dict[str, Any]) -> None:
    manifest["symbols"] = "BTC/USDT:USDT"


def _start_after_end(manifest: dict[str, Any]) -> None:
    manifest["training_start"], manifest["training_end"] = (
        manifest["training_end"],
        manifest["training_start"],
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_model_twice, "manifest.json lists xgboost twice"),
        (_symbols_a_string, "manifest.json has symbols 'BTC/USDT:USDT', not a list of symbols"),
        (_start_after_end, "manifest.json has training_start 2025-11-20T00:00:00+00:00 after"),
    ],
)
def test_a_manifest_no_train_writes_is_refused_and_the_rule_agent_trades(
    trained: tuple[Path, TrainingResult],
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    """Was: a model listed twice voted twice (it alone met ensemble.min_models = 2); symbols
    written as a string were read one letter a symbol; a training window that ends before it
    begins was accepted."""
    data_dir = copy_data_dir(trained[0], tmp_path)
    edited_manifest(data_dir, edit)
    settings = settings_for(data_dir)
    said: list[str] = []
    with capture_logs() as logs:
        source = choose_signal_source(settings, {}, said)
    assert isinstance(source, RuleAgent)
    (refused,) = [e for e in logs if e["event"] == "model_set_refused"]
    assert expected in refused["reason"]
    assert refused["reason"].endswith("; retrain with `quantum-trader train`")
    (line,) = said
    assert line.startswith(f"trained models not used: the model set in {data_dir / 'models'}")
    assert expected in line


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command on a data directory, with a small training (2 trees, 2 folds)."""
    small = {
        "QT_DATA_DIR": str(data_dir),
        "QT_MARKET__SYMBOLS": "BTC/USDT:USDT",
        "QT_ENSEMBLE__MODELS": "xgboost,lightgbm",
        "QT_ENSEMBLE__TRAINING_DAYS": "20",
        "QT_ENSEMBLE__TREE_ROUNDS": "10",
        "QT_ENSEMBLE__WALK_FORWARD_FOLDS": "2",
    }
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        capture_output=True,
        text=True,
        env=child_env(**small),
        cwd=data_dir.parent,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("pointer", ["CURRENT", "CURRENT.tmp"])
def test_train_where_current_is_a_directory_is_refused_before_training(
    tmp_path: Path, pointer: str
) -> None:
    """Was: the whole training, then an IsADirectoryError traceback from publish_model_set,
    exit 1, the new set's folder and CURRENT.tmp left behind."""
    models = tmp_path / "data" / "models"
    (models / pointer).mkdir(parents=True)
    done = cli(tmp_path / "data", "train")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"configuration error: {models / pointer} is a directory; train writes there the name "
        "of the set it publishes: move it aside, then train again; nothing was trained"
    ]
    assert "Training" not in done.stdout
    assert [p.name for p in models.iterdir()] == [pointer]
    assert not any((models / pointer).iterdir())


def _current_missing(models: Path) -> None:
    (models / "CURRENT").unlink()


def _current_a_directory(models: Path) -> None:
    (models / "CURRENT").unlink()
    (models / "CURRENT").mkdir()


def _models_a_file(models: Path) -> None:
    shutil.rmtree(models)
    models.write_text("")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_current_missing, "CURRENT is missing, though {models} holds model sets ({set_id}); "),
        (_current_a_directory, "CURRENT is not a file (a directory?); move it aside, then "),
        (_models_a_file, "{models} is a file, not the directory model sets are kept in; "),
    ],
    ids=["CURRENT missing", "CURRENT a directory", "models a file"],
)
def test_trained_models_that_cannot_be_found_are_said_not_taken_for_none(
    trained: tuple[Path, TrainingResult],
    tmp_path: Path,
    damage: Callable[[Path], None],
    expected: str,
) -> None:
    """Was: current_set answered "never trained" whenever CURRENT was not a regular file, so
    backtest and run traded the rule agent, the summary saying `rules (no trained models)`
    (now `(no trained models used)`, beside the row that says why)."""
    data_dir = copy_data_dir(trained[0], tmp_path)
    models = data_dir / "models"
    damage(models)
    said: list[str] = []
    with capture_logs() as logs:
        source = choose_signal_source(settings_for(data_dir), {}, said)
    assert isinstance(source, RuleAgent)
    (refused,) = [e for e in logs if e["event"] == "model_set_refused"]
    line = expected.format(models=models, set_id=trained[1].set_dir.name)
    assert line in refused["reason"]
    assert refused["reason"].endswith("retrain with `quantum-trader train`")
    (row,) = said
    assert line in row
    assert row.endswith("; the rule agent trades")


@pytest.mark.parametrize("leftover", [None, "xgboost.json", ".partial-20250101T000000Z-000001"])
def test_a_models_directory_without_a_set_is_never_trained(
    tmp_path: Path, leftover: str | None
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    if leftover == "xgboost.json":  # the old layout's file
        (models / leftover).touch()
    elif leftover is not None:  # a set a stopped train half-wrote
        (models / leftover).mkdir()
        (models / leftover / MANIFEST_FILE).write_text("{}")
    said: list[str] = []
    with capture_logs() as logs:
        source = choose_signal_source(settings_for(tmp_path), {}, said)
    assert isinstance(source, RuleAgent)
    assert said == []
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []


def damaged_xgboost(data_dir: Path) -> None:
    current = current_set(data_dir / "models")
    assert current is not None
    damaged = current / "xgboost.json"
    damaged.write_bytes(b"x" * damaged.stat().st_size)  # its sha256 no longer matches


def not_used_row(settings: Settings) -> str:
    said: list[str] = []
    with capture_logs():
        assert isinstance(choose_signal_source(settings, {}, said), RuleAgent)
    (row,) = said
    return row


def test_the_models_not_used_row_counts_the_models_of_the_set(
    trained: tuple[Path, TrainingResult], tmp_path: Path
) -> None:
    """A set of the two tree models (`train` with QT_ENSEMBLE__MODELS=xgboost,lightgbm), one
    of them damaged, under the default four: was `1 of the 4 models in DIR loaded`, the
    settings' count, as if three of the set's models had failed."""
    data_dir = copy_data_dir(trained[0], tmp_path / "trees")

    def trees_only(manifest: dict[str, Any]) -> None:
        manifest["models"] = [m for m in manifest["models"] if m["name"] in TREE_MODELS]

    edited_manifest(data_dir, trees_only)
    damaged_xgboost(data_dir)
    row = not_used_row(settings_for(data_dir))
    assert f"1 of the 2 models in {data_dir / 'models'} loaded (lightgbm), fewer than " in row

    data_dir = copy_data_dir(trained[0], tmp_path / "four")
    damaged_xgboost(data_dir)
    trees = settings_for(data_dir, ensemble=TINY.model_copy(update={"models": TREE_MODELS}))
    row = not_used_row(trees)
    models = data_dir / "models"
    assert f"1 of the 2 models ensemble.models takes of the 4 in {models} loaded" in row
