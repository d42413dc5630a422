"""`quantum-trader backtest`: 30 days x 8 symbols of the bundled sample, reconciled with fills."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.config import Settings
from quantum_trader.report.reconcile import reconcile
from quantum_trader.storage.sqlite import SqliteRepository


@pytest.fixture(scope="module")
def thirty_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    out = tmp_path_factory.mktemp("backtest")
    settings = Settings(data_dir=out, signals={"source": "rules"})
    request = BacktestRequest(
        start=datetime(2025, 9, 10, tzinfo=UTC),
        end=datetime(2025, 10, 10, tzinfo=UTC),
        out_dir=out,
    )
    asyncio.run(run_backtest(settings, request))
    return out


TABLES = ("decisions", "position_events", "equity_snapshots", "orders", "fills", "closed_trades")


def test_helper_processes_leave_the_database_as_the_run_without_them(
    thirty_days: Path, tmp_path: Path
) -> None:
    """The correlations computed and the decisions inserted by processes of their own: every
    table holds the same rows in the same order, and nothing was left to the main process."""
    import asyncio
    import sqlite3

    from structlog.testing import capture_logs

    from quantum_trader.storage.sqlite import FLUSH_THRESHOLD_ROWS

    settings = Settings(data_dir=tmp_path, signals={"source": "rules"})
    request = BacktestRequest(
        start=datetime(2025, 9, 10, tzinfo=UTC),
        end=datetime(2025, 10, 10, tzinfo=UTC),
        out_dir=tmp_path,
        helper_processes=True,
    )
    with capture_logs() as logs:
        asyncio.run(run_backtest(settings, request))
    assert [entry["event"] for entry in logs if "_process_" in entry["event"]] == []

    def rows(out: Path, table: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(out / "backtest.db") as connection:
            return connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()

    assert len(rows(thirty_days, "decisions")) > FLUSH_THRESHOLD_ROWS  # a batch went aside
    for table in TABLES:
        assert rows(tmp_path, table) == rows(thirty_days, table), table


def test_the_report_covers_thirty_days_of_eight_symbols(thirty_days: Path) -> None:
    report = json.loads((thirty_days / "report.json").read_text())
    assert len(report["symbols"]) == 8
    assert report["start"].startswith("2025-09-10")
    assert report["end"].startswith("2025-10-10")
    assert report["candles"] == 8 * 30 * 288
    assert report["trades"] > 0


def test_every_trade_reconciles_exactly_with_the_fills_in_its_database(thirty_days: Path) -> None:
    report = json.loads((thirty_days / "report.json").read_text())
    assert report["reconciled"] is True
    assert report["reconciliation_errors"] == []
    assert len(report["trade_list"]) == report["trades"]


async def test_reconciliation_catches_a_trade_that_does_not_match_its_fills(
    thirty_days: Path,
) -> None:
    database = await SqliteRepository.open(thirty_days / "backtest.db", read_only=True)
    try:
        trades, fills, orders = (
            await database.closed_trades(),
            await database.fills(),
            await database.orders(),
        )
    finally:
        await database.close()
    assert reconcile(trades, fills, orders) == []
    tampered = [replace(trades[0], pnl_usdt=trades[0].pnl_usdt + Decimal("0.01")), *trades[1:]]
    assert len(reconcile(tampered, fills, orders)) == 1
    assert len(reconcile(trades[1:], fills, orders)) == 1  # a round trip without its trade


def test_the_report_counts_decisions_by_gate_and_reason(thirty_days: Path) -> None:
    report = json.loads((thirty_days / "report.json").read_text())
    gates = report["decisions_by_gate"]
    for gate in ("signal_filter", "orchestrator", "balancer", "governor", "risk_guard", "sizer"):
        assert gate in gates, gate
    assert gates["execution"]["APPROVED"] == report["trades"] + report["open_positions"]


def test_exits_are_counted_by_reason(thirty_days: Path) -> None:
    report = json.loads((thirty_days / "report.json").read_text())
    assert sum(report["exits_by_reason"].values()) == report["trades"]
