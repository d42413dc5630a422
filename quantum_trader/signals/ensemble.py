"""The ML ensemble: 5m bars → hourly features/windows → four models' votes → one signal.

Voting (SPEC §3.1), per (symbol, hour), over the models that did not abstain:
- fewer than `min_models` votes → no signal (HOLD, confidence 0);
- an action with 3+ votes → strong consensus: that action, confidence 0.70 + 0.20 × the mean
  confidence of the models that agree (so within 0.70..0.90);
- otherwise an action with exactly 2 votes → weak consensus. When two actions have 2 votes
  each (a 2–2 split) the one with more confidence weight wins (an exact tie → HOLD);
  confidence 0.40 + 0.20 × the winner's share of all confidence weight (0.40..0.60);
- otherwise (every vote different) → HOLD.
A winning HOLD is reported with confidence 0. Each hourly signal applies to the 5m rows whose
close is at or after that hour's close, until the next hour closes (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from quantum_trader.domain import Bars, FloatArray, IntArray, SignalSeries
from quantum_trader.errors import ModelArtifactError
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS, hourly_row_for, resample_hourly
from quantum_trader.signals.artifacts import ArtifactMetadata, metadata_path
from quantum_trader.signals.features import (
    FEATURE_WINDOW_H,
    compute_features,
)
from quantum_trader.signals.models.base import (
    FORECASTERS,
    MODEL_NAMES,
    Batch,
    BoolArray,
    Int8Array,
    Predictor,
    Votes,
)
from quantum_trader.signals.models.batch import SymbolFrame, build_batch
from quantum_trader.signals.models.registry import load_predictor
from quantum_trader.signals.settings import EnsembleSettings

MAX_BATCH_ROWS = 16_384
STRONG_VOTES = 3
WEAK_VOTES = 2
HEALTHY, DEGRADED, CRITICAL = "HEALTHY", "DEGRADED", "CRITICAL"

log = get_logger("signals.ensemble")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    predictor: Predictor
    metadata: ArtifactMetadata


def vote(
    actions: Int8Array, confidences: FloatArray, present: BoolArray, min_models: int
) -> tuple[Int8Array, FloatArray]:
    """Combine (models, rows) votes into one (action, confidence) per row (see module doc)."""
    classes = np.array([-1, 0, 1], dtype=np.int8)
    member = (actions[None, :, :] == classes[:, None, None]) & present[None, :, :]
    counts = member.sum(axis=1)
    weights = (member * confidences[None, :, :]).sum(axis=1)
    top = counts.max(axis=0)
    ranked = np.where(counts == top[None, :], weights, -1.0)
    best = np.argmax(ranked, axis=0)
    best_weight = ranked.max(axis=0)
    tied = (ranked == best_weight[None, :]).sum(axis=0) > 1
    columns = np.arange(actions.shape[1])
    enough = present.sum(axis=0) >= min_models
    strong = enough & (top >= STRONG_VOTES)
    weak = enough & (top == WEAK_VOTES) & ~tied
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_agreeing = weights[best, columns] / np.maximum(counts[best, columns], 1)
        share = weights[best, columns] / weights.sum(axis=0)
    action = np.where(strong | weak, classes[best], 0).astype(np.int8)
    confidence = np.where(
        strong,
        np.clip(0.70 + 0.20 * mean_agreeing, 0.70, 0.90),
        np.clip(0.40 + 0.20 * share, 0.40, 0.60),
    )
    confidence = np.where(action != 0, np.nan_to_num(confidence), 0.0)
    return action, confidence


@dataclass(frozen=True, slots=True)
class _Prepared:
    frame: SymbolFrame
    offset: int
    hour_of_row: IntArray
    n_rows: int


class Ensemble:
    """SignalSource over execution (5m) bars; synchronous, so call it from a worker thread."""

    def __init__(
        self,
        models: Sequence[LoadedModel],
        settings: EnsembleSettings,
        funding: Mapping[str, FundingSeries] | None = None,
    ) -> None:
        self._models = tuple(models)
        self._settings = settings
        self._funding: Mapping[str, FundingSeries] = dict(funding or {})
        self._failing: set[str] = set()

    @property
    def name(self) -> str:
        return "ensemble"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.predictor.name for m in self._models)

    @property
    def metadata(self) -> dict[str, ArtifactMetadata]:
        return {m.predictor.name: m.metadata for m in self._models}

    @property
    def warmup_hours(self) -> int:
        """FEATURE_WINDOW_H closed hours (≥ lookback + indicator warm-up), plus the forming one."""
        return max(FEATURE_WINDOW_H, self._settings.lookback_bars + 1) + 1

    def set_funding(self, funding: Mapping[str, FundingSeries]) -> None:
        """Replace the funding history the funding feature reads (missing symbol → 0)."""
        self._funding = dict(funding)

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        """Signals aligned with each symbol's bars; with `tail`, only the last rows are computed."""
        prepared = [self._prepare(symbol, b, tail) for symbol, b in bars.items()]
        results: dict[str, SignalSeries] = {}
        for group in _groups(prepared):
            results.update(self._evaluate_group(group))
        return results

    def health(self, now: datetime) -> tuple[str, str]:
        """HEALTHY, DEGRADED (stale, missing or failing models) or CRITICAL (< min_models)."""
        loaded = self.model_names
        if len(loaded) < self._settings.min_models:
            return (
                CRITICAL,
                f"{len(loaded)} models loaded, at least {self._settings.min_models} needed",
            )
        max_age = timedelta(hours=self._settings.max_model_age_h)
        stale = [m.predictor.name for m in self._models if now - m.metadata.trained_at > max_age]
        problems = []
        if stale:
            problems.append(f"stale (older than {self._settings.max_model_age_h:g} h): {stale}")
        missing = [name for name in MODEL_NAMES if name not in loaded]
        if missing:
            problems.append(f"not loaded: {missing}")
        if self._failing:
            problems.append(f"failed to predict: {sorted(self._failing)}")
        if problems:
            return DEGRADED, "; ".join(problems)
        return HEALTHY, f"{len(loaded)} models loaded"

    def _prepare(self, symbol: str, bars: Bars, tail: int | None) -> _Prepared:
        warmup = self.warmup_hours * HOUR_MS // bars.timeframe_ms
        offset = 0 if tail is None else max(0, len(bars) - tail - warmup)
        window = bars if offset == 0 else bars.slice(offset, len(bars))
        hourly = resample_hourly(window)
        hour_of_row = hourly_row_for(window, hourly)
        if tail is None:
            rows = np.arange(len(hourly), dtype=np.int64)
        else:
            needed = hour_of_row[-tail:] if tail > 0 else hour_of_row[:0]
            rows = np.unique(needed[needed >= 0])
            hourly, rows = _trim(hourly, rows)
            hour_of_row = hourly_row_for(window, hourly)
        features = compute_features(hourly, self._funding.get(symbol))
        frame = SymbolFrame(symbol, hourly, features, rows)
        return _Prepared(frame, offset, hour_of_row, len(bars))

    def _evaluate_group(self, group: Sequence[_Prepared]) -> dict[str, SignalSeries]:
        frames = [p.frame for p in group]
        needs_windows = any(m.predictor.name in FORECASTERS for m in self._models)
        batch = build_batch(frames, self._settings.lookback_bars, needs_windows)
        votes = {m.predictor.name: self._predict(m.predictor, batch) for m in self._models}
        n = len(batch)
        if votes:
            stacked = list(votes.values())
            action, confidence = vote(
                np.stack([v.action for v in stacked]),
                np.stack([v.confidence for v in stacked]),
                np.stack([v.present for v in stacked]),
                self._settings.min_models,
            )
        else:
            action, confidence = np.zeros(n, np.int8), np.zeros(n)
        return _split(group, action, confidence, votes)

    def _predict(self, predictor: Predictor, batch: Batch) -> Votes:
        try:
            votes = predictor.predict(batch)
        except Exception as error:  # a broken model abstains; the others carry on
            log.warning("model_predict_failed", model=predictor.name, reason=repr(error))
            self._failing.add(predictor.name)
            return Votes.abstain(len(batch))
        self._failing.discard(predictor.name)
        return votes


