"""Small backtests and tiny models for the report tests (seconds each)."""

from __future__ import annotations

import asyncio
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path

from ensemble_builders import TINY
from rich.console import Console

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.market.candle_store import bundled_sample_dir, file_stem
from quantum_trader.report.model import BacktestReport
from quantum_trader.report.summary import print_backtest_summary
from quantum_trader.walk_forward import Block, train_block

TWO = ("BTC/USDT:USDT", "ETH/USDT:USDT")
FOUR = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT")


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def tiny_settings(data_dir: Path, replay_dir: Path | None = None) -> Settings:
    return Settings(
        data_dir=data_dir,
        market=MarketSettings(symbols=TWO, replay_dir=replay_dir),
        ensemble=TINY,
    )


def train_tiny(settings: Settings, training_end: datetime) -> Path:
    """Tiny models trained on the week before `training_end`, into data_dir/models."""
    models = settings.data_dir / "models"
    train_block(settings, TWO, Block(training_end, training_end), 7, models)
    return models


def backtest(settings: Settings, request: BacktestRequest) -> BacktestReport:
    return asyncio.run(run_backtest(settings, request))


def summary_text(report: BacktestReport, out: Path) -> str:
    screen = io.StringIO()
    print_backtest_summary(Console(file=screen, width=200), report, out)
    return screen.getvalue()


def copy_market(target: Path, symbols: tuple[str, ...]) -> Path:
    """The bundled sample's files of `symbols` in a directory of their own."""
    target.mkdir(parents=True)
    for symbol in symbols:
        for path in bundled_sample_dir().glob(f"{file_stem(symbol)}-*.feather"):
            shutil.copy(path, target / path.name)
    return target
