"""Training, artifacts and the ensemble on tiny models trained on a slice of the bundled sample."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from quantum_trader.domain import Bars
from quantum_trader.errors import ModelArtifactError
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.signals.artifacts import read_artifact
from quantum_trader.signals.ensemble import (
    CRITICAL,
    DEGRADED,
    HEALTHY,
    Ensemble,
    LoadedModel,
    load_ensemble,
)
from quantum_trader.signals.features import FEATURE_NAMES
from quantum_trader.signals.models.base import MODEL_NAMES, Batch, Votes
from quantum_trader.signals.models.registry import load_predictor
from quantum_trader.signals.settings import EnsembleSettings
from quantum_trader.signals.training import train_models
from quantum_trader.signals.training_report import TrainingReport

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
TRAINED_AT = datetime(2025, 12, 1, tzinfo=UTC)
SETTINGS = EnsembleSettings(
    training_days=20,
    walk_forward_folds=2,
    validation_fraction=0.5,
    embargo_h=8,
    tree_rounds=15,
    forecaster_steps=10,
)
STORE = CandleStore(bundled_sample_dir())
FIVE_MIN = {s: STORE.load_bars(s, "5m").slice(0, 4200) for s in SYMBOLS}


def train(directory: Path) -> TrainingReport:
    stages: list[tuple[str, float]] = []
    report = train_models(
        SETTINGS,
        bundled_sample_dir(),
        SYMBOLS,
        directory,
        TRAINED_AT,
        lambda stage, fraction: stages.append((stage, fraction)),
    )
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    return report


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingReport]:
    directory = tmp_path_factory.mktemp("models")
    return directory, train(directory)


@pytest.fixture
def models_copy(trained: tuple[Path, TrainingReport], tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / "models"))


def loaded(directory: Path, settings: EnsembleSettings = SETTINGS) -> Ensemble:
    ensemble = load_ensemble(directory, settings)
    assert ensemble is not None
    return ensemble


def rehash(directory: Path, model: str, payload: bytes) -> None:
    """Replace a model file and make its metadata's sha256 agree (a consistent but bad file)."""
    meta_path = directory / f"{model}.json"
    meta = json.loads(meta_path.read_text())
    (directory / meta["model_file"]).write_bytes(payload)
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    meta_path.write_text(json.dumps(meta))


def perturbed_after(bars: Bars, t: int) -> Bars:
    scale = np.where(np.arange(len(bars)) > t, 1.3, 1.0)
    return Bars(
        bars.symbol,
        bars.timeframe_ms,
        bars.time_ms,
        bars.open * scale,
        bars.high * scale,
        bars.low * scale,
        bars.close * scale,
        bars.volume * np.where(scale > 1, 0.6, 1.0),
    )


def test_training_saves_every_model_with_metadata(trained: tuple[Path, TrainingReport]) -> None:
    directory, report = trained
    assert sorted(report.saved) == sorted(f"{m}.json" for m in MODEL_NAMES)
    for model in MODEL_NAMES:
        meta, payload = read_artifact(directory, model, FEATURE_NAMES)
        assert meta.sha256 == hashlib.sha256(payload).hexdigest()
        assert meta.trained_at == TRAINED_AT
        assert meta.symbols == SYMBOLS
        assert meta.lookback_bars == 168
        assert meta.horizon_h == 8
        assert {"accuracy", "precision_buy", "precision_sell"} <= set(meta.metrics)


def test_report_scores_models_ensemble_and_both_baselines_on_the_same_rows(
    trained: tuple[Path, TrainingReport],
) -> None:
    report = trained[1]
    scored = [*report.models.values(), *report.baselines.values()]
    assert report.ensemble is not None
    assert {m.n for m in [*scored, report.ensemble]} == {report.test_rows}
    assert set(report.baselines) == {"majority class", "rule agent (1h)"}
    text = report.to_markdown()
    for name in (*MODEL_NAMES, "ensemble", "majority class", "rule agent"):
        assert name in text
    assert len(report.folds) == 2
    assert report.folds[0][1] == report.folds[1][0]


def test_training_is_deterministic_for_a_seed(
    trained: tuple[Path, TrainingReport], tmp_path: Path
) -> None:
    train(tmp_path)
    for model in MODEL_NAMES:
        first, first_payload = read_artifact(trained[0], model, FEATURE_NAMES)
        second, second_payload = read_artifact(tmp_path, model, FEATURE_NAMES)
        if model in ("nhits", "patchtst"):
            a = torch.load(trained[0] / first.model_file, weights_only=True)
            b = torch.load(tmp_path / second.model_file, weights_only=True)
            assert all(torch.equal(a[key], b[key]) for key in a)
        else:
            assert first_payload == second_payload
        assert first.metrics == second.metrics


