"""A backtest step that would find the flat account as the step before left it is repeated
instead of run (replay_quiet.py): the same run with every step run in full
(`backtest.skip_quiet_steps=false`) writes the same database, row for row — orders, fills,
trades, position events, equity, decisions, the governor's events and every saved state (the
count of repeated steps aside). The window holds what a repeat must not step over: an emergency
shutdown reset by the simulated operator in the middle of an hour, hourly-loss pauses ending
in the middle of an hour, UTC midnights, all while the account is flat."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantum_trader.backtest import UNCHANGED_KEY, BacktestRequest, run_backtest
from quantum_trader.config import Settings

# Two replays of eight days of five-minute bars: ≈ 10–20 s on the busy 2-core machine.
pytestmark = pytest.mark.slow

WINDOW = (datetime(2025, 10, 12, tzinfo=UTC), datetime(2025, 10, 20, tzinfo=UTC))
SKIP_TABLES = {"schema_version"}  # when the file was created


def _backtest(out: Path, skip_quiet: bool) -> Path:
    settings = Settings(
        data_dir=out,
        signals={"source": "rules"},
        backtest={"operator_reset_after": "P1D", "skip_quiet_steps": skip_quiet},
    )
    asyncio.run(run_backtest(settings, BacktestRequest(*WINDOW, out_dir=out)))
    return out / "backtest.db"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    repeating = _backtest(tmp_path_factory.mktemp("repeating"), skip_quiet=True)
    full = _backtest(tmp_path_factory.mktemp("full"), skip_quiet=False)
    return repeating, full


def _rows(database: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def _tables(database: Path) -> list[str]:
    names = _rows(database, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [str(name) for (name,) in names if name not in SKIP_TABLES]


def _unchanged(database: Path) -> dict[str, object]:
    query = "SELECT payload FROM state WHERE namespace = '{}' AND key = '{}'".format(*UNCHANGED_KEY)
    payload: dict[str, object] = json.loads(str(_rows(database, query)[0][0]))
    return payload


def _state(database: Path) -> list[tuple[object, ...]]:
    """Every saved state but the count of repeated steps (`updated_at` is the wall clock)."""
    rows: list[tuple[object, ...]] = []
    for namespace, key, payload in _rows(
        database, "SELECT namespace, key, payload FROM state ORDER BY namespace, key"
    ):
        if (namespace, key) == UNCHANGED_KEY:
            payload = {k: v for k, v in json.loads(str(payload)).items() if k != "repeated_steps"}
        rows.append((namespace, key, payload))
    return rows


def test_every_row_is_the_same_with_and_without_repeating(runs: tuple[Path, Path]) -> None:
    repeating, full = runs
    assert _tables(repeating) == _tables(full)
    assert _rows(full, "SELECT count(*) FROM closed_trades") != [(0,)]
    for table in _tables(full):
        if table == "state":
            assert _state(repeating) == _state(full)
            continue
        query = f"SELECT * FROM {table} ORDER BY rowid"
        assert _rows(repeating, query) == _rows(full, query), table


def test_the_window_repeats_steps_around_the_timers_it_holds(runs: tuple[Path, Path]) -> None:
    repeating, full = runs
    assert _unchanged(full)["repeated_steps"] == 0
    assert int(str(_unchanged(repeating)["repeated_steps"])) > 100
    events = [
        json.loads(str(payload))
        for (payload,) in _rows(
            full, "SELECT payload FROM state WHERE namespace = 'governor_events'"
        )
    ]
    kinds = {(e["kind"], e["breaker"]) for e in events}
    assert ("RESET", None) in kinds  # the simulated operator's, a day after the shutdown
    assert ("TRIPPED", "TOTAL_DECLINE") in kinds
    assert ("CLEARED", "HOURLY_LOSS") in kinds  # a pause's end
    off_the_hour = [e for e in events if e["kind"] == "RESET" and ":00:00" not in e["time"]]
    assert off_the_hour  # a repeat that ran to the next hour would have moved it
