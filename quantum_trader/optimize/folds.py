"""The study's windows, and the market each window is allowed to see.

The recorded range is cut, from its end backwards, into a HOLDOUT block of `holdout_days` and,
before it, `folds + 1` consecutive blocks of `fold_days`:

    | block 0 | block 1 | ... | block F | HOLDOUT |
      IS f1     OOS f1          OOS fF     scored once, after the study, for the best settings
                IS f2

Fold i is scored out of sample on block i; its in-sample score is that of block i-1, the
block just before it, so the report shows the gap between the two.

Every block's backtest reads a copy of the market cut at that block's end (`cut_market`): bars
that close after it, funding settled at or after it, are not in the files it opens. So no
fold's score can depend on a later bar, and no trial's objective on the holdout, by
construction rather than by the care of the code that reads the data.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from quantum_trader.clock import ms_from_utc
from quantum_trader.errors import ConfigurationError, MarketDataError
from quantum_trader.market.layout import TIMEFRAME_MS, CandleKind, candle_file_name
from quantum_trader.market.rules import newest_rules_file
from quantum_trader.market.setup import REGIME_SYMBOL
from quantum_trader.record import record
from quantum_trader.walk_forward import Block


@record
class Layout:
    """`blocks[0]` is only ever in-sample; `blocks[1:]` are the folds' out-of-sample blocks."""

    blocks: tuple[Block, ...]
    holdout: Block

    @property
    def folds(self) -> int:
        return len(self.blocks) - 1

    def describe(self) -> dict[str, Any]:
        return {
            "blocks": [[b.start.isoformat(), b.end.isoformat()] for b in self.blocks],
            "holdout": [self.holdout.start.isoformat(), self.holdout.end.isoformat()],
        }


def plan_layout(
    first: datetime, last: datetime, fold_days: int, folds: int, holdout_days: int
) -> Layout:
    """Blocks ending at `last`, the holdout last; ConfigurationError when they do not fit
    between `first` (the first instant after warm-up) and `last`."""
    day = timedelta(days=1)
    # Whole days, so two runs on the same data agree to the bar whatever `last` is.
    last = datetime.combine(last.date(), datetime.min.time(), last.tzinfo)
    needed = (folds + 1) * fold_days + holdout_days
    # Compared as a count before any date is built: beyond the calendar it would overflow.
    if needed > (last - first) / day:
        raise ConfigurationError(
            [
                f"--folds {folds} --fold-days {fold_days} --holdout-days {holdout_days}: need "
                f"{needed} days after warm-up, the data covers {first.isoformat()} .. "
                f"{last.isoformat()}; use fewer or shorter folds, or more data"
            ]
        )
    holdout = Block(last - holdout_days * day, last)
    blocks = []
    end = holdout.start
    for _ in range(folds + 1):
        blocks.append(Block(end - fold_days * day, end))
        end -= fold_days * day
    blocks.reverse()
    return Layout(tuple(blocks), holdout)


def cut_market(source: Path, target: Path, symbols: Iterable[str], cut: datetime) -> Path:
    """Copy the recorded market of `symbols` (and BTC, the global regime's) into `target`,
    keeping only bars closed by `cut` and funding settled before it; the rules file as is.

    Written into a partial directory renamed at the end: a reader never sees half a market.
    """
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    cut_ms = ms_from_utc(cut)
    for symbol in dict.fromkeys([*symbols, REGIME_SYMBOL]):
        for timeframe, timeframe_ms in TIMEFRAME_MS.items():
            name = candle_file_name(symbol, timeframe)
            if (source / name).is_file():
                _copy_before(source / name, partial / name, cut_ms - timeframe_ms)
        funding = candle_file_name(symbol, "1h", CandleKind.FUNDING_RATE)
        if (source / funding).is_file():
            _copy_before(source / funding, partial / funding, cut_ms - 1)
    rules = newest_rules_file(source)
    if rules is not None:
        shutil.copyfile(rules, partial / rules.name)
    partial.rename(target)
    return target


def _copy_before(source: Path, target: Path, last_ms: int) -> None:
    """Rows whose `date` (open time, or settlement time) is at most `last_ms`."""
    table = feather.read_table(source)
    column = table["date"] if "date" in table.column_names else None
    if column is not None and pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    if column is None or not pa.types.is_integer(column.type):
        raise MarketDataError(f"{source.name}: no readable 'date' column to cut the data at")
    table = table.filter(pc.less_equal(column, pa.scalar(last_ms, column.type)))
    feather.write_feather(table, target)
