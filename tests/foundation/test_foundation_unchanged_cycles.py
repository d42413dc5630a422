"""A cycle whose inputs did not change is recorded as "unchanged since cycle N" instead of
running the filter and the approval chain again: the same backtest run with every cycle in
full (`executor.skip_unchanged_cycles=false`) reaches the same orders, fills, trades, exits,
equity and governor events, and each cycle it ran that the other skipped repeats, verdict for
verdict, the cycle the skip named — with one documented exception: where the named cycle's
candidates were all denied by the balancer in a way that holds at any price (none fits beside
the open positions), a later cycle is skipped while prices move, and the full run denies the
same candidates at the balancer, possibly naming another of its limits or other figures."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantum_trader.backtest import UNCHANGED_KEY, BacktestRequest, run_backtest
from quantum_trader.config import Settings

# Two replays of days of five-minute bars: ≈ 15–25 s on the busy 2-core machine.
pytestmark = pytest.mark.slow

WINDOW = (datetime(2025, 9, 12, tzinfo=UTC), datetime(2025, 9, 22, tzinfo=UTC))
LEDGER_QUERIES = {
    "orders": "SELECT * FROM orders ORDER BY client_order_id",
    "fills": "SELECT * FROM fills ORDER BY rowid",
    "trades": "SELECT * FROM closed_trades ORDER BY rowid",
    "position events": "SELECT * FROM position_events ORDER BY rowid",
    "equity": "SELECT * FROM equity_snapshots ORDER BY rowid",
    "governor events": "SELECT key, payload FROM state WHERE namespace = 'governor_events' "
    "ORDER BY key",
}
VERDICT = "gate, symbol, approved, reason, detail, until, size_factor, exit_mode, tp_r_multiple, "
VERDICT += "confidence, side, extra"


def _backtest(out: Path, skip_unchanged: bool) -> Path:
    settings = Settings(
        data_dir=out,
        signals={"source": "rules"},
        executor={"skip_unchanged_cycles": skip_unchanged},
    )
    asyncio.run(run_backtest(settings, BacktestRequest(*WINDOW, out_dir=out)))
    return out / "backtest.db"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    skipping = _backtest(tmp_path_factory.mktemp("skipping"), skip_unchanged=True)
    full = _backtest(tmp_path_factory.mktemp("full"), skip_unchanged=False)
    return skipping, full


def _rows(database: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def _verdicts_by_cycle(database: Path) -> dict[int, list[tuple[object, ...]]]:
    cycles: dict[int, list[tuple[object, ...]]] = defaultdict(list)
    for cycle_id, *verdict in _rows(database, f"SELECT cycle_id, {VERDICT} FROM decisions"):
        cycles[int(str(cycle_id)[1:])].append(tuple(verdict))
    return cycles


def _spans(database: Path) -> list[list[int]]:
    query = "SELECT payload FROM state WHERE namespace = ? AND key = ?"
    (payload,) = _rows(database, query.replace("?", "'{}'").format(*UNCHANGED_KEY))[0]
    spans: list[list[int]] = json.loads(str(payload))["spans"]
    return spans


def test_the_ledger_is_identical_with_and_without_skipping(runs: tuple[Path, Path]) -> None:
    skipping, full = runs
    assert _rows(full, "SELECT count(*) FROM closed_trades") != [(0,)]
    for name, query in LEDGER_QUERIES.items():
        assert _rows(skipping, query) == _rows(full, query), name


def test_unchanged_cycles_are_skipped_and_none_is_recorded_twice(
    runs: tuple[Path, Path],
) -> None:
    skipping, full = runs
    spans = _spans(skipping)
    skipped = {cycle for _, first, last in spans for cycle in range(first, last + 1)}
    recorded = set(_verdicts_by_cycle(skipping))
    assert skipped  # flat stretches between hourly signals repeat an earlier cycle
    assert not skipped & recorded
    assert _spans(full) == []


def _balancer_words_masked(verdicts: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The verdicts with the balancer's reason and detail left out (gate is column 0)."""
    return [(v[0], v[1], v[2], *v[5:]) if v[0] == "balancer" else v for v in verdicts]


def test_each_skipped_cycle_repeats_the_verdicts_of_the_cycle_it_names(
    runs: tuple[Path, Path],
) -> None:
    skipping, full = runs
    ran, every = _verdicts_by_cycle(skipping), _verdicts_by_cycle(full)
    since = {c: base for base, first, last in _spans(skipping) for c in range(first, last + 1)}
    held_by_balancer = 0
    for cycle in sorted(set(every) | set(ran) | set(since)):
        expected = every.get(cycle, [])
        if cycle in since:
            named = every.get(since[cycle], [])
            assert _balancer_words_masked(expected) == _balancer_words_masked(named), f"c{cycle}"
            held_by_balancer += expected != named
        else:
            assert ran.get(cycle, []) == expected, f"c{cycle}"
    assert held_by_balancer > 0  # the window exercises denials that hold while prices move
