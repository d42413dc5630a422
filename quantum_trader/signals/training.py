"""Train the ensemble's models with walk-forward validation and save their artifacts.

Data: closed 1h bars (the recorded 1h file, else 5m resampled) and funding from a candle-store
directory; the last `training_days` days common to all symbols. Rows are (symbol, hour) with
complete features and a full 168 h window, labelled by the forward return over the horizon.

Validation: the last `validation_fraction` of the time range is cut into consecutive test
blocks. Each block is predicted by models trained only on rows whose label window (t .. t+H)
ends at least `embargo_h` hours before the block's first hour (purged and embargoed: nothing
a test row could reveal was in training). Every model, the vote of all of them, and two
baselines (the training majority class; the rule agent on the same 1h bars) are scored on the
same test rows. The saved models are then fitted on every row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import Bars, FloatArray
from quantum_trader.errors import MarketDataError, ModelArtifactError
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS, resample_hourly
from quantum_trader.signals.artifacts import ArtifactMetadata, write_artifact
from quantum_trader.signals.ensemble import vote
from quantum_trader.signals.features import (
    FEATURE_NAMES,
    compute_features,
    usable_rows,
)
from quantum_trader.signals.models.base import (
    FORECASTERS,
    LIGHTGBM,
    XGBOOST,
    Batch,
    BoolArray,
    Int8Array,
    TrainedModel,
    Votes,
    class_index,
)
from quantum_trader.signals.models.batch import SymbolFrame, build_batch
from quantum_trader.signals.models.lightgbm_model import LightGBMModel
from quantum_trader.signals.models.registry import import_forecaster
from quantum_trader.signals.models.windows import build_targets
from quantum_trader.signals.models.xgboost_model import XGBoostModel
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.settings import EnsembleSettings, SignalsSettings
from quantum_trader.signals.training_report import (
    Metrics,
    TrainingReport,
    class_balance,
    score,
)

Progress = Callable[[str, float], None]
CALIBRATION_ROWS = 20_000
MIN_FORECAST_THRESHOLD = 1e-5


@dataclass(frozen=True, slots=True)
class Panel:
    """Every labelled (symbol, hour) row, frames in symbol order, rows in time order within."""

    frames: tuple[SymbolFrame, ...]
    batch: Batch
    labels: Int8Array
    forward_return: FloatArray
    time_ms: npt.NDArray[np.int64]
    rule_action: Int8Array


@dataclass(frozen=True, slots=True)
class Folds:
    blocks: tuple[tuple[int, int], ...]
    train: tuple[BoolArray, ...]
    test: tuple[BoolArray, ...]


def train_models(
    settings: EnsembleSettings,
    source_dir: Path,
    symbols: Sequence[str],
    models_dir: Path,
    now: datetime,
    progress: Progress | None = None,
) -> TrainingReport:
    """Train, validate walk-forward, save each model's artifact; return the report."""
    report_progress = progress or (lambda _stage, _fraction: None)
    report_progress("loading data", 0.0)
    forecaster, skipped = _forecaster_module(settings)
    names = [n for n in settings.models if n not in skipped]
    panel = load_panel(settings, source_dir, symbols, need_windows=forecaster is not None)
    folds = make_folds(panel.time_ms, settings)
    steps = max(len(names) * (len(folds.blocks) + 1), 1)
    oos: dict[str, Votes] = {}
    saved = []
    for index, name in enumerate(names):
        done = index * (len(folds.blocks) + 1)

        def tick(step: int, what: str, _done: int = done, _name: str = name) -> None:
            report_progress(f"{_name}: {what}", (_done + step) / steps)

        oos[name] = _walk_forward(name, panel, folds, settings, forecaster, tick)
        metrics = _score_votes(oos[name], panel, folds)
        tick(len(folds.blocks), "final fit")
        payload, params = _fit_final(name, panel, settings, forecaster)
        meta = _metadata(name, settings, symbols, now, metrics, params, _window(panel, settings))
        saved.append(str(write_artifact(models_dir, meta, payload).name))
    report_progress("done", 1.0)
    return _report(panel, folds, settings, symbols, oos, skipped, tuple(saved))


def _forecaster_module(settings: EnsembleSettings) -> tuple[ModuleType | None, dict[str, str]]:
    if not any(n in FORECASTERS for n in settings.models):
        return None, {}
    try:
        return import_forecaster(settings.torch_threads), {}
    except ModelArtifactError as error:
        return None, {n: str(error) for n in settings.models if n in FORECASTERS}


