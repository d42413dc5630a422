"""The report's statistics match an independent computation in plain Python: round trips
rebuilt from the fills in backtest.db, the equity snapshots, and the recorded closes."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sqlite3
from collections import defaultdict
from contextlib import closing
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from report_builders import FOUR, backtest, utc

from quantum_trader.backtest import BacktestRequest
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.report.load import load_run

START, END = utc(2025, 9, 25), utc(2025, 10, 3)  # two calendar months
INITIAL = 10_000.0
CENT = 0.005 + 1e-9  # the report rounds money to cents


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("statistics")
    settings = Settings(
        data_dir=out, signals={"source": "rules"}, market=MarketSettings(symbols=FOUR)
    )
    backtest(settings, BacktestRequest(START, END, out_dir=out))
    return json.loads((out / "report.json").read_text()), out / "backtest.db"


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


def trips_from_fills(database: Path) -> list[dict[str, Any]]:
    """Round trips per symbol: from flat to flat, in execution order (time, then trade id)."""
    fills = rows(
        database,
        "SELECT symbol, side, quantity, price, fee_usdt, time, trade_id FROM fills",
    )
    funding = {
        (symbol, opened): Decimal(paid)
        for symbol, opened, paid in rows(
            database, "SELECT symbol, opened_at, funding_usdt FROM closed_trades"
        )
    }
    by_symbol: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for fill in fills:
        by_symbol[fill[0]].append(fill)
    trips = []
    for symbol, own in by_symbol.items():
        own.sort(key=lambda f: (f[5], int("".join(c for c in f[6] if c.isdigit()) or 0)))
        net, trip = Decimal(0), None
        for _, side, qty, price, fee, time, _ in own:
            if net == 0:
                trip = {"symbol": symbol, "side": "LONG" if side == "BUY" else "SHORT",
                        "cash": Decimal(0), "fees": Decimal(0), "opened": time}  # fmt: skip
                trips.append(trip)
            assert trip is not None
            signed = Decimal(qty) if side == "BUY" else -Decimal(qty)
            net += signed
            trip["cash"] -= signed * Decimal(price)
            trip["fees"] += Decimal(fee)
            trip["closed"] = time if net == 0 else None
    closed = [t for t in trips if t["closed"]]
    for trip in closed:
        trip["net"] = trip["cash"] - trip["fees"] - funding[(trip["symbol"], trip["opened"])]
        hours = datetime.fromisoformat(trip["closed"]) - datetime.fromisoformat(trip["opened"])
        trip["hours"] = hours.total_seconds() / 3600
    return closed


def test_pnl_fees_wins_and_profit_factor_per_symbol_and_side_match_the_fills(
    run: tuple[dict[str, Any], Path],
) -> None:
    report, database = run
    trips = trips_from_fills(database)
    assert len(trips) == report["trades"] > 10
    for key, table in (("symbol", report["by_symbol"]), ("side", report["by_side"])):
        for row in table:
            own = [t for t in trips if t[key] == row[key]]
            gains = sum(float(t["net"]) for t in own if t["net"] > 0)
            losses = -sum(float(t["net"]) for t in own if t["net"] < 0)
            assert row["trades"] == len(own)
            assert row["wins"] == sum(1 for t in own if t["net"] > 0)
            assert abs(row["pnl_usdt"] - float(sum(t["net"] for t in own))) < CENT
            assert abs(row["fees_usdt"] - float(sum(t["fees"] for t in own))) < CENT
            if losses:
                assert abs(row["profit_factor"] - gains / losses) < 1e-4
            hours = sum(t["hours"] for t in own) / len(own)
            assert abs(row["average_hours"] - hours) < 0.01
    everything = sum(float(t["net"]) for t in trips)
    assert abs(report["pnl_usdt"] - everything) < CENT
    gains = sum(float(t["net"]) for t in trips if t["net"] > 0)
    losses = -sum(float(t["net"]) for t in trips if t["net"] < 0)
    assert abs(report["profit_factor"] - gains / losses) < 1e-4
    assert report["wins"] == sum(1 for t in trips if t["net"] > 0)
    median = sorted(t["hours"] for t in trips)
    middle = len(median) // 2
    expected = median[middle] if len(median) % 2 else (median[middle - 1] + median[middle]) / 2
    assert abs(report["durations"]["median_hours"] - expected) < 0.01


def test_expectancy_in_r_is_the_mean_r_of_the_trades(run: tuple[dict[str, Any], Path]) -> None:
    report, database = run
    r = [value for (value,) in rows(database, "SELECT r_multiple FROM closed_trades")]
    assert abs(report["expectancy_r"] - sum(r) / len(r)) < 1e-4


def period_ends(database: Path, length: int) -> dict[str, float]:
    """The last equity of each day (`length` 10) or month (7): a snapshot at midnight is the
    end of the day (and month) before, but the first, the start, opens its own."""
    ends: dict[str, float] = {}
    snapshots = rows(database, "SELECT time, equity_usdt FROM equity_snapshots ORDER BY time")
    for index, (time, equity) in enumerate(snapshots):
        moment = datetime.fromisoformat(time)
        if index and moment == moment.replace(hour=0, minute=0, second=0, microsecond=0):
            moment -= timedelta(microseconds=1)
        ends[moment.isoformat()[:length]] = float(equity)
    return ends


def day_end_returns(database: Path) -> list[float]:
    values = [INITIAL, *period_ends(database, 10).values()]
    return [b / a - 1 for a, b in itertools.pairwise(values)]


def test_sharpe_sortino_calmar_and_drawdown_match_the_equity_snapshots(
    run: tuple[dict[str, Any], Path],
) -> None:
    report, database = run
    r = day_end_returns(database)
    n, mean = len(r), sum(r) / len(r)
    deviation = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / n)
    growth = math.prod(1 + x for x in r)
    annual = growth ** (365 / n) - 1
    equity = [
        float(e)
        for (e,) in rows(database, "SELECT equity_usdt FROM equity_snapshots ORDER BY time")
    ]
    peak, worst = INITIAL, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, 1 - value / peak)
    assert abs(report["sharpe"] - mean / deviation * math.sqrt(365)) < 1e-3
    assert abs(report["sortino"] - mean * 365 / (downside * math.sqrt(365))) < 1e-3
    assert abs(report["annual_return_pct"] - annual * 100) < 1e-3
    assert abs(report["max_drawdown_pct"] - worst * 100) < 1e-3
    assert abs(report["calmar"] - annual / worst) < 1e-3
    assert abs(report["return_pct"] - (equity[-1] / INITIAL - 1) * 100) < 1e-3


def test_monthly_returns_chain_the_month_end_equity(run: tuple[dict[str, Any], Path]) -> None:
    report, database = run
    month_end = period_ends(database, 7)
    previous, expected = INITIAL, []
    for month, close in month_end.items():
        expected.append((month, (close / previous - 1) * 100))
        previous = close
    shown = [(m["month"], m["return_pct"]) for m in report["monthly_returns"]]
    assert [m for m, _ in shown] == ["2025-09", "2025-10"] == [m for m, _ in expected]
    for (_, got), (_, want) in zip(shown, expected, strict=True):
        assert abs(got - want) < 1e-3


def test_the_benchmark_is_equal_weight_buy_and_hold_of_the_same_symbols(
    run: tuple[dict[str, Any], Path],
) -> None:
    report, _ = run
    store = CandleStore(bundled_sample_dir())
    growth = []
    for symbol in FOUR:
        bars = store.load_bars(symbol, "5m")
        first = bars.closed_before(int(START.timestamp() * 1000)) - 1
        last = bars.closed_before(int(END.timestamp() * 1000)) - 1
        growth.append(float(bars.close[last] / bars.close[first]))
    expected = (sum(growth) / len(growth) - 1) * 100
    assert abs(report["benchmark"]["return_pct"] - expected) < 1e-3


def test_the_decisions_are_tallied_as_a_query_for_each_tally_would(
    run: tuple[dict[str, Any], Path],
) -> None:
    """One scan gives both tallies: by day, gate and approval (the decisions chart's) and by
    gate and reason (the report's decisions_by_gate)."""
    _, database = run
    data = asyncio.run(load_run(database))
    by_day = rows(
        database,
        "SELECT substr(time, 1, 10), gate, approved, count(*) FROM decisions "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    by_reason = rows(database, "SELECT gate, reason, count(*) FROM decisions GROUP BY 1, 2")
    assert len(by_day) > 5
    assert data.decisions_by_day == by_day
    assert data.decision_counts == {(gate, reason): n for gate, reason, n in by_reason}
