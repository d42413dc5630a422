"""Halts in the open: a backtest that trips the governor shows every halt, when and why, the
share of the period not traded, and when a simulated operator reset an emergency shutdown."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from report_builders import FOUR, backtest, summary_text, utc

from quantum_trader.backtest import BacktestRequest
from quantum_trader.config import BacktestSettings, MarketSettings, Settings
from quantum_trader.gates.settings import GovernorSettings
from quantum_trader.report.model import BacktestReport

START, END = utc(2025, 9, 15), utc(2025, 9, 25)
RESET_AFTER = timedelta(hours=12)


def settings(tmp: Path, reset_after: timedelta | None) -> Settings:
    """The rule agent on four symbols; a 0.3 % decline from the start shuts trading down."""
    return Settings(
        data_dir=tmp,
        signals={"source": "rules"},
        market=MarketSettings(symbols=FOUR),
        governor=GovernorSettings(max_decline_from_start=0.003),
        backtest=BacktestSettings(operator_reset_after=reset_after),
    )


def run(
    tmp_path_factory: pytest.TempPathFactory, reset_after: timedelta | None
) -> tuple[BacktestReport, Path]:
    out = tmp_path_factory.mktemp("halts")
    report = backtest(settings(out, reset_after), BacktestRequest(START, END, out_dir=out))
    return report, out


@pytest.fixture(scope="module")
def halted(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestReport, Path]:
    return run(tmp_path_factory, None)


@pytest.fixture(scope="module")
def reset(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestReport, Path]:
    return run(tmp_path_factory, RESET_AFTER)


def recorded_events(out: Path) -> list[str]:
    """The governor's events as the database holds them (state namespace governor_events)."""
    with closing(sqlite3.connect(f"file:{out / 'backtest.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT key FROM state WHERE namespace = 'governor_events'").fetchall()
    return sorted(key for (key,) in rows)


def first_shutdown(report: BacktestReport) -> dict[str, object]:
    return next(
        e
        for e in report.halts["events"]
        if e["event"] == "TRIPPED" and e["breaker"] == "TOTAL_DECLINE"
    )


def test_every_governor_event_of_the_database_is_in_the_report(
    halted: tuple[BacktestReport, Path],
) -> None:
    report, out = halted
    keys = recorded_events(out)
    assert keys, "the governor never tripped: the scenario no longer tests halts"
    shown = sorted(
        f"{e['time']} {e['event']} {e['breaker'] or '-'}" for e in report.halts["events"]
    )
    assert shown == keys
    for event in report.halts["events"]:
        assert event["time"]
        assert event["decision"]
        assert event["state_after"]
        if event["event"] == "TRIPPED":
            assert event["reason"], event  # why it tripped


def test_an_emergency_shutdown_without_an_operator_halts_to_the_end(
    halted: tuple[BacktestReport, Path],
) -> None:
    report, out = halted
    trip = first_shutdown(report)
    tripped_at = datetime.fromisoformat(str(trip["time"]))
    assert trip["decision"] == "EMERGENCY_SHUTDOWN"
    last = report.halts["periods"][-1]
    assert last["end"] is None
    assert last["ended_by"] == "end of backtest"
    assert last["worst_state"] == "HALTED"
    assert any(c.startswith("TOTAL_DECLINE") for c in last["causes"])
    assert report.halts["operator_resets"] == []
    # Not traded: at least from the shutdown to the end (plus any earlier halt).
    assert report.halts["share_not_traded"] >= (END - tripped_at) / (END - START) - 1e-6
    summary = summary_text(report, out)
    assert "TOTAL_DECLINE" in summary
    assert tripped_at.strftime("%Y-%m-%d %H:%M") in summary
    assert "of the time not traded" in summary
    assert "TOTAL_DECLINE" in (out / "report.html").read_text()


def test_a_simulated_operator_resets_the_shutdown_after_the_stated_time(
    reset: tuple[BacktestReport, Path],
) -> None:
    report, out = reset
    tripped_at = datetime.fromisoformat(str(first_shutdown(report)["time"]))
    resets = report.halts["operator_resets"]
    assert resets, "no simulated reset"
    reset_at = datetime.fromisoformat(resets[0]["time"])
    # At the first 5 m step once the halt has lasted operator_reset_after.
    assert tripped_at + RESET_AFTER <= reset_at < tripped_at + RESET_AFTER + timedelta(minutes=5)
    assert "backtest.operator_reset_after=12:00:00" in resets[0]["by"]
    ended = [p for p in report.halts["periods"] if p["ended_by"].startswith("reset by")]
    assert ended
    assert ended[0]["end"] == resets[0]["time"]
    summary = summary_text(report, out)
    assert f"reset {reset_at.strftime('%Y-%m-%dT%H:%M')}" in summary
    # Trading resumed after the reset.
    opened_after = [t for t in report.trade_list if t["opened_at"] > resets[0]["time"]]
    assert opened_after, "nothing traded after the simulated reset"


def test_the_reset_is_off_by_default() -> None:
    assert Settings().backtest.operator_reset_after is None


@pytest.mark.slow
def test_status_and_trades_read_the_backtest_database(
    halted: tuple[BacktestReport, Path], tmp_path: Path
) -> None:
    from daemon_harness import cli

    report, out = halted
    database = str(out / "backtest.db")
    status = cli(tmp_path, "status", "--db", database)
    assert status.returncode == 0, status.stderr
    assert f"│ {len(report.halts['events'])}; last " in status.stdout  # governor events
    assert "EMERGENCY_SHUTDOWN" in status.stdout  # still halted at the end
    trades = cli(tmp_path, "trades", "--db", database, "--limit", "100")
    assert trades.returncode == 0, trades.stderr
    assert f"Closed trades (newest {min(report.trades, 100)})" in trades.stdout
    for row in report.trade_list[-100:]:  # each cell whole, though piped (was: cut at 80 columns)
        closed = datetime.fromisoformat(row["closed_at"]).isoformat(timespec="minutes")
        assert f"│ {closed} │ {row['symbol']} │" in trades.stdout
        assert f"│ {row['exit_reason']} " in trades.stdout
    assert "…" not in trades.stdout
    as_json = cli(tmp_path, "trades", "--db", database, "--limit", "100", "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["database"] == database
    assert len(document["trades"]) == min(report.trades, 100)
    assert all(isinstance(t["pnl_usdt"], str) for t in document["trades"])
    held = cli(tmp_path, "positions", "--db", database, "--json")  # was: no such option
    assert held.returncode == 0, held.stderr
    assert all(p["mark_price"] is None for p in json.loads(held.stdout)["positions"])
    state = json.loads(cli(tmp_path, "status", "--db", database, "--json").stdout)
    assert state["governor"]["decision"] == "EMERGENCY_SHUTDOWN"
    assert state["governor_events"]["count"] == len(report.halts["events"])
    assert state["analytics"] is None  # a backtest keeps its own report
    # The data directory's daemon is not described beside the backtest's figures.
    assert state["daemon"] is None
    (daemon_row,) = [line for line in status.stdout.splitlines() if line.startswith("│ daemon ")]
    assert "— (a database read with --db)" in daemon_row


def test_a_long_halt_prints_each_breaker_once_with_the_count_of_the_rest() -> None:
    """A halt that lasts gathers every trip (a year's end, dozens of volatility spikes): the
    terminal shows each breaker's first, and how many more the page lists."""
    from quantum_trader.report.summary import _period_line

    causes = [
        "HOURLY_LOSS (loss 0.0075)",
        *(
            f"VOLATILITY_SPIKE (BTC/USDT:USDT hourly return at -{3 + i / 10:.2f}σ)"
            for i in range(40)
        ),
        "TOTAL_DECLINE (decline 0.0505)",
    ]
    period = {
        "start": "2025-10-13T04:10:00+00:00",
        "end": None,
        "hours": 1171.8,
        "worst_state": "HALTED",
        "causes": causes,
        "ended_by": "end of backtest",
    }
    line = _period_line(period)
    assert (
        "HOURLY_LOSS (loss 0.0075); VOLATILITY_SPIKE (BTC/USDT:USDT hourly return at -3.00σ)"
        in line
    )
    assert "TOTAL_DECLINE (decline 0.0505)" in line  # a breaker that came last is still named
    assert "-3.10σ" not in line
    assert "39 more trip(s) of these (report.html)" in line
    assert "2025-10-13 04:10 → end of backtest (1171.8 h) HALTED" in line
