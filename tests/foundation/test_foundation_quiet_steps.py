"""A backtest step that would find the account as the step before left it is repeated instead
of run (replay_quiet.py): the same run with every step run in full
(`backtest.skip_quiet_steps=false`) writes the same database, row for row — orders, fills,
trades, position events, equity, decisions, the governor's events and every saved state (the
counts of repeated steps aside). The windows hold what a repeat must not step over: an
emergency shutdown reset by the simulated operator in the middle of an hour, hourly-loss pauses
and losing streaks ending in the middle of an hour, UTC midnights, and, with positions open,
the stop maths, triggers and the thresholds the cycle's gates compare the account with (with
the check of those left out, the second window's decisions differ). A step whose keeper tick
ran may still repeat its cycle (`QuietSteps.repeats_cycle`); a keeper tick that would only
record new highs or lows is booked instead of run (`QuietSteps.tick_spared`). Steps with
positions open are also found to repeat a stretch at a time, checked at its extreme marks
(`QuietSteps._stretch`), and, where the base's inputs read prices, those checked over the
range of prices the stretch shows (`QuietChecks.unmoved_within`) or else at each step's own
(`QuietChecks.priced_prefix`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ensemble_builders import TINY

from quantum_trader.backtest import UNCHANGED_KEY, BacktestRequest, run_backtest
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.walk_forward import Block, train_block

# Two replays of ten days of five-minute bars: ≈ 10–20 s on the busy 2-core machine.
pytestmark = pytest.mark.slow

WINDOWS = {
    "operator reset": (datetime(2025, 10, 12, tzinfo=UTC), datetime(2025, 10, 20, tzinfo=UTC)),
    "streaks": (datetime(2025, 10, 20, tzinfo=UTC), datetime(2025, 10, 30, tzinfo=UTC)),
}
EXPECTED_EVENTS: dict[str, set[tuple[str, str | None]]] = {
    "operator reset": {("TRIPPED", "TOTAL_DECLINE"), ("RESET", None), ("CLEARED", "HOURLY_LOSS")},
    "streaks": {("CLEARED", "LOSING_STREAK"), ("CLEARED", "HOURLY_LOSS")},
}
SKIP_TABLES = {"schema_version"}  # when the file was created
COUNTS = {
    "repeated_steps",
    "repeated_with_positions",
    "repeated_with_new_extremes",
    "repeated_in_stretches",
    "repeated_in_priced_stretches",
    "priced_stretches_checked_at_once",
    "repeated_cycles",
    "spared_ticks",
}


def _backtest(
    out: Path,
    window: tuple[datetime, datetime],
    skip_quiet: bool,
    monitor: dict[str, float] | None = None,
    balancer: dict[str, float] | None = None,
    reset: str = "PT20H",
) -> Path:
    settings = Settings(
        data_dir=out,
        signals={"source": "rules"},
        # Not a whole day: the reset must not fall on the losing streak's 24 h expiry.
        backtest={"operator_reset_after": reset, "skip_quiet_steps": skip_quiet},
        monitor=monitor or {},
        balancer=balancer or {},
    )
    asyncio.run(run_backtest(settings, BacktestRequest(*window, out_dir=out)))
    return out / "backtest.db"


@pytest.fixture(scope="module", params=sorted(WINDOWS))
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, Path]:
    name, window = request.param, WINDOWS[request.param]
    repeating = _backtest(tmp_path_factory.mktemp("repeating"), window, skip_quiet=True)
    full = _backtest(tmp_path_factory.mktemp("full"), window, skip_quiet=False)
    return name, repeating, full


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
            payload = {k: v for k, v in json.loads(str(payload)).items() if k not in COUNTS}
        rows.append((namespace, key, payload))
    return rows


def test_every_row_is_the_same_with_and_without_repeating(runs: tuple[str, Path, Path]) -> None:
    _, repeating, full = runs
    _assert_same_rows(repeating, full)


def _assert_same_rows(repeating: Path, full: Path) -> None:
    assert _tables(repeating) == _tables(full)
    assert _rows(full, "SELECT count(*) FROM closed_trades") != [(0,)]
    for table in _tables(full):
        if table == "state":
            assert _state(repeating) == _state(full)
            continue
        query = f"SELECT * FROM {table} ORDER BY rowid"
        assert _rows(repeating, query) == _rows(full, query), table


def test_the_window_repeats_steps_around_the_timers_it_holds(
    runs: tuple[str, Path, Path],
) -> None:
    name, repeating, full = runs
    assert {_unchanged(full)[count] for count in COUNTS} == {0}
    counts = _unchanged(repeating)
    assert int(str(counts["repeated_steps"])) > 200
    assert int(str(counts["repeated_with_positions"])) > 100  # stops and triggers not crossed
    # Of them, steps whose tick records a new high or low on a position and nothing else.
    assert int(str(counts["repeated_with_new_extremes"])) > 50
    # Of them, steps found to repeat with the stretch they are in (its extreme marks checked).
    assert int(str(counts["repeated_in_stretches"])) > 50
    # Of them, steps of a base whose inputs read prices: its stretches checked at once over
    # the range of prices they show, or else step by step at their own.
    assert int(str(counts["repeated_in_priced_stretches"])) > 50
    assert int(str(counts["priced_stretches_checked_at_once"])) > 5
    # Cycles repeated after a keeper tick that ran (a new high or low recorded, say).
    assert int(str(counts["repeated_cycles"])) > 50
    # Keeper ticks that would change nothing but the highs and lows, booked instead of run.
    assert int(str(counts["spared_ticks"])) > 50
    events = [
        json.loads(str(payload))
        for (payload,) in _rows(
            full, "SELECT payload FROM state WHERE namespace = 'governor_events'"
        )
    ]
    assert EXPECTED_EVENTS[name] <= {(e["kind"], e["breaker"]) for e in events}
    # Each ends off the hour: a repeat that ran on to the next hour would have moved it.
    ends = [e for e in events if e["kind"] in ("CLEARED", "RESET")]
    assert any(":00:00" not in e["time"] for e in ends)


def test_what_reads_the_clock_inside_a_stretch_changes_no_row(tmp_path: Path) -> None:
    """A stretch of quiet steps is checked once, at its last step (`QuietSteps._stretch`): the
    keeper's time exit and a moved stop's replacement held back become due and stay due. With
    positions held at most three hours and a stop replaced at most every quarter hour, both
    fall inside stretches; checking at the stretch's first step instead changes the ledger."""
    window = WINDOWS["operator reset"]
    monitor = {"max_hold_h": 3.0, "stop_replace_min_interval_s": 900.0}
    repeating = _backtest(tmp_path / "repeating", window, skip_quiet=True, monitor=monitor)
    full = _backtest(tmp_path / "full", window, skip_quiet=False, monitor=monitor)
    _assert_same_rows(repeating, full)
    exits = _rows(full, "SELECT count(*) FROM closed_trades WHERE exit_reason = 'TIME_EXIT'")
    assert int(str(exits[0][0])) > 5
    counts = _unchanged(repeating)
    assert int(str(counts["repeated_in_stretches"])) > 50
    assert int(str(counts["repeated_in_priced_stretches"])) > 50


