"""Issue 4: a week of the bundled sample with each sizing method; the report names the method
and shows the average risk per trade and the realized R. The sizer's decisions name it too."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.config import Settings
from quantum_trader.sizing.settings import SizingSettings

METHODS = ("math", "kelly", "fixed_risk", "volatility_adjusted", "regime_based", "cvar", "rl")
START = datetime(2025, 10, 1, tzinfo=UTC)
END = datetime(2025, 10, 8, tzinfo=UTC)


@pytest.mark.parametrize("method", METHODS)
def test_a_week_with_each_sizing_method_reports_method_risk_and_r(
    method: str, tmp_path: Path
) -> None:
    settings = Settings(sizing=SizingSettings(method=method))
    report = asyncio.run(
        run_backtest(settings, BacktestRequest(start=START, end=END, out_dir=tmp_path))
    )
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["sizing_method"] == report.sizing_method == method
    assert report.trades > 0
    assert written["average_risk_usdt"] == report.average_risk_usdt > 0
    assert math.isfinite(written["average_r"])
    assert written["average_r"] == report.average_r
    assert report.reconciled
    with sqlite3.connect(f"file:{tmp_path / 'backtest.db'}?mode=ro", uri=True) as database:
        details = database.execute(
            "SELECT detail FROM decisions WHERE gate = 'sizer' AND approved = 1"
        ).fetchall()
    assert details
    assert all(detail.endswith(f"method={method}") for (detail,) in details)