def _trim(hourly: Bars, rows: IntArray) -> tuple[Bars, IntArray]:
    """Drop hours after the last needed row (they cannot influence it)."""
    stop = int(rows[-1]) + 1 if rows.size else 0
    return hourly.slice(0, stop), rows


def _groups(prepared: Sequence[_Prepared]) -> list[list[_Prepared]]:
    """Split symbols into batches of at most MAX_BATCH_ROWS rows (one batch when live)."""
    groups: list[list[_Prepared]] = [[]]
    rows = 0
    for item in prepared:
        size = int(item.frame.rows.shape[0])
        if groups[-1] and rows + size > MAX_BATCH_ROWS:
            groups.append([])
            rows = 0
        groups[-1].append(item)
        rows += size
    return [g for g in groups if g]


def _split(
    group: Sequence[_Prepared],
    action: Int8Array,
    confidence: FloatArray,
    votes: Mapping[str, Votes],
) -> dict[str, SignalSeries]:
    out: dict[str, SignalSeries] = {}
    start = 0
    for item in group:
        stop = start + int(item.frame.rows.shape[0])
        model_votes = {
            name: (
                _spread_actions(item, v.action[start:stop]),
                _spread_confidences(item, v.confidence[start:stop]),
            )
            for name, v in votes.items()
        }
        out[item.frame.symbol] = SignalSeries(
            _spread_actions(item, action[start:stop]),
            _spread_confidences(item, confidence[start:stop]),
            model_votes,
        )
        start = stop
    return out