def test_saved_models_load_and_predict_like_the_trained_ones(
    trained: tuple[Path, TrainingReport],
) -> None:
    ensemble = loaded(trained[0])
    again = loaded(trained[0])
    assert ensemble.model_names == MODEL_NAMES
    first = ensemble.evaluate(FIVE_MIN)
    second = again.evaluate(FIVE_MIN)
    for symbol in SYMBOLS:
        assert set(first[symbol].votes) == set(MODEL_NAMES)
        for model in MODEL_NAMES:
            np.testing.assert_array_equal(
                first[symbol].votes[model][1], second[symbol].votes[model][1]
            )
        assert (first[symbol].votes["xgboost"][1][-100:] > 0).all()
        assert (first[symbol].votes["patchtst"][1][-100:] > 0).all()


def test_perturbing_bars_after_t_changes_no_prediction_at_or_before_t(
    trained: tuple[Path, TrainingReport],
) -> None:
    ensemble = loaded(trained[0])
    t = 3900
    changed = {s: perturbed_after(b, t) for s, b in FIVE_MIN.items()}
    before, after = ensemble.evaluate(FIVE_MIN), ensemble.evaluate(changed)
    for symbol in SYMBOLS:
        np.testing.assert_array_equal(before[symbol].action[: t + 1], after[symbol].action[: t + 1])
        np.testing.assert_array_equal(
            before[symbol].confidence[: t + 1], after[symbol].confidence[: t + 1]
        )
        for model in MODEL_NAMES:
            np.testing.assert_array_equal(
                before[symbol].votes[model][1][: t + 1], after[symbol].votes[model][1][: t + 1]
            )
        assert not np.array_equal(
            before[symbol].votes["xgboost"][1], after[symbol].votes["xgboost"][1]
        )


def test_live_tail_matches_the_backtest_row(trained: tuple[Path, TrainingReport]) -> None:
    ensemble = loaded(trained[0])
    bars = {s: b.slice(0, ensemble.warmup_hours * 12) for s, b in FIVE_MIN.items()}
    full, live = ensemble.evaluate(bars), ensemble.evaluate(bars, tail=1)
    for symbol in SYMBOLS:
        assert live[symbol].action.shape == full[symbol].action.shape
        assert live[symbol].action[-1] == full[symbol].action[-1]
        assert live[symbol].confidence[-1] == pytest.approx(full[symbol].confidence[-1], rel=1e-9)
        for model in MODEL_NAMES:
            # BLAS may sum in another order for a batch of one row than for thousands; in
            # float64 that moves a vote by < 1e-12 relative (ForecasterModel's docstring), so
            # 1e-9 holds on any CPU. The trees predict row by row: exact.
            assert live[symbol].votes[model][1][-1] == pytest.approx(
                full[symbol].votes[model][1][-1], rel=1e-9
            )
            assert live[symbol].votes[model][0][-1] == full[symbol].votes[model][0][-1]
            assert live[symbol].votes[model][1][-1] > 0


def test_a_corrupt_model_file_is_skipped_and_the_others_carry_on(models_copy: Path) -> None:
    path = models_copy / "xgboost.ubj"
    payload = bytearray(path.read_bytes())
    payload[100] ^= 0xFF
    path.write_bytes(bytes(payload))
    with capture_logs() as logs:
        ensemble = loaded(models_copy)
    failures = [e for e in logs if e["event"] == "model_load_failed"]
    assert [e["model"] for e in failures] == ["xgboost"]
    assert "sha256" in failures[0]["reason"]
    assert ensemble.model_names == ("lightgbm", "nhits", "patchtst")
    assert set(ensemble.evaluate(FIVE_MIN)[SYMBOLS[0]].votes) == {"lightgbm", "nhits", "patchtst"}


