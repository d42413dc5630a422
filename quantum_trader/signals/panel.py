"""The training panel: every (symbol, hour) row with its inputs, its two labels and the folds.

Data: closed 1h bars (the recorded 1h file, else 5m resampled) and funding from a candle-store
directory; the last `training_days` days common to all symbols. A row is an hour t with every
feature defined, a full forecaster window behind it, and both triple-barrier labels known (a
long and a short entered at the close of t, signals/labels.py). `label_end_ms` is when the later
of the two trades was closed: the label's own future window ends there.

Folds: the last `validation_fraction` of the hours is cut into `walk_forward_folds` consecutive
test blocks by scikit-learn's TimeSeriesSplit (expanding window). A block's training rows are
purged: only rows whose label window ended `embargo_h` hours before the block's first hour are
used, so no training label overlaps what a test row could reveal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import TimeSeriesSplit

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import Bars, FloatArray
from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS, resample_hourly
from quantum_trader.record import record
from quantum_trader.signals.features import compute_features, usable_rows
from quantum_trader.signals.labels import EXIT_CODES, ExitRules, triple_barrier_labels
from quantum_trader.signals.models.base import Batch, BoolArray, Int8Array
from quantum_trader.signals.models.batch import SymbolFrame, build_batch
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import EnsembleSettings

Int64Array = npt.NDArray[np.int64]


@record
class Panel:
    """Every labelled row, frames in symbol order, rows in time order within a frame."""

    frames: tuple[SymbolFrame, ...]
    batch: Batch
    time_ms: Int64Array
    outcome_r: FloatArray
    exit_reason: npt.NDArray[np.int8]
    label_end_ms: Int64Array
    rule_action: Int8Array

    @property
    def rows(self) -> int:
        return int(self.time_ms.shape[0])


@record
class Folds:
    """Test blocks [start, stop) in ms, each with its purged training rows and its test rows."""

    blocks: tuple[tuple[int, int], ...]
    train: tuple[BoolArray, ...]
    test: tuple[BoolArray, ...]

    def block_of(self, n: int) -> npt.NDArray[np.int64]:
        """The test block index of each row, −1 outside every block."""
        out = np.full(n, -1, dtype=np.int64)
        for k, test in enumerate(self.test):
            out[test] = k
        return out


def load_panel(
    settings: EnsembleSettings,
    rules: ExitRules,
    agent: RuleAgent,
    source_dir: Path,
    symbols: Sequence[str],
    need_windows: bool,
) -> Panel:
    """Hourly bars, features, triple-barrier labels and rule-agent sides for the training range."""
    store = CandleStore(source_dir)
    until_ms = None if settings.training_end is None else ms_from_utc(settings.training_end)
    hourly = {s: _hourly_bars(store, s, until_ms) for s in symbols}
    end_ms = min(int(b.time_ms[-1]) for b in hourly.values())
    start_ms = end_ms - settings.training_days * 24 * HOUR_MS
    frames, times, outcomes, reasons, ends, sides = [], [], [], [], [], []
    for symbol, bars in hourly.items():
        funding = FundingSeries.from_rates(*store.load_funding(symbol))
        features = compute_features(bars, funding)
        index = np.arange(len(bars))
        candidates = np.flatnonzero(
            usable_rows(features)
            & (index >= settings.lookback_bars)
            & (index + settings.forecast_horizon_h < len(bars))
            & (bars.time_ms >= start_ms)
            & (bars.time_ms <= end_ms)
        )
        labels = triple_barrier_labels(bars, funding, candidates, rules)
        known = np.isfinite(labels.r).all(axis=1)
        rows = candidates[known]
        frames.append(SymbolFrame(symbol, bars, features, rows))
        times.append(bars.time_ms[rows])
        outcomes.append(labels.r[known])
        reasons.append(labels.reason[known])
        ends.append(labels.exit_ms[known].max(axis=1))
        sides.append(agent.hourly_actions(bars)[rows])
    return Panel(
        tuple(frames),
        build_batch(frames, settings.lookback_bars, need_windows),
        np.concatenate(times),
        np.concatenate(outcomes),
        np.concatenate(reasons),
        np.concatenate(ends),
        np.concatenate(sides),
    )


def _hourly_bars(store: CandleStore, symbol: str, until_ms: int | None) -> Bars:
    """Recorded 1h bars (else 5m resampled); with `until_ms`, only those closed by then."""
    if store.candle_path(symbol, "1h").is_file():
        bars = store.load_bars(symbol, "1h")
    else:
        bars = resample_hourly(store.load_bars(symbol, "5m"))
    if until_ms is None:
        return bars
    closed = bars.closed_before(until_ms)
    if closed == 0:
        raise MarketDataError(f"{symbol}: no hourly bar closed by ensemble.training_end")
    return bars.slice(0, closed)


def make_folds(panel: Panel, settings: EnsembleSettings) -> Folds:
    """Consecutive test blocks over the last `validation_fraction`; purged, embargoed training."""
    hours = np.unique(panel.time_ms)
    k = settings.walk_forward_folds
    test_hours = int(len(hours) * settings.validation_fraction) // k
    if test_hours < 1:
        raise MarketDataError(
            f"{len(hours)} hours of labelled data are too few for {k} walk-forward folds"
        )
    blocks, train, test = [], [], []
    # TimeSeriesSplit needs two splits; with one block, keep the last of two.
    splits = list(TimeSeriesSplit(n_splits=max(k, 2), test_size=test_hours).split(hours))[-k:]
    for _, test_index in splits:
        start = int(hours[test_index[0]])
        stop = int(hours[test_index[-1]]) + HOUR_MS
        blocks.append((start, stop))
        train.append(panel.label_end_ms + settings.embargo_h * HOUR_MS <= start)
        test.append((panel.time_ms >= start) & (panel.time_ms < stop))
    return Folds(tuple(blocks), tuple(train), tuple(test))


def exit_reason_shares(panel: Panel) -> dict[str, float]:
    """Share of each final exit reason over both sides of every row."""
    total = max(panel.exit_reason.size, 1)
    return {
        str(reason): float((panel.exit_reason == code).sum()) / total
        for code, reason in enumerate(EXIT_CODES)
    }
