"""The ML ensemble: 5m bars → hourly features/windows → four calibrated models → one signal.

Each model's raw scores are calibrated (its model set's calibration) into P(win) and expected R
after costs for a long and a short; signals/voting.py turns them into one decision per (symbol,
hour). Each hourly signal applies to the 5m rows whose close is at or after that hour's close,
until the next hour closes (no look-ahead). With `ensemble.side_source = "rules"` the rule agent
proposes the side on the same hourly bars and the models only decide whether to take it
(meta-labeling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np

from quantum_trader.domain import Bars, FloatArray, IntArray, SignalSeries
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS, hourly_row_for, resample_hourly
from quantum_trader.record import record
from quantum_trader.signals.calibration import Calibration
from quantum_trader.signals.coverage import history_h
from quantum_trader.signals.features import FEATURE_WINDOW_H, compute_features
from quantum_trader.signals.manifest import ModelProvenance
from quantum_trader.signals.models.base import (
    FORECASTERS,
    MODEL_NAMES,
    Batch,
    Int8Array,
    Predictor,
    Scores,
)
from quantum_trader.signals.models.batch import SymbolFrame, build_batch
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import EnsembleSettings
from quantum_trader.signals.voting import decide, member_votes

MAX_BATCH_ROWS = 16_384
HEALTHY, DEGRADED, CRITICAL = "HEALTHY", "DEGRADED", "CRITICAL"

log = get_logger("signals.ensemble")


@record
class LoadedModel:
    predictor: Predictor
    calibration: Calibration
    provenance: ModelProvenance | None = None


@record
class _Prepared:
    frame: SymbolFrame
    offset: int
    hour_of_row: IntArray
    n_rows: int
    proposed: Int8Array


class Ensemble:
    """SignalSource over execution (5m) bars; synchronous, so call it from a worker thread.

    `rules` proposes the sides in meta-labeling (`settings.side_source == "rules"`); it is
    required then (when there are models) and ignored otherwise. `trained_at` is the model
    set's training time (None only for an ensemble without models, e.g. to ask its warm-up);
    `listed` the models its set lists.
    """

    def __init__(
        self,
        models: Sequence[LoadedModel],
        settings: EnsembleSettings,
        trained_at: datetime | None = None,
        rules: RuleAgent | None = None,
        funding: Mapping[str, FundingSeries] | None = None,
        listed: Sequence[str] = (),
    ) -> None:
        if models and trained_at is None:
            raise ValueError("an ensemble of trained models needs their training time")
        if models and settings.side_source == "rules" and rules is None:
            raise ValueError("meta-labeling needs the rule agent to propose sides")
        self._models = tuple(models)
        self._settings = settings
        self._trained_at = trained_at
        self._rules = rules if settings.side_source == "rules" else None
        self._funding: Mapping[str, FundingSeries] = dict(funding or {})
        self._failing: set[str] = set()
        self._listed = tuple(listed)

    @property
    def name(self) -> str:
        return "ensemble" if self._rules is None else "ensemble-meta"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.predictor.name for m in self._models)

    @property
    def listed(self) -> tuple[str, ...]:
        """The models its set lists, loaded or not (empty when not loaded from a set)."""
        return self._listed

    @property
    def trained_at(self) -> datetime | None:
        return self._trained_at

    @property
    def metadata(self) -> dict[str, ModelProvenance]:
        """Where each loaded model learned (its set and the data its labels read)."""
        return {m.predictor.name: m.provenance for m in self._models if m.provenance is not None}

    @property
    def warmup_hours(self) -> int:
        """FEATURE_WINDOW_H closed hours (≥ lookback + indicator warm-up), plus the forming one."""
        return max(FEATURE_WINDOW_H, self._settings.lookback_bars + 1) + 1

    @property
    def history_hours(self) -> int:
        """`history_h`, the history a training row needs (none read across a gap); with
        meta-labeling, at least the rule agent's, which proposes the side."""
        proposer = 0 if self._rules is None else self._rules.history_hours
        return history_h(self._settings, proposer)

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
        problems = []
        age = timedelta(hours=self._settings.max_model_age_h)
        if self._trained_at is not None and now - self._trained_at > age:
            problems.append(f"stale (older than {self._settings.max_model_age_h:g} h)")
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
            hourly = hourly.slice(0, int(rows[-1]) + 1 if rows.size else 0)
            hour_of_row = hourly_row_for(window, hourly)
        features = compute_features(hourly, self._funding.get(symbol))
        frame = SymbolFrame(symbol, hourly, features, rows)
        proposed = (
            np.zeros(rows.shape[0], np.int8)
            if self._rules is None
            else self._rules.hourly_actions(hourly)[rows]
        )
        return _Prepared(frame, offset, hour_of_row, len(bars), proposed)

    def _evaluate_group(self, group: Sequence[_Prepared]) -> dict[str, SignalSeries]:
        frames = [p.frame for p in group]
        needs_windows = any(m.predictor.name in FORECASTERS for m in self._models)
        batch = build_batch(frames, self._settings.lookback_bars, needs_windows)
        proposed = None if self._rules is None else np.concatenate([p.proposed for p in group])
        actions, weights, expected, present = [], [], [], []
        for model in self._models:
            scores = self._scores(model.predictor, batch)
            probability, expected_r = model.calibration.apply(scores.values)
            vote = member_votes(
                probability, expected_r, scores.present, proposed, self._settings.min_expected_r
            )
            actions.append(vote[0])
            weights.append(vote[1])
            expected.append(vote[2])
            present.append(scores.present)
        if actions:
            action, confidence, _ = decide(
                np.stack(actions),
                np.stack(weights),
                np.stack(expected),
                np.stack(present),
                self._settings.min_models,
            )
        else:
            action, confidence = np.zeros(len(batch), np.int8), np.zeros(len(batch))
        votes = {
            m.predictor.name: (a, w) for m, a, w in zip(self._models, actions, weights, strict=True)
        }
        return _split(group, action, confidence, votes)

    def _scores(self, predictor: Predictor, batch: Batch) -> Scores:
        try:
            scores = predictor.scores(batch)
        except Exception as error:  # a broken model abstains; the others carry on
            log.warning("model_predict_failed", model=predictor.name, reason=repr(error))
            self._failing.add(predictor.name)
            return Scores.abstain(len(batch))
        self._failing.discard(predictor.name)
        return scores


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
    votes: Mapping[str, tuple[Int8Array, FloatArray]],
) -> dict[str, SignalSeries]:
    out: dict[str, SignalSeries] = {}
    start = 0
    for item in group:
        stop = start + int(item.frame.rows.shape[0])
        model_votes = {
            name: (
                _spread(item, v[0][start:stop].astype(np.float64)).astype(np.int8),
                _spread(item, v[1][start:stop]),
            )
            for name, v in votes.items()
        }
        out[item.frame.symbol] = SignalSeries(
            _spread(item, action[start:stop].astype(np.float64)).astype(np.int8),
            _spread(item, confidence[start:stop]),
            model_votes,
        )
        start = stop
    return out


def _spread(item: _Prepared, values: FloatArray) -> FloatArray:
    """Forward-fill the predicted hours' values onto the symbol's execution rows (else 0)."""
    hourly = np.zeros(len(item.frame.hourly))
    hourly[item.frame.rows] = values
    out = np.zeros(item.n_rows)
    known = item.hour_of_row >= 0
    out[np.flatnonzero(known) + item.offset] = hourly[item.hour_of_row[known]]
    return out


def recorded_funding(store: CandleStore, symbols: Sequence[str]) -> dict[str, FundingSeries]:
    """The recorded funding of each symbol (empty series where none is recorded)."""
    return {s: FundingSeries.from_rates(*store.load_funding(s)) for s in symbols}