def test_a_priced_stretch_reaching_where_a_candidate_fits_runs_its_steps(tmp_path: Path) -> None:
    """Where the base's inputs read prices, a stretch is checked at once over the range of
    prices its steps show (`QuietChecks.unmoved_within`; balancer_holds.py `within`). In this
    month a stretch reaches prices at which a denied candidate fits: a range check that
    always found the denials holding makes the repeating run's decisions differ from there
    on (found so; the windows above never reach such prices)."""
    window = (datetime(2025, 9, 7, tzinfo=UTC), datetime(2025, 10, 9, tzinfo=UTC))
    repeating = _backtest(tmp_path / "repeating", window, skip_quiet=True)
    full = _backtest(tmp_path / "full", window, skip_quiet=False)
    _assert_same_rows(repeating, full)
    assert int(str(_unchanged(repeating)["priced_stretches_checked_at_once"])) > 5


TIGHTER = {
    "sector 0.3, net 0.5": {"max_sector_concentration": 0.3, "max_net_exposure": 0.5},
    "net 0.4": {"max_net_exposure": 0.4},
}


@pytest.mark.parametrize("limits", sorted(TIGHTER))
def test_tighter_limits_put_priced_stretches_at_their_edges(tmp_path: Path, limits: str) -> None:
    """With the balancer's limits tighter than the defaults, more of its priced refusals sit
    near their edges while a stretch's prices move. Over the bundled sample's three months
    (the simulated operator after a day) the range check's own part decides rows: its range
    taken from the last step's prices only, or its accounts from one corner only, changes
    the ledger with the first limits; the governor left unchecked at the corners, with the
    second (found so; the default limits' windows above catch none of the three)."""
    window = (datetime(2025, 9, 7, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
    balancer = TIGHTER[limits]
    runs = [
        _backtest(tmp_path / str(skip), window, skip, balancer=balancer, reset="P1D")
        for skip in (True, False)
    ]
    _assert_same_rows(*runs)
    assert int(str(_unchanged(runs[0])["priced_stretches_checked_at_once"])) > 5


FOUR = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT")


def test_a_trained_ensemble_repeats_as_every_step_run_in_full(tmp_path: Path) -> None:
    """The same with a trained ensemble's signals instead of the rule agent's: every row of
    the database with repeating on and off, and stretches found, priced ones included."""
    window = (datetime(2025, 9, 2, tzinfo=UTC), datetime(2025, 9, 25, tzinfo=UTC))

    def settings(data_dir: Path, skip_quiet: bool) -> Settings:
        return Settings(
            data_dir=data_dir,
            market=MarketSettings(symbols=FOUR),
            ensemble=TINY,
            backtest={"operator_reset_after": "PT12H", "skip_quiet_steps": skip_quiet},
        )

    models = tmp_path / "models"
    train_block(settings(tmp_path, True), FOUR, Block(window[0], window[0]), 7, models)
    databases = []
    for skip_quiet in (True, False):
        data_dir = tmp_path / f"skip-{skip_quiet}"
        data_dir.mkdir()
        (data_dir / "models").symlink_to(models)
        request = BacktestRequest(*window, out_dir=data_dir / "out")
        asyncio.run(run_backtest(settings(data_dir, skip_quiet), request))
        databases.append(data_dir / "out" / "backtest.db")
    repeating, full = databases
    _assert_same_rows(repeating, full)
    counts = _unchanged(repeating)
    assert int(str(counts["repeated_in_stretches"])) > 50
    assert int(str(counts["repeated_in_priced_stretches"])) > 50
