"""The daemon and the backtest decide the same: two days of the bundled sample replayed through
the daemon's own runtime and per-tick steps, and through `quantum-trader backtest`, give the same
decisions (cycle by cycle, verdict by verdict), the same orders, fills and exits.

The backtest records a cycle unchanged since cycle N once (its spans); expanded, each such
cycle carries cycle N's verdicts. The daemon's signals come from a trailing window, so their
confidences differ from the whole history's by what is left of the EMA seeds (≈ 4e-5, see
test_foundation_market.py): confidences are compared to 1e-3 and the numbers inside a verdict's
detail are masked; everything else (gate, symbol, approval, reason, times, sides) is exact.
Within that bound a near-tie (confidence < NEAR_TIE) can be HOLD on one side and a weak
direction denied as LOW_CONFIDENCE on the other: those filter denials are left out on both.

The daemon side is `open_runtime` as `run` opens it in paper mode (the live market view computed
each cycle from the feed's trailing window, SQLite, the paper exchange with its state file, the
reconciled core) with `open_operations`, stepped by the daemon's own `_monitor_tick` and
`_cycle` at each 5 m bar close on a manual clock: the accelerated replay with its scheduler
replaced by the test, so that the two runs meet at the same instants. The backtest keeps its
precomputed market model and in-memory ledger. Both run the unchanged-cycle skip (the default).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quantum_trader.app import open_runtime
from quantum_trader.app_ops import open_operations
from quantum_trader.backtest import UNCHANGED_KEY, BacktestRequest, run_backtest
from quantum_trader.clock import ManualClock
from quantum_trader.config import Settings
from quantum_trader.daemon import _cycle, _monitor_tick
from quantum_trader.ops.metrics import Metrics

# Two replays of days of five-minute bars: ≈ 15–25 s on the busy 2-core machine.
pytestmark = pytest.mark.slow

START, END = datetime(2025, 9, 14, tzinfo=UTC), datetime(2025, 9, 16, tzinfo=UTC)
STEP = timedelta(minutes=5)
DECISIONS = (
    "SELECT cycle_id, time, gate, symbol, approved, reason, detail, until, size_factor, "
    "exit_mode, tp_r_multiple, confidence, side FROM decisions ORDER BY id"
)
NEAR_TIE = 0.01
NUMBER = re.compile(r"\d+\.\d+")
Row = tuple[object, ...]
ORDERS = "SELECT * FROM orders ORDER BY client_order_id"
FILLS = "SELECT * FROM fills ORDER BY id"
TRADES = "SELECT * FROM closed_trades ORDER BY id"


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        signals={"source": "rules"},
        executor={"interval_s": STEP.total_seconds()},
        market={"replay_start": START, "history_bars": 2500},
        server={"port": 0},
    )


async def _daemon(data_dir: Path) -> Path:
    settings = _settings(data_dir)
    async with AsyncExitStack() as stack:
        metrics = Metrics()
        runtime = await open_runtime(settings, stack, ManualClock, asyncio.Event(), metrics)
        ops = await open_operations(runtime, metrics, stack)
        assert isinstance(runtime.clock, ManualClock)
        now = START
        while now < END:
            runtime.clock.set(now)
            await _monitor_tick(runtime, ops, now)
            await _cycle(runtime, ops, now)
            now += STEP
        await runtime.repository.flush()
    return data_dir / "quantum_trader.db"


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    daemon = asyncio.run(_daemon(tmp_path_factory.mktemp("daemon")))
    out = tmp_path_factory.mktemp("backtest")
    asyncio.run(run_backtest(_settings(out), BacktestRequest(START, END, out_dir=out)))
    return daemon, out / "backtest.db"


def _rows(database: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def _by_cycle(rows: list[Row]) -> dict[int, list[Row]]:
    """Verdicts by cycle number, without the cycle id and time, numbers in details masked."""
    cycles: dict[int, list[Row]] = {}
    for cycle_id, _time, gate, symbol, approved, reason, detail, *rest in rows:
        if reason == "LOW_CONFIDENCE" and float(str(rest[-2])) < NEAR_TIE:
            continue
        masked = NUMBER.sub("#", str(detail))
        cycles.setdefault(int(str(cycle_id)[1:]), []).append(
            (gate, symbol, approved, reason, masked, *rest)
        )
    return cycles


def _expanded(backtest: Path) -> dict[int, list[Row]]:
    cycles = _by_cycle(_rows(backtest, DECISIONS))
    query = "SELECT payload FROM state WHERE namespace = '{}' AND key = '{}'"
    (payload,) = _rows(backtest, query.format(*UNCHANGED_KEY))[0]
    for since, first, last in json.loads(str(payload))["spans"]:
        for cycle in range(first, last + 1):
            cycles[cycle] = cycles.get(since, [])
    return {cycle: verdicts for cycle, verdicts in cycles.items() if verdicts}


def test_the_daemon_and_the_backtest_reach_the_same_decisions(
    databases: tuple[Path, Path],
) -> None:
    daemon, backtest = databases
    theirs, ours = _by_cycle(_rows(daemon, DECISIONS)), _expanded(backtest)
    assert ours, "the window decides nothing: choose one that does"
    assert sorted(theirs) == sorted(ours)
    for cycle, verdicts in ours.items():
        assert len(theirs[cycle]) == len(verdicts), f"c{cycle}"
        for a, b in zip(theirs[cycle], verdicts, strict=True):
            assert a[:-2] == b[:-2], f"c{cycle}"
            assert a[-2] == pytest.approx(b[-2], abs=1e-3), f"c{cycle} confidence"
            assert a[-1] == b[-1], f"c{cycle} side"


def test_the_daemon_and_the_backtest_place_the_same_orders_and_exit_the_same(
    databases: tuple[Path, Path],
) -> None:
    daemon, backtest = databases
    assert _rows(backtest, TRADES), "no exit in the window: choose one with trades"
    for name, query in {"orders": ORDERS, "fills": FILLS, "trades": TRADES}.items():
        assert _rows(daemon, query) == _rows(backtest, query), name
