"""Optional inputs the data lack (funding rates, BTC's daily closes for the global regime)
qualify a backtest's results: its report names each, in report.json, the summary and the page
(the quiet command's warnings: tests/foundation/test_foundation_quiet_log.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_builders import TWO, backtest, copy_market, summary_text, utc

from quantum_trader.backtest import BacktestRequest
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.market.candle_store import file_stem
from quantum_trader.report.model import BacktestReport

ETH = "ETH/USDT:USDT"
# After 2025-09-17 the sample's BTC hourly candles hold the regime's 200 daily closes.
WINDOW = (utc(2025, 9, 20), utc(2025, 9, 22))


def without_eth_funding(root: Path) -> Path:
    market = copy_market(root / "market", TWO)
    (market / f"{file_stem(ETH)}-1h-funding_rate.feather").unlink()
    return market


def run(root: Path, replay_dir: Path | None) -> tuple[BacktestReport, Path]:
    settings = Settings(
        data_dir=root / "data",
        signals={"source": "rules"},
        market=MarketSettings(symbols=TWO, replay_dir=replay_dir),
    )
    out = root / "out"
    return backtest(settings, BacktestRequest(*WINDOW, out_dir=out)), out


@pytest.fixture(scope="module")
def lacking(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestReport, Path]:
    root = tmp_path_factory.mktemp("lacking")
    return run(root, without_eth_funding(root))


def test_a_report_names_the_funding_rates_its_data_lack(
    lacking: tuple[BacktestReport, Path],
) -> None:
    report, out = lacking
    (line,) = report.missing_inputs
    assert line.startswith(f"funding rates: none recorded for {ETH};")
    assert "no funding is charged" in line
    assert json.loads((out / "report.json").read_text())["missing_inputs"] == [line]
    page = (out / "report.html").read_text()
    assert 'id="missing-inputs"' in page
    assert f"none recorded for {ETH}" in page
    text = summary_text(report, out)
    assert "missing input" in text
    assert f"none recorded for {ETH}" in text


def test_a_report_of_complete_data_names_none(tmp_path: Path) -> None:
    report, out = run(tmp_path, None)  # the bundled sample: funding and BTC's closes for all
    assert report.missing_inputs == []
    assert json.loads((out / "report.json").read_text())["missing_inputs"] == []
    assert 'id="missing-inputs"' not in (out / "report.html").read_text()
    assert "missing input" not in summary_text(report, out)