def load_panel(
    settings: EnsembleSettings, source_dir: Path, symbols: Sequence[str], need_windows: bool
) -> Panel:
    """Hourly bars, features, labels and rule-agent actions for the training range."""
    store = CandleStore(source_dir)
    until_ms = None if settings.training_end is None else ms_from_utc(settings.training_end)
    hourly = {s: _hourly_bars(store, s, until_ms) for s in symbols}
    end_ms = min(int(b.time_ms[-1]) for b in hourly.values())
    start_ms = end_ms - settings.training_days * 24 * HOUR_MS
    rules = RuleAgent(SignalsSettings())
    frames, labels, returns, times, rule_actions = [], [], [], [], []
    for symbol, bars in hourly.items():
        funding = FundingSeries.from_rates(*store.load_funding(symbol))
        features = compute_features(bars, funding)
        forward = _forward_log_return(bars.close, settings.forecast_horizon_h)
        rows = np.flatnonzero(
            usable_rows(features)
            & np.isfinite(forward)
            & (np.arange(len(bars)) >= settings.lookback_bars)
            & (bars.time_ms >= start_ms)
            & (bars.time_ms <= end_ms)
        )
        frames.append(SymbolFrame(symbol, bars, features, rows))
        returns.append(forward[rows])
        labels.append(_label(forward[rows], settings.forecast_threshold))
        times.append(bars.time_ms[rows])
        rule_actions.append(rules.evaluate({symbol: bars})[symbol].action[rows])
    return Panel(
        tuple(frames),
        build_batch(frames, settings.lookback_bars, need_windows),
        np.concatenate(labels),
        np.concatenate(returns),
        np.concatenate(times),
        np.concatenate(rule_actions),
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


def _forward_log_return(close: FloatArray, horizon: int) -> FloatArray:
    out = np.full(close.shape, np.nan)
    out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def _label(forward: FloatArray, threshold: float) -> Int8Array:
    return np.where(forward > threshold, 1, np.where(forward < -threshold, -1, 0)).astype(np.int8)


def make_folds(time_ms: npt.NDArray[np.int64], settings: EnsembleSettings) -> Folds:
    """Consecutive test blocks over the last `validation_fraction`; purged, embargoed training."""
    hours = np.unique(time_ms)
    first = int(hours[int(len(hours) * (1.0 - settings.validation_fraction))])
    edges = np.linspace(first, int(hours[-1]) + HOUR_MS, settings.walk_forward_folds + 1)
    edges = (edges // HOUR_MS * HOUR_MS).astype(np.int64)
    label_end = time_ms + settings.forecast_horizon_h * HOUR_MS
    blocks, train, test = [], [], []
    for start, stop in itertools.pairwise(edges):
        blocks.append((int(start), int(stop)))
        train.append(label_end + settings.embargo_h * HOUR_MS <= start)
        test.append((time_ms >= start) & (time_ms < stop))
    return Folds(tuple(blocks), tuple(train), tuple(test))


def _subset(batch: Batch, mask: BoolArray) -> Batch:
    windows = None if batch.windows is None else batch.windows[mask]
    return Batch(
        batch.features[mask],
        batch.features_ok[mask],
        windows,
        batch.windows_ok[mask],
        batch.scale[mask],
    )


def _walk_forward(
    name: str,
    panel: Panel,
    folds: Folds,
    settings: EnsembleSettings,
    forecaster: ModuleType | None,
    tick: Callable[[int, str], None],
) -> Votes:
    """Out-of-sample votes on every test row (rows outside the test blocks abstain)."""
    n = panel.labels.shape[0]
    action, confidence = np.zeros(n, np.int8), np.zeros(n)
    present = np.zeros(n, dtype=np.bool_)
    for k, (train, test) in enumerate(zip(folds.train, folds.test, strict=True)):
        tick(k, f"fold {k + 1}/{len(folds.blocks)}")
        if not train.any() or not test.any():
            continue
        model, _ = _fit(name, panel, train, settings, forecaster)
        votes = model.predict(_subset(panel.batch, test))
        action[test], confidence[test], present[test] = (
            votes.action,
            votes.confidence,
            votes.present,
        )
    return Votes(action, confidence, present)


def _fit(
    name: str,
    panel: Panel,
    rows: BoolArray,
    settings: EnsembleSettings,
    forecaster: ModuleType | None,
) -> tuple[TrainedModel, dict[str, object]]:
    """Fit one model on the selected rows; return it and the parameters its artifact needs."""
    batch = panel.batch
    if name in (XGBOOST, LIGHTGBM):
        kind: type[XGBoostModel] | type[LightGBMModel] = (
            XGBoostModel if name == XGBOOST else LightGBMModel
        )
        model: TrainedModel = kind.fit(
            batch.features[rows],
            class_index(panel.labels[rows]),
            settings.seed,
            rounds=settings.tree_rounds,
            threads=settings.torch_threads,
        )
        return model, {"rounds": settings.tree_rounds}
    assert forecaster is not None
    assert batch.windows is not None
    targets = _targets(panel, rows, settings)
    module = forecaster.fit_forecaster(
        name, batch.windows[rows], targets, settings.seed, settings.forecaster_steps
    )
    calibration = np.flatnonzero(rows)[:: max(1, int(rows.sum()) // CALIBRATION_ROWS)]
    draft = forecaster.ForecasterModel(name, module, 1.0)
    forecast = draft.forecast_return(batch.windows[calibration], batch.scale[calibration])
    hold_share = float(np.mean(panel.labels[rows] == 0))
    threshold = forecaster.calibrate_threshold(forecast, hold_share, MIN_FORECAST_THRESHOLD)
    params = {
        "architecture": forecaster.DEFAULT_PARAMS[name],
        "threshold": threshold,
        "steps": settings.forecaster_steps,
    }
    return forecaster.ForecasterModel(name, module, threshold), params


def _targets(panel: Panel, rows: BoolArray, settings: EnsembleSettings) -> npt.NDArray[np.float32]:
    parts, start = [], 0
    for frame in panel.frames:
        stop = start + frame.rows.shape[0]
        selected = frame.rows[rows[start:stop]]
        h = frame.hourly
        parts.append(
            build_targets(
                h.close, h.volume, selected, settings.lookback_bars, settings.forecast_horizon_h
            )
        )
        start = stop
    return np.concatenate(parts)


def _fit_final(
    name: str, panel: Panel, settings: EnsembleSettings, forecaster: ModuleType | None
) -> tuple[bytes, dict[str, object]]:
    everything = np.ones(panel.labels.shape[0], dtype=np.bool_)
    model, params = _fit(name, panel, everything, settings, forecaster)
    return model.to_bytes(), params


def _score_votes(votes: Votes, panel: Panel, folds: Folds) -> Metrics:
    tested = np.logical_or.reduce(folds.test)
    return score(votes.action[tested], panel.labels[tested], panel.forward_return[tested])


def _window(panel: Panel, settings: EnsembleSettings) -> tuple[datetime, datetime]:
    """The data the labels read: the first labelled hour's open .. the close of the last bar a
    label looked at (the last row's hour + the horizon + that bar's hour)."""
    last = int(panel.time_ms.max()) + (settings.forecast_horizon_h + 1) * HOUR_MS
    return utc_from_ms(int(panel.time_ms.min())), utc_from_ms(last)


def _metadata(
    name: str,
    settings: EnsembleSettings,
    symbols: Sequence[str],
    now: datetime,
    metrics: Metrics,
    params: dict[str, object],
    window: tuple[datetime, datetime],
) -> ArtifactMetadata:
    return ArtifactMetadata(
        model=name,
        model_file="",
        sha256="",
        features=FEATURE_NAMES,
        lookback_bars=settings.lookback_bars,
        horizon_h=settings.forecast_horizon_h,
        label_threshold=settings.forecast_threshold,
        symbols=tuple(symbols),
        trained_at=now,
        metrics=metrics.as_dict(),
        params={**params, "seed": settings.seed},
        training_start=window[0],
        training_end=window[1],
    )


def _report(
    panel: Panel,
    folds: Folds,
    settings: EnsembleSettings,
    symbols: Sequence[str],
    oos: dict[str, Votes],
    skipped: dict[str, str],
    saved: tuple[str, ...],
) -> TrainingReport:
    tested = np.logical_or.reduce(folds.test)
    labels, forward = panel.labels[tested], panel.forward_return[tested]
    models = {name: score(v.action[tested], labels, forward) for name, v in oos.items()}
    ensemble = None
    if oos:
        action, _ = vote(
            np.stack([v.action for v in oos.values()]),
            np.stack([v.confidence for v in oos.values()]),
            np.stack([v.present for v in oos.values()]),
            settings.min_models,
        )
        ensemble = score(action[tested], labels, forward)
    baselines = {
        "majority class": score(_majority(panel, folds)[tested], labels, forward),
        "rule agent (1h)": score(panel.rule_action[tested], labels, forward),
    }
    return TrainingReport(
        symbols=tuple(symbols),
        start=utc_from_ms(int(panel.time_ms.min())),
        end=utc_from_ms(int(panel.time_ms.max()) + HOUR_MS),
        horizon_h=settings.forecast_horizon_h,
        label_threshold=settings.forecast_threshold,
        rows=int(panel.labels.shape[0]),
        test_rows=int(tested.sum()),
        folds=tuple((utc_from_ms(a), utc_from_ms(b)) for a, b in folds.blocks),
        embargo_h=settings.embargo_h,
        class_balance_train=class_balance(panel.labels),
        class_balance_test=class_balance(labels),
        models=models,
        ensemble=ensemble,
        baselines=baselines,
        skipped=skipped,
        saved=saved,
    )


def _majority(panel: Panel, folds: Folds) -> Int8Array:
    """Each test block predicted as the most frequent label of its fold's training rows."""
    out = np.zeros(panel.labels.shape[0], np.int8)
    for train, test in zip(folds.train, folds.test, strict=True):
        if train.any():
            counts = np.bincount(class_index(panel.labels[train]), minlength=3)
            out[test] = int(np.argmax(counts)) - 1
    return out