def test_a_truncated_lightgbm_model_is_an_error_not_a_crash(models_copy: Path) -> None:
    text = (models_copy / "lightgbm.txt").read_bytes()
    rehash(models_copy, "lightgbm", text[: len(text) // 2])
    with pytest.raises(ModelArtifactError, match="corrupt"):
        load_predictor(models_copy, "lightgbm", SETTINGS)


def test_garbage_xgboost_bytes_are_an_error(models_copy: Path) -> None:
    rehash(models_copy, "xgboost", b"not a model")
    with pytest.raises(ModelArtifactError, match="corrupt"):
        load_predictor(models_copy, "xgboost", SETTINGS)


def test_a_different_feature_list_is_a_mismatch(models_copy: Path) -> None:
    meta_path = models_copy / "lightgbm.json"
    meta = json.loads(meta_path.read_text())
    meta["features"] = meta["features"][:-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="features"):
        load_predictor(models_copy, "lightgbm", SETTINGS)


def test_other_window_settings_are_a_mismatch(models_copy: Path) -> None:
    with pytest.raises(ModelArtifactError, match="lookback"):
        load_predictor(models_copy, "xgboost", SETTINGS.model_copy(update={"lookback_bars": 96}))


def test_weights_for_another_architecture_are_a_mismatch(models_copy: Path) -> None:
    meta_path = models_copy / "nhits.json"
    meta = json.loads(meta_path.read_text())
    meta["params"]["architecture"]["hidden"] = 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="mismatched"):
        load_predictor(models_copy, "nhits", SETTINGS)


class Boom:
    """Unpickling this would call print: weights_only loading must refuse it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_a_pickle_with_code_in_a_weights_file_is_refused(
    models_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rehash(models_copy, "patchtst", pickle.dumps({"weights": Boom()}, protocol=2))
    with pytest.raises(ModelArtifactError):
        load_predictor(models_copy, "patchtst", SETTINGS)
    assert "code ran" not in capsys.readouterr().out


def test_tree_models_alone_work_without_the_forecasters(models_copy: Path) -> None:
    for model in ("nhits", "patchtst"):
        (models_copy / f"{model}.json").unlink()
        (models_copy / f"{model}.pt").unlink()
    ensemble = loaded(models_copy)
    assert ensemble.model_names == ("xgboost", "lightgbm")
    signals = ensemble.evaluate(FIVE_MIN)
    assert set(signals[SYMBOLS[0]].votes) == {"xgboost", "lightgbm"}
    status, detail = ensemble.health(TRAINED_AT)
    assert status == DEGRADED
    assert "nhits" in detail


def test_health_follows_model_age_and_count(trained: tuple[Path, TrainingReport]) -> None:
    ensemble = loaded(trained[0])
    max_age = timedelta(hours=SETTINGS.max_model_age_h)
    assert ensemble.health(TRAINED_AT + max_age)[0] == HEALTHY
    status, detail = ensemble.health(TRAINED_AT + max_age + timedelta(seconds=1))
    assert status == DEGRADED
    assert "stale" in detail
    strict = loaded(trained[0], SETTINGS.model_copy(update={"min_models": 4}))
    assert strict.health(TRAINED_AT)[0] == HEALTHY


def test_fewer_loaded_models_than_the_quorum_is_critical(models_copy: Path) -> None:
    for model in ("lightgbm", "nhits", "patchtst"):
        (models_copy / f"{model}.json").unlink()
    ensemble = loaded(models_copy)
    assert ensemble.health(TRAINED_AT)[0] == CRITICAL
    signals = ensemble.evaluate(FIVE_MIN)
    assert not signals[SYMBOLS[0]].action.any()


def test_no_trained_models_means_no_ensemble(tmp_path: Path) -> None:
    assert load_ensemble(tmp_path, SETTINGS) is None


class FailingModel:
    """A model whose inference raises."""

    @property
    def name(self) -> str:
        return "patchtst"

    def predict(self, batch: Batch) -> Votes:
        raise RuntimeError("boom")


def test_a_model_failing_at_inference_abstains_and_degrades_health(
    trained: tuple[Path, TrainingReport],
) -> None:
    good = loaded(trained[0])
    models = [LoadedModel(FailingModel(), good.metadata["patchtst"])]
    models += [
        LoadedModel(load_predictor(trained[0], m, SETTINGS)[0], good.metadata[m])
        for m in ("xgboost", "lightgbm")
    ]
    ensemble = Ensemble(models, SETTINGS)
    with capture_logs() as logs:
        signals: Mapping[str, object] = ensemble.evaluate(FIVE_MIN, tail=1)
    assert [e["model"] for e in logs if e["event"] == "model_predict_failed"] == ["patchtst"]
    assert set(signals) == set(SYMBOLS)
    status, detail = ensemble.health(TRAINED_AT)
    assert status == DEGRADED
    assert "failed to predict" in detail
