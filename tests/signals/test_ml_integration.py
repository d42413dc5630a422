"""The ensemble in the product: `train` into data_dir/models, then the backtest and the daemon
pick the models up by themselves; broken artifacts degrade to fewer models or to the rules."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from rich.console import Console
from structlog.testing import capture_logs

from quantum_trader.app import choose_signal_source, open_runtime
from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.cli_ml import REPORT_FILE, models_dir, train_ensemble
from quantum_trader.clock import ManualClock
from quantum_trader.config import LogSettings, MarketSettings, Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.signals.artifacts import MODEL_EXTENSIONS
from quantum_trader.signals.ensemble import Ensemble, load_ensemble, recorded_funding
from quantum_trader.signals.models.base import MODEL_NAMES
from quantum_trader.signals.settings import EnsembleSettings, SignalsSettings
from quantum_trader.signals.training_report import TrainingReport

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
TRAINED_AT = datetime(2025, 12, 1, tzinfo=UTC)
TRAINING_END = datetime(2025, 11, 20, tzinfo=UTC)
TINY = EnsembleSettings(
    training_days=20,
    training_end=TRAINING_END,
    walk_forward_folds=2,
    validation_fraction=0.5,
    embargo_h=8,
    tree_rounds=15,
    forecaster_steps=10,
)


def settings_for(data_dir: Path, source: Literal["ensemble", "rules"] | None = None) -> Settings:
    return Settings(
        data_dir=data_dir,
        market=MarketSettings(symbols=SYMBOLS),
        signals=SignalsSettings(source=source),
        ensemble=TINY,
        log=LogSettings(level="DEBUG"),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingReport, str]:
    data_dir = tmp_path_factory.mktemp("data")
    screen = io.StringIO()
    report = train_ensemble(settings_for(data_dir), Console(file=screen, width=120), TRAINED_AT)
    return data_dir, report, screen.getvalue()


def copy_of(trained: tuple[Path, TrainingReport, str], tmp_path: Path) -> Path:
    shutil.copytree(models_dir(settings_for(trained[0])), tmp_path / "models")
    return tmp_path


def corrupt(data_dir: Path, *models: str) -> None:
    for model in models:
        artifact = models_dir(settings_for(data_dir)) / f"{model}.{MODEL_EXTENSIONS[model]}"
        artifact.write_bytes(b"not a model")


def test_train_saves_every_model_and_the_validation_report(
    trained: tuple[Path, TrainingReport, str],
) -> None:
    data_dir, report, screen = trained
    directory = models_dir(settings_for(data_dir))
    assert sorted(p.name for p in directory.glob("*.json")) == sorted(
        f"{m}.json" for m in MODEL_NAMES
    )
    written = (directory / REPORT_FILE).read_text(encoding="utf-8")
    assert written == report.to_markdown()
    for row in (*MODEL_NAMES, "ensemble", "majority", "rule agent"):
        assert row in written
        assert row in screen
    assert report.end <= TRAINING_END


async def test_backtest_trades_on_the_ensemble_with_every_models_vote(
    trained: tuple[Path, TrainingReport, str], tmp_path: Path
) -> None:
    settings = settings_for(trained[0], source="ensemble")
    request = BacktestRequest(
        start=datetime(2025, 9, 15, tzinfo=UTC),  # after the ensemble's 321 h warm-up
        end=datetime(2025, 9, 17, tzinfo=UTC),
        symbols=SYMBOLS,
        out_dir=tmp_path,
    )
    with capture_logs() as logs:
        report = await run_backtest(settings, request)
    assert report.signal_source == "ensemble"
    assert report.reconciled
    decided = [e for e in logs if e["event"] == "decision" and e["votes"]]
    assert decided, "no signal reached the approval chain"
    for event in decided:
        voters = {vote.split(":")[0] for vote in event["votes"].split(",")}
        assert voters == set(MODEL_NAMES)


async def test_the_daemon_starts_without_a_corrupt_model_and_says_so(
    trained: tuple[Path, TrainingReport, str], tmp_path: Path
) -> None:
    data_dir = copy_of(trained, tmp_path)
    corrupt(data_dir, "xgboost")
    async with AsyncExitStack() as stack:
        with capture_logs() as logs:
            runtime = await open_runtime(
                settings_for(data_dir), stack, ManualClock, asyncio.Event()
            )
            summary = await runtime.core.executor.run_cycle(runtime.clock.now())
    failed = [e for e in logs if e["event"] == "model_load_failed"]
    assert [e["model"] for e in failed] == ["xgboost"]
    loaded = [e for e in logs if e["event"] == "ensemble_loaded"]
    assert loaded
    assert loaded[0]["models"] == ["lightgbm", "nhits", "patchtst"]
    assert summary.cycle_id


def test_fewer_models_than_the_quorum_fall_back_to_the_rules(
    trained: tuple[Path, TrainingReport, str], tmp_path: Path
) -> None:
    data_dir = copy_of(trained, tmp_path)
    corrupt(data_dir, "xgboost", "lightgbm", "nhits")
    with capture_logs() as logs:
        source = choose_signal_source(settings_for(data_dir))
    assert source.name == "rules"
    assert {e["model"] for e in logs if e["event"] == "model_load_failed"} == {
        "xgboost",
        "lightgbm",
        "nhits",
    }
    assert any(e["event"] == "ensemble_unavailable" for e in logs)
    with pytest.raises(ConfigurationError, match=r"signals\.source"):
        choose_signal_source(settings_for(data_dir, source="ensemble"))


def test_without_models_the_rules_trade_and_asking_for_the_ensemble_is_an_error(
    tmp_path: Path,
) -> None:
    assert choose_signal_source(settings_for(tmp_path)).name == "rules"
    with pytest.raises(ConfigurationError, match="quantum-trader train"):
        choose_signal_source(settings_for(tmp_path, source="ensemble"))


def test_the_chosen_ensemble_reads_the_recorded_funding(
    trained: tuple[Path, TrainingReport, str],
) -> None:
    settings = settings_for(trained[0])
    store = CandleStore(bundled_sample_dir())
    bars = {s: store.load_bars(s, "5m").slice(0, 3000) for s in SYMBOLS}
    chosen = choose_signal_source(settings)
    assert isinstance(chosen, Ensemble)
    explicit = load_ensemble(models_dir(settings), TINY, recorded_funding(store, SYMBOLS))
    assert explicit is not None
    given = choose_signal_source(settings, recorded_funding(store, SYMBOLS))
    for source in (explicit, given):
        for symbol, series in source.evaluate(bars).items():
            expected = chosen.evaluate(bars)[symbol]
            np.testing.assert_array_equal(series.action, expected.action)
            np.testing.assert_allclose(series.confidence, expected.confidence)


def test_train_without_pytorch_trains_the_trees_and_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        '[market]\nsymbols = ["BTC/USDT:USDT"]\n'
        "[ensemble]\ntraining_days = 20\nwalk_forward_folds = 2\nvalidation_fraction = 0.5\n"
        "embargo_h = 8\ntree_rounds = 15\nforecaster_steps = 10\n"
    )
    program = (
        "import sys; sys.modules['torch'] = None\n"
        "from quantum_trader import cli_ml\n"
        "from quantum_trader.cli import main\n"
        f"sys.argv = ['quantum-trader', 'train', '--config', {str(config)!r}]\n"
        "main()\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, "COLUMNS": "160"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "skipped nhits" in done.stdout
    assert "skipped patchtst" in done.stdout
    saved = sorted(p.name for p in (tmp_path / "data" / "models").glob("*.json"))
    assert saved == ["lightgbm.json", "xgboost.json"]
