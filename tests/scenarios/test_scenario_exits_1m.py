"""Issue 5: trailing stops and partial take-profits on real 1 m price paths.

The backtest runs on the bundled 1 m bars of BTC, ETH, SOL and XRP (2025-05-11 06:00, after the
rule agent's warm-up, to 05-19). With the SPEC's triggers (break-even +1 %, trailing +2 %,
partial +4 %) that week gives 7 trades (6 SL_HIT, 1 BREAK_EVEN): no position ever ran +2 % in
its favour before its stop, so neither a trail nor a partial can happen. The triggers are
scaled to the week's moves (break-even +0.5 %, trailing +1 %, partial +1.5 %; the stops stay
1.5 x hourly ATR, median 2.25 % away), which is enough for both to happen on real paths.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.gates.settings import GovernorSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.report.model import BacktestReport

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT")
# The rule agent's warm-up (150 h) decides where the week starts; the volatility baseline
# is shortened from a week to two days so that it does not push the start later.
SETTINGS = Settings(
    market=MarketSettings(timeframe="1m", symbols=SYMBOLS),
    governor=GovernorSettings(volatility_lookback_hours=48),
    monitor=MonitorSettings(
        break_even_trigger=0.005, trailing_trigger=0.01, partial_tp_trigger=0.015
    ),
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestReport, Path]:
    out = tmp_path_factory.mktemp("exits_1m")
    report = asyncio.run(run_backtest(SETTINGS, BacktestRequest(out_dir=out)))
    return report, out / "backtest.db"


def rows(database: Path, sql: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return connection.execute(sql).fetchall()


def test_the_run_is_on_one_minute_bars_of_the_four_symbols(
    run: tuple[BacktestReport, Path],
) -> None:
    report, _ = run
    assert tuple(report.symbols) == SYMBOLS
    assert report.candles == report.steps * len(SYMBOLS)  # one bar per symbol per minute
    assert report.trades > 0


def test_a_trailing_stop_closes_a_trade(run: tuple[BacktestReport, Path]) -> None:
    report, _ = run
    assert report.exits_by_reason.get("TRAILING_HIT", 0) >= 1


def test_partial_take_profits_are_recorded_as_position_events(
    run: tuple[BacktestReport, Path],
) -> None:
    _, database = run
    partials = rows(
        database, "SELECT symbol, quantity FROM position_events WHERE reason = 'PARTIAL_TP'"
    )
    assert partials
    assert all(float(quantity) > 0 for _, quantity in partials)


def test_the_trailed_trade_took_its_partial_and_its_stop_only_ratcheted_up(
    run: tuple[BacktestReport, Path],
) -> None:
    _, database = run
    (symbol, side, opened, closed), *_ = rows(
        database,
        "SELECT symbol, side, opened_at, closed_at FROM closed_trades "
        "WHERE exit_reason = 'TRAILING_HIT' ORDER BY closed_at",
    )
    window = f"symbol = '{symbol}' AND time >= '{opened}' AND time <= '{closed}'"
    assert rows(database, f"SELECT 1 FROM position_events WHERE reason = 'PARTIAL_TP' AND {window}")
    stops = [
        float(stop)
        for (stop,) in rows(
            database,
            "SELECT new_stop_price FROM position_events WHERE new_stop_price IS NOT NULL "
            f"AND {window} ORDER BY time, id",
        )
    ]
    assert len(stops) >= 2
    ordered = stops if side == "LONG" else [-s for s in stops]
    assert ordered == sorted(ordered)


def test_every_trade_reconciles_with_the_fills(run: tuple[BacktestReport, Path]) -> None:
    report, _ = run
    assert report.reconciled
    assert report.reconciliation_errors == []


def test_the_report_counts_partials_and_stop_moves(run: tuple[BacktestReport, Path]) -> None:
    report, _ = run
    events = report.position_events_by_reason
    assert events.get("PARTIAL_TP", 0) >= 1
    assert events.get("TRAILING", 0) >= 1
    assert events.get("BREAK_EVEN", 0) >= 1
