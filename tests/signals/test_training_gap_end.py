"""A training window whose end (`ensemble.training_end`, a walk-forward block's start) falls in
a gap of one symbol's candles: the note says it is a gap, not that the data ends (found by an
outside probe of the ML commands, 2026-12-06: "bring ETH/USDT:USDT's data up to date")."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
from ml_fixtures import settings_for
from test_ml_other_data import BTC, ETH, TREES, copy_hourly, file_of

from quantum_trader.signals.labels import ExitRules
from quantum_trader.signals.panel import load_panel
from quantum_trader.signals.rules import RuleAgent


def without(market: Path, symbol: str, start: datetime, end: datetime) -> None:
    """`symbol`'s candles in `market` with [start, end) taken out: a gap in the recording."""
    path = market / file_of(symbol, "futures")
    table = feather.read_table(path)
    dates = table.column("date")
    bounds = (pa.scalar(start, dates.type), pa.scalar(end, dates.type))
    kept = pc.or_(pc.less(dates, bounds[0]), pc.greater_equal(dates, bounds[1]))
    feather.write_feather(table.filter(kept), path)


def test_a_training_end_inside_a_gap_is_said_to_be_a_gap(tmp_path: Path) -> None:
    market = tmp_path / "market"
    copy_hourly(market, BTC, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    copy_hourly(market, ETH, datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    without(market, ETH, datetime(2025, 8, 5, tzinfo=UTC), datetime(2025, 8, 15, tzinfo=UTC))
    ensemble = TREES.model_copy(
        update={"training_end": datetime(2025, 8, 10, tzinfo=UTC), "training_days": 30}
    )
    settings = settings_for(tmp_path, ensemble=ensemble)
    panel = load_panel(
        ensemble,
        ExitRules.of(settings),
        RuleAgent(settings.signals),
        market,
        (BTC, ETH),
        need_windows=False,
    )
    assert panel.notes[0] == (
        "ETH/USDT:USDT's candles miss 10 days from 2025-08-05 00:00 to 2025-08-15 00:00, a gap "
        "ensemble.training_end falls in (a walk-forward: the block's start): training ends at "
        "2025-08-04 23:00 for every symbol, though other symbols' go on to 2025-08-09 23:00; move "
        "training_end past the gap (a walk-forward: --start or --block-days, so that no block "
        "begins in it), or leave ETH/USDT:USDT out of market.symbols"
    )
