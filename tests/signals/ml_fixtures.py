"""A tiny model set trained once per test worker on a slice of the bundled sample.

Test modules import `trained_fixture` (the fixture `trained`) from here: a session fixture, so
one training per worker, shared by every module that imports it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest

from quantum_trader.config import LogSettings, MarketSettings, Settings
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.signals.labels import ExitRules
from quantum_trader.signals.panel import Panel, load_panel
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import EnsembleSettings, SignalsSettings
from quantum_trader.signals.training import TrainingResult, train_models

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
TRAINED_AT = datetime(2025, 12, 1, tzinfo=UTC)
TRAINING_END = datetime(2025, 11, 20, tzinfo=UTC)
TINY = EnsembleSettings(
    training_days=20,
    training_end=TRAINING_END,
    walk_forward_folds=3,
    validation_fraction=0.5,
    embargo_h=8,
    tree_rounds=15,
    forecaster_steps=10,
    torch_threads=1,
)


def settings_for(
    data_dir: Path,
    source: Literal["ensemble", "rules"] | None = None,
    ensemble: EnsembleSettings = TINY,
) -> Settings:
    return Settings(
        data_dir=data_dir,
        market=MarketSettings(symbols=SYMBOLS),
        signals=SignalsSettings(source=source),
        ensemble=ensemble,
        log=LogSettings(level="DEBUG"),
    )


def tiny_panel() -> Panel:
    """The bundled sample's panel for `TINY`, labelled by the rule agent's exits."""
    settings = settings_for(Path("unused"))
    return load_panel(
        TINY,
        ExitRules.of(settings),
        RuleAgent(settings.signals),
        bundled_sample_dir(),
        SYMBOLS,
        need_windows=False,
    )


def train_tiny(data_dir: Path) -> TrainingResult:
    """Train the tiny set into data_dir/models; check the progress is monotone and complete."""
    fractions: list[float] = []
    settings = settings_for(data_dir)
    result = train_models(
        settings,
        bundled_sample_dir(),
        SYMBOLS,
        data_dir / "models",
        TRAINED_AT,
        lambda _stage, fraction: fractions.append(fraction),
    )
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    return result


def copy_data_dir(trained: Path, into: Path) -> Path:
    """A private copy of a trained data dir (models only), for tests that damage it."""
    shutil.copytree(trained / "models", into / "models")
    return into


@pytest.fixture(scope="session", name="trained")
def trained_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingResult]:
    """(data dir, training result) of the tiny set; never modify it (copy it first)."""
    data_dir = tmp_path_factory.mktemp("trained")
    return data_dir, train_tiny(data_dir)
