"""What the backtest command holds in memory: the command line loads no library it does not
need (model training, the daemon's web stack, SciPy), the backtest loads the report's chart
library only to write the report, and a replay releases its market before the report.

Imports are checked in a fresh interpreter (`-X importtime` lists every module the entry point
imported), since this test session has imported everything already.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path

from quantum_trader.backtest import BacktestRequest, prepare_replay, replay_into, write_report
from quantum_trader.config import MarketSettings, Settings

# Model training, the daemon's web and metrics stack, SciPy and the report's chart library.
NOT_FOR_A_BACKTEST = (
    "torch",
    "sklearn",
    "xgboost",
    "lightgbm",
    "optuna",
    "scipy",
    "empyrical",
    "aiohttp",
    "ccxt",
    "pyarrow.parquet",
)


def imported_by(*args: str) -> set[str]:
    """The modules a fresh `python -X importtime <args>` imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def test_the_command_line_imports_no_training_web_or_scipy_library() -> None:
    modules = imported_by("-m", "quantum_trader", "backtest", "--help")
    assert "quantum_trader.cli_backtest" in modules  # every command was registered
    assert "quantum_trader.cli_ml" in modules
    assert modules.isdisjoint(NOT_FOR_A_BACKTEST), modules & set(NOT_FOR_A_BACKTEST)
    assert "matplotlib" not in modules


def test_the_backtest_loads_the_chart_library_only_to_write_the_report() -> None:
    modules = imported_by("-c", "import quantum_trader.backtest")
    assert modules.isdisjoint(NOT_FOR_A_BACKTEST), modules & set(NOT_FOR_A_BACKTEST)
    assert "matplotlib" not in modules
    assert "quantum_trader.report.publish" not in modules


def test_a_replay_keeps_nothing_of_its_market_once_the_report_is_written(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        signals={"source": "rules"},
        market=MarketSettings(symbols=("BTC/USDT:USDT", "ETH/USDT:USDT")),
    )
    start, end = datetime(2025, 9, 10, tzinfo=UTC), datetime(2025, 9, 12, tzinfo=UTC)
    settings, replay = prepare_replay(settings, BacktestRequest(start, end, out_dir=tmp_path))
    feed = weakref.ref(replay.feed)

    replayed = asyncio.run(replay_into(settings, replay, tmp_path, asyncio.Event()))
    del replay
    gc.collect()
    assert feed() is None  # no cache, core or report piece kept the recorded bars alive
    report = asyncio.run(write_report(replayed, tmp_path, time.perf_counter()))
    assert report.candles == 2 * 2 * 288  # counted before the release
    assert report.benchmark["return_pct"] != 0.0
    assert report.steps == 2 * 288
    assert (tmp_path / "report.json").is_file()
