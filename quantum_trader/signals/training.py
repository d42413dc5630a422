"""Train the ensemble's models on triple-barrier labels, calibrate them, validate them out of
sample, and publish the model set atomically.

`train_models` is the one public entry point (the `train` command and the walk-forward backtest
call it). In order:
1. the panel (signals/panel.py): features, forecaster windows, and for every (symbol, hour) the
   outcome in R after costs of a long and of a short (signals/labels.py);
2. walk-forward: each test block is predicted by models trained on purged, embargoed earlier
   rows; the tree models learn P(R > 0 | features, side) directly, the forecasters forecast the
   next hours' returns (their forecast in σ units is their score);
3. calibration (signals/calibration.py): each block's raw scores are calibrated on the
   out-of-fold scores of the blocks before it, so the calibrated numbers of blocks 2.. are out of
   sample; the first block only calibrates;
4. the report (signals/training_report.py) scores every model, the ensemble, meta-labeling and
   the baselines on blocks 2.. in R after costs and hit rate;
5. the saved models are refitted on every row; their calibration is fitted on all out-of-fold
   scores; the set, its manifest, the report and its figures are published in one rename.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import utc_from_ms
from quantum_trader.errors import ModelArtifactError
from quantum_trader.market.resample import HOUR_MS
from quantum_trader.record import record
from quantum_trader.signals.calibration import Calibration
from quantum_trader.signals.coverage import MIN_TRAIN_ROWS
from quantum_trader.signals.labels import ExitRules
from quantum_trader.signals.loading import expected_spec
from quantum_trader.signals.manifest import Manifest
from quantum_trader.signals.model_set import (
    entry_for,
    new_set_id,
    publish_model_set,
    sweep_partials,
)
from quantum_trader.signals.models.base import (
    FORECASTERS,
    LIGHTGBM,
    XGBOOST,
    BoolArray,
    TrainedModel,
)
from quantum_trader.signals.models.lightgbm_model import LightGBMModel
from quantum_trader.signals.models.registry import import_forecaster
from quantum_trader.signals.models.windows import build_targets
from quantum_trader.signals.models.xgboost_model import XGBoostModel
from quantum_trader.signals.panel import Folds, Panel, load_panel, make_folds
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.stopping import TRAINING_STOP
from quantum_trader.signals.training_report import ModelRun, TrainingReport, build_report

if TYPE_CHECKING:
    from quantum_trader.config import Settings

Progress = Callable[[str, float], None]
REPORT_FILE = "VALIDATION.md"


@record
class TrainingResult:
    """What `train_models` published and how the models did out of sample."""

    report: TrainingReport
    set_dir: Path
    swept: tuple[str, ...]


def train_models(
    settings: Settings,
    source_dir: Path,
    symbols: Sequence[str],
    models_dir: Path,
    now: datetime,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train `settings.ensemble.models` on `symbols` from `source_dir`; publish the set.

    `now` is the set's `trained_at` (UTC). Forecasters that cannot be trained (no PyTorch) are
    skipped and named in the report. Raises MarketDataError for unusable data; a StopRequested
    (TRAINING_STOP, asked for by a signal) leaves `models_dir` as it was (plus nothing).
    """
    reported = progress or (lambda _stage, _fraction: None)

    def report_progress(stage: str, fraction: float) -> None:
        TRAINING_STOP.check()  # every stage and fold is a safe point to stop at
        reported(stage, fraction)

    report_progress("loading data and labels", 0.0)
    swept = tuple(sweep_partials(models_dir))
    ensemble = settings.ensemble
    forecaster, skipped = _forecaster_module(settings)
    names = [n for n in ensemble.models if n not in skipped]
    rules = ExitRules.of(settings)
    agent = RuleAgent(settings.signals)
    panel = load_panel(ensemble, rules, agent, source_dir, symbols, forecaster is not None)
    folds = make_folds(panel, ensemble)
    steps = max(len(names) * (len(folds.blocks) + 1), 1)
    runs: dict[str, ModelRun] = {}
    payloads: dict[str, bytes] = {}
    params: dict[str, dict[str, object]] = {}
    for index, name in enumerate(names):
        done = index * (len(folds.blocks) + 1)

        def tick(step: int, what: str, _done: int = done, _name: str = name) -> None:
            report_progress(f"{_name}: {what}", (_done + step) / steps)

        runs[name] = _walk_forward(name, panel, folds, settings, forecaster, tick)
        tick(len(folds.blocks), "final fit")
        model, params[name] = _fit(name, panel, np.ones(panel.rows, np.bool_), settings, forecaster)
        payloads[name] = model.to_bytes()
    report_progress("report", 1.0)
    report = build_report(panel, folds, runs, settings, tuple(symbols), skipped)
    manifest = _manifest(settings, panel, now, runs, payloads, params, report)
    extras = {REPORT_FILE: report.to_markdown().encode(), **report.figures()}
    TRAINING_STOP.check()  # the last point before the set is published
    set_dir = publish_model_set(models_dir, manifest, payloads, extras)
    report_progress("done", 1.0)
    return TrainingResult(report, set_dir, swept)