def _spread_actions(item: _Prepared, values: Int8Array) -> Int8Array:
    return _spread(item, values.astype(np.float64)).astype(np.int8)


def _spread_confidences(item: _Prepared, values: FloatArray) -> FloatArray:
    return _spread(item, values)


def _spread(item: _Prepared, values: FloatArray) -> FloatArray:
    """Forward-fill the predicted hours' values onto the symbol's execution rows (else 0)."""
    hourly = np.zeros(len(item.frame.hourly))
    hourly[item.frame.rows] = values
    out = np.zeros(item.n_rows)
    known = item.hour_of_row >= 0
    out[np.flatnonzero(known) + item.offset] = hourly[item.hour_of_row[known]]
    return out


def load_ensemble(
    models_dir: Path,
    settings: EnsembleSettings,
    funding: Mapping[str, FundingSeries] | None = None,
) -> Ensemble | None:
    """Load every model whose artifact exists; None when none loads.

    A corrupt, mismatched or unloadable artifact (or a forecaster without PyTorch) is logged as
    `model_load_failed` with the model and the reason, and that model abstains.
    """
    loaded: list[LoadedModel] = []
    for name in MODEL_NAMES:
        if not metadata_path(models_dir, name).is_file():
            continue
        try:
            predictor, meta = load_predictor(models_dir, name, settings)
        except ModelArtifactError as error:
            log.warning("model_load_failed", model=name, reason=str(error))
            continue
        loaded.append(LoadedModel(predictor, meta))
    if not loaded:
        log.info("no_models_loaded", models_dir=str(models_dir))
        return None
    return Ensemble(loaded, settings, funding)


def recorded_funding(store: CandleStore, symbols: Sequence[str]) -> dict[str, FundingSeries]:
    """The recorded funding of each symbol (empty series where none is recorded)."""
    return {s: FundingSeries.from_rates(*store.load_funding(s)) for s in symbols}
