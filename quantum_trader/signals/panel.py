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

What the data lacks (a symbol without usable rows or funding, a window cut short by a symbol
that ends early, a history shorter than `training_days`) is said in `Panel.notes`; data that
leaves nothing to learn or to validate is refused (signals/coverage.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import TimeSeriesSplit

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import Bars, FloatArray
from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS, resample_hourly
from quantum_trader.record import record
from quantum_trader.signals import coverage
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
    notes: tuple[str, ...] = ()
    window_ms: tuple[int, int] = (0, 0)
    """The training window asked for: `training_days` ending at the newest common bar."""
    data_start_ms: int = 0
    """The first recorded hourly bar of any symbol."""
    history_h: int = 0
    """The hours of history a row needs behind it (`coverage.history_h`)."""

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
    """Hourly bars, features, triple-barrier labels and rule-agent sides for the training range.

    MarketDataError when no symbol gives a usable row (each symbol named with why).
    """
    store = CandleStore(source_dir)
    until_ms = None if settings.training_end is None else ms_from_utc(settings.training_end)
    cut = {s: _hourly_bars(store, s, until_ms) for s in symbols}
    loaded = {s: bars for s, (bars, _) in cut.items()}
    unusable = [coverage.no_hour(s) for s, b in loaded.items() if len(b) == 0]
    hourly = {s: b for s, b in loaded.items() if len(b)}
    _refuse_if_empty(unusable, len(hourly))
    end_ms = min(int(b.time_ms[-1]) for b in hourly.values())
    window = (end_ms - settings.training_days * 24 * HOUR_MS, end_ms)
    notes = coverage.ended_early(hourly, end_ms, {s: resume for s, (_, resume) in cut.items()})
    history = coverage.history_h(settings, agent.history_hours)
    parts = []
    for symbol, bars in hourly.items():
        funding = FundingSeries.from_rates(*store.load_funding(symbol))
        if funding.time_ms.size == 0:
            notes.append(coverage.no_funding(symbol))
        parts.append(_symbol_part(settings, rules, agent, bars, funding, window, history))
    unusable += [p.unusable for p in parts if p.unusable]
    _refuse_if_empty(unusable, sum(not p.unusable for p in parts))
    time_ms = np.concatenate([p.time_ms for p in parts])
    data_start_ms = min(int(b.time_ms[0]) for b in hourly.values())
    first_ms = int(time_ms.min())
    short = coverage.shorter_than_asked(first_ms, window, data_start_ms, settings, history)
    notes += [p.gaps for p in parts if p.gaps]
    notes += [f"{u}: left out of training" for u in unusable] + ([short] if short else [])
    frames = [p.frame for p in parts]
    return Panel(
        tuple(frames),
        build_batch(frames, settings.lookback_bars, need_windows),
        time_ms,
        np.concatenate([p.outcome_r for p in parts]),
        np.concatenate([p.exit_reason for p in parts]),
        np.concatenate([p.label_end_ms for p in parts]),
        np.concatenate([p.rule_action for p in parts]),
        tuple(notes),
        window,
        data_start_ms,
        history,
    )


def _refuse_if_empty(unusable: Sequence[str], usable: int) -> None:
    """MarketDataError naming every symbol and why, when no symbol is left to train on."""
    if usable == 0:
        raise MarketDataError(
            f"no hour to train on: {'; '.join(unusable)}; import more history or train on other "
            "symbols (market.symbols); nothing was published"
        )


@record
class _SymbolPart:
    """One symbol's rows of the panel; `unusable` says why it has none."""

    frame: SymbolFrame
    time_ms: Int64Array
    outcome_r: FloatArray
    exit_reason: npt.NDArray[np.int8]
    label_end_ms: Int64Array
    rule_action: Int8Array
    unusable: str
    gaps: str | None = None  # the note of rows left out next to gaps


def _symbol_part(
    settings: EnsembleSettings,
    rules: ExitRules,
    agent: RuleAgent,
    bars: Bars,
    funding: FundingSeries,
    window: tuple[int, int],
    history: int,
) -> _SymbolPart:
    """The labelled rows of one symbol inside `window` (ms, both ends included), each with
    `history` hours behind it (`coverage.history_h`)."""
    features = compute_features(bars, funding)
    index = np.arange(len(bars))
    candidates = np.flatnonzero(
        usable_rows(features)
        & (index >= settings.lookback_bars)
        & (index + settings.forecast_horizon_h < len(bars))
        & (bars.time_ms >= window[0])
        & (bars.time_ms <= window[1])
    )
    labels = triple_barrier_labels(bars, funding, candidates, rules)
    known = np.isfinite(labels.r).all(axis=1)
    spanning = coverage.across_gaps(bars, candidates, labels.exit_ms.max(axis=1), history)
    gaps = coverage.gaps_left_out(bars, candidates, history, int((known & spanning).sum()))
    known &= ~spanning
    rows = candidates[known]
    why = (
        ""
        if rows.size
        else coverage.unusable(bars.symbol, bars, features, window, settings, history)
    )
    return _SymbolPart(
        SymbolFrame(bars.symbol, bars, features, rows),
        bars.time_ms[rows],
        labels.r[known],
        labels.reason[known],
        labels.exit_ms[known].max(axis=1),
        agent.hourly_actions(bars)[rows],
        why,
        gaps,
    )


def _hourly_bars(store: CandleStore, symbol: str, until_ms: int | None) -> tuple[Bars, int | None]:
    """Recorded 1h bars (else 5m resampled); with `until_ms`, only those closed by then, and
    the open of the first bar after them (None when they are the last)."""
    if store.candle_path(symbol, "1h").is_file():
        bars = store.load_bars(symbol, "1h")
    else:
        bars = resample_hourly(store.load_bars(symbol, "5m"))
    if until_ms is None:
        return bars, None
    closed = bars.closed_before(until_ms)
    if closed == 0:
        raise MarketDataError(
            f"{symbol}: no hourly bar closed by ensemble.training_end "
            f"({utc_from_ms(until_ms):%Y-%m-%d %H:%M}): its candles begin at "
            f"{utc_from_ms(int(bars.time_ms[0])):%Y-%m-%d %H:%M}; set a later training_end or "
            "import older data; nothing was published"
        )
    resumes = int(bars.time_ms[closed]) if closed < len(bars) else None
    return bars.slice(0, closed), resumes


def make_folds(panel: Panel, settings: EnsembleSettings) -> Folds:
    """Consecutive test blocks over the last `validation_fraction`; purged, embargoed training."""
    hours = np.unique(panel.time_ms)
    k = settings.walk_forward_folds
    test_hours = int(len(hours) * settings.validation_fraction) // k
    if test_hours < 1:
        hours_text = "1 labelled hour is" if len(hours) == 1 else f"{len(hours)} labelled hours are"
        why = f"{hours_text} too few for {k} walk-forward blocks"
        blamed = coverage.small_validation(len(hours), settings)
        raise MarketDataError(_too_little(panel, settings, why, blamed))
    blocks, train, test = [], [], []
    # TimeSeriesSplit needs two splits; with one block, keep the last of two.
    splits = list(TimeSeriesSplit(n_splits=max(k, 2), test_size=test_hours).split(hours))[-k:]
    for _, test_index in splits:
        start = int(hours[test_index[0]])
        stop = int(hours[test_index[-1]]) + HOUR_MS
        blocks.append((start, stop))
        train.append(panel.label_end_ms + settings.embargo_h * HOUR_MS <= start)
        test.append((panel.time_ms >= start) & (panel.time_ms < stop))
    learned = int(train[0].sum())  # the blocks' training rows only grow from the first on
    if learned < coverage.MIN_TRAIN_ROWS:
        why = (
            f"the first of {k} walk-forward blocks would learn from {learned} rows (at least "
            f"{coverage.MIN_TRAIN_ROWS}), so the models could be neither validated nor calibrated"
        )
        start = blocks[0][0]
        blamed = coverage.first_block_starved(
            int((panel.time_ms < start).sum()), int((panel.label_end_ms <= start).sum()), settings
        )
        raise MarketDataError(_too_little(panel, settings, why, blamed))
    return Folds(tuple(blocks), tuple(train), tuple(test))


def _too_little(panel: Panel, settings: EnsembleSettings, why: str, blamed: coverage.Blamed) -> str:
    return coverage.too_little(
        panel.time_ms, panel.window_ms, panel.data_start_ms, settings, why, panel.history_h, blamed
    )


def exit_reason_shares(panel: Panel) -> dict[str, float]:
    """Share of each final exit reason over both sides of every row."""
    total = max(panel.exit_reason.size, 1)
    return {
        str(reason): float((panel.exit_reason == code).sum()) / total
        for code, reason in enumerate(EXIT_CODES)
    }