def _forecaster_module(settings: Settings) -> tuple[ModuleType | None, dict[str, str]]:
    if not any(n in FORECASTERS for n in settings.ensemble.models):
        return None, {}
    try:
        return import_forecaster(settings.ensemble.torch_threads), {}
    except ModelArtifactError as error:
        return None, {n: str(error) for n in settings.ensemble.models if n in FORECASTERS}


def _walk_forward(
    name: str,
    panel: Panel,
    folds: Folds,
    settings: Settings,
    forecaster: ModuleType | None,
    tick: Callable[[int, str], None],
) -> ModelRun:
    """Out-of-fold raw scores on every test row, and their walk-forward calibration."""
    scores = np.full((panel.rows, 2), np.nan)
    present = np.zeros(panel.rows, dtype=np.bool_)
    for k, (train, test) in enumerate(zip(folds.train, folds.test, strict=True)):
        tick(k, f"fold {k + 1}/{len(folds.blocks)}")
        if int(train.sum()) < MIN_TRAIN_ROWS or not test.any():
            continue
        model, _ = _fit(name, panel, train, settings, forecaster)
        answered = model.scores(panel.batch.subset(test))
        scores[test] = answered.values
        present[test] = answered.present
    probability = np.full((panel.rows, 2), np.nan)
    expected = np.full((panel.rows, 2), np.nan)
    earlier = np.zeros(panel.rows, dtype=np.bool_)
    for test in folds.test:
        if earlier.any():
            calibration = Calibration.fit(scores, panel.outcome_r, present & earlier)
            rows = test & present
            probability[rows], expected[rows] = calibration.apply(scores[rows])
        earlier |= test
    final = Calibration.fit(scores, panel.outcome_r, present & earlier)
    return ModelRun(scores, present, probability, expected, final)


def _fit(
    name: str,
    panel: Panel,
    rows: BoolArray,
    settings: Settings,
    forecaster: ModuleType | None,
) -> tuple[TrainedModel, dict[str, object]]:
    """Fit one model on the selected rows; return it and the parameters its entry records."""
    s = settings.ensemble
    if name in (XGBOOST, LIGHTGBM):
        kind: type[XGBoostModel] | type[LightGBMModel] = (
            XGBoostModel if name == XGBOOST else LightGBMModel
        )
        features = panel.batch.features[rows]
        n = features.shape[0]
        model: TrainedModel = kind.fit(
            np.concatenate([features, features]),
            np.repeat([1.0, -1.0], n),
            np.concatenate([panel.outcome_r[rows, 0] > 0, panel.outcome_r[rows, 1] > 0]),
            s.seed,
            rounds=s.tree_rounds,
            threads=s.torch_threads,
        )
        return model, {"rounds": s.tree_rounds, "seed": s.seed}
    assert forecaster is not None
    assert panel.batch.windows is not None
    module = forecaster.fit_forecaster(
        name,
        panel.batch.windows[rows],
        _targets(panel, rows, s.lookback_bars, s.forecast_horizon_h),
        s.seed,
        s.forecaster_steps,
    )
    params = {
        "architecture": forecaster.DEFAULT_PARAMS[name],
        "steps": s.forecaster_steps,
        "seed": s.seed,
    }
    return forecaster.ForecasterModel(name, module), params


def _targets(panel: Panel, rows: BoolArray, lookback: int, horizon: int) -> npt.NDArray[np.float32]:
    parts, start = [], 0
    for frame in panel.frames:
        stop = start + frame.rows.shape[0]
        selected = frame.rows[rows[start:stop]]
        h = frame.hourly
        parts.append(build_targets(h.close, h.volume, selected, lookback, horizon))
        start = stop
    return np.concatenate(parts)


def _manifest(
    settings: Settings,
    panel: Panel,
    now: datetime,
    runs: dict[str, ModelRun],
    payloads: dict[str, bytes],
    params: dict[str, dict[str, object]],
    report: TrainingReport,
) -> Manifest:
    entries = tuple(
        entry_for(
            name,
            payloads[name],
            runs[name].calibration,
            params=params[name],
            metrics=report.model_metrics(name),
        )
        for name in runs
    )
    return Manifest(
        set_id=new_set_id(now),
        trained_at=now,
        spec=expected_spec(settings),
        symbols=tuple(f.symbol for f in panel.frames if len(f.rows)),  # what it learned from
        training_start=utc_from_ms(int(panel.time_ms.min())),
        training_end=utc_from_ms(max(int(f.hourly.time_ms[-1]) for f in panel.frames) + HOUR_MS),
        models=entries,
    )
