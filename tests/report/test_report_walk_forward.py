"""`quantum-trader walk-forward` trains each block's models only on data before the block:
changing the bars after a block's start changes nothing the earlier blocks saw or did."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from report_builders import TWO, copy_market, tiny_settings, utc

from quantum_trader.report.model import BacktestReport
from quantum_trader.walk_forward import Block, WalkForwardRequest, plan_blocks, run_walk_forward

MODEL_FILES = (".json", ".txt", ".pt")  # not manifest.json: see below

pytestmark = pytest.mark.slow  # two walk-forwards of three blocks: ~10 s idle, ~25 s loaded

START, END = utc(2025, 9, 20), utc(2025, 10, 2)
# Inside the second block (09-24 .. 09-28): bars from here on are changed, so the third
# block's models (trained up to 09-28) see the change and the first two cannot.
LATER = utc(2025, 9, 26)


def perturb_after(directory: Path, moment: datetime) -> None:
    """Scale every price of bars opening at or after `moment` by a smooth 0–5 % ramp (OHLC
    stay consistent, no spike), in the 5 m and the 1 h files."""
    for path in directory.glob("*-futures.feather"):
        table = feather.read_table(path)
        opened = table.column("date").to_numpy().astype("datetime64[ms]").astype(np.int64)
        after = opened >= int(moment.timestamp() * 1000)
        ramp = np.ones(len(opened))
        ramp[after] += 0.05 * np.linspace(0, 1, int(after.sum()))
        columns = {
            name: pa.array(table.column(name).to_numpy() * ramp)
            if name in ("open", "high", "low", "close")
            else table.column(name)
            for name in table.column_names
        }
        feather.write_feather(pa.table(columns), path)


def walk_forward(data_dir: Path, market: Path) -> BacktestReport:
    request = WalkForwardRequest(
        block_days=4, training_days=7, start=START, end=END, symbols=TWO, out_dir=data_dir / "wf"
    )
    return asyncio.run(run_walk_forward(tiny_settings(data_dir, market), request))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[BacktestReport, Path], ...]:
    root = tmp_path_factory.mktemp("walk_forward")
    original = copy_market(root / "original", TWO)
    changed = copy_market(root / "changed", TWO)
    perturb_after(changed, LATER)
    return tuple(
        (walk_forward(root / name, market), root / name / "wf")
        for name, market in (("a", original), ("b", changed))
    )


def model_bytes(out: Path, block: int) -> dict[str, bytes]:
    directory = out / "models" / f"block-{block:02d}"
    model_set = directory / (directory / "CURRENT").read_text().strip()
    # the model files themselves; the manifest and CURRENT carry the set's random id
    return {
        p.name: p.read_bytes()
        for p in sorted(model_set.glob("*"))
        if p.suffix in MODEL_FILES and p.name != "manifest.json"
    }


def rows(out: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{out / 'backtest.db'}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


def test_each_block_is_traded_by_models_trained_before_it(
    runs: tuple[tuple[BacktestReport, Path], ...],
) -> None:
    report, _ = runs[0]
    assert report.sample == "OUT-OF-SAMPLE"
    assert report.signal_source == "walk-forward ensemble"
    periods = report.provenance["periods"]
    assert [p["start"][:10] for p in periods] == ["2025-09-20", "2025-09-24", "2025-09-28"]
    for period in periods:
        assert period["training_end"] <= period["start"]
        assert sorted(period["models"]) == ["lightgbm", "xgboost"]


def test_changing_later_bars_changes_no_earlier_block(
    runs: tuple[tuple[BacktestReport, Path], ...],
) -> None:
    (_, a), (_, b) = runs
    for block in (1, 2):
        assert model_bytes(a, block) == model_bytes(b, block), f"block {block} saw later bars"
    assert model_bytes(a, 3) != model_bytes(b, 3), "the change did not reach the last block"
    before = f"'{LATER.isoformat()}'"
    for sql in (
        f"SELECT time, gate, symbol, approved, reason, detail, confidence, side FROM decisions "
        f"WHERE time < {before} ORDER BY id",
        f"SELECT * FROM fills WHERE time < {before} ORDER BY time, trade_id",
        f"SELECT * FROM closed_trades WHERE closed_at < {before} ORDER BY closed_at",
        f"SELECT time, equity_usdt FROM equity_snapshots WHERE time < {before} ORDER BY time",
    ):
        earlier = rows(a, sql)
        assert earlier, sql
        assert earlier == rows(b, sql), sql
    later = f"SELECT time, gate, symbol, reason FROM decisions WHERE time >= {before}"
    assert rows(a, later) != rows(b, later)


def test_one_stitched_report_covers_every_block(
    runs: tuple[tuple[BacktestReport, Path], ...],
) -> None:
    report, out = runs[0]
    assert report.start == START.isoformat()
    assert report.end == END.isoformat()
    assert report.reconciled
    for name in ("report.json", "report.html", "backtest.db", "charts/equity.png"):
        assert (out / name).is_file(), name
    assert "walk-forward ensemble" in (out / "report.html").read_text()


def test_a_walk_forward_report_names_the_inputs_its_data_lack(tmp_path: Path) -> None:
    market = copy_market(tmp_path / "market", TWO)
    (market / "ETH_USDT_USDT-1h-funding_rate.feather").unlink()
    request = WalkForwardRequest(
        block_days=4,
        training_days=7,
        start=START,
        end=START + timedelta(days=4),
        symbols=TWO,
        out_dir=tmp_path / "wf",
    )
    report = asyncio.run(run_walk_forward(tiny_settings(tmp_path / "data", market), request))
    (line,) = report.missing_inputs
    assert line.startswith("funding rates: none recorded for ETH/USDT:USDT;")


@pytest.mark.parametrize("days", [12, 999_999_999, 1_000_000_000])
def test_a_block_as_long_as_the_window_or_beyond_the_calendar_is_the_window(days: int) -> None:
    # Was: OverflowError, a traceback, for --block-days beyond what a date can add.
    assert plan_blocks(START, END, days) == [Block(START, END)]
    assert [b.end for b in plan_blocks(START, END, 4)] == [utc(2025, 9, 24), utc(2025, 9, 28), END]


@pytest.mark.parametrize(
    ("days", "ends"),
    [
        # 12 days in 5-day blocks: the 2-day tail is traded by the second block's models.
        (5, [utc(2025, 9, 25), END]),
        # 12 days in 11-day blocks: a 1-day tail, not a block trained for one day.
        (11, [END]),
        # 12 days in 8-day blocks: a 4-day tail, half a block, is a block of its own.
        (8, [utc(2025, 9, 28), END]),
    ],
)
def test_a_tail_shorter_than_half_a_block_is_traded_by_the_block_before(
    days: int, ends: list[datetime]
) -> None:
    """Was: the window's last days, however few, were a block of their own: a model set
    trained (minutes) to trade one day, and reported as a block like the others."""
    blocks = plan_blocks(START, END, days)
    assert [b.end for b in blocks] == ends
    assert blocks[0].start == START
    assert all(a.end == b.start for a, b in itertools.pairwise(blocks))
