"""Training, the model set and the ensemble, on the tiny set trained once per worker."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from ml_fixtures import (  # noqa: F401 (trained_fixture is the fixture `trained`)
    SYMBOLS,
    TINY,
    TRAINED_AT,
    copy_data_dir,
    settings_for,
    tiny_panel,
    train_tiny,
    trained_fixture,
)
from structlog.testing import capture_logs

from quantum_trader.config import Settings
from quantum_trader.domain import Bars
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.signals.ensemble import CRITICAL, DEGRADED, HEALTHY, Ensemble, LoadedModel
from quantum_trader.signals.loading import load_ensemble
from quantum_trader.signals.manifest import Manifest
from quantum_trader.signals.model_set import CURRENT_FILE, MANIFEST_FILE, current_set, sha256_hex
from quantum_trader.signals.models.base import MODEL_NAMES, Batch, Scores
from quantum_trader.signals.panel import make_folds
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.signals.training import REPORT_FILE, TrainingResult
from quantum_trader.signals.training_report import ENSEMBLE, MAJORITY, META, RULES

STORE = CandleStore(bundled_sample_dir())
FIVE_MIN = {s: STORE.load_bars(s, "5m").slice(0, 4200) for s in SYMBOLS}
Trained = tuple[Path, TrainingResult]


def set_dir(data_dir: Path) -> Path:
    current = current_set(data_dir / "models")
    assert current is not None
    return current


def manifest_of(data_dir: Path) -> Manifest:
    return Manifest.from_json((set_dir(data_dir) / MANIFEST_FILE).read_text())


def loaded(data_dir: Path, settings: Settings | None = None) -> Ensemble:
    ensemble = load_ensemble(data_dir / "models", settings or settings_for(data_dir))
    assert ensemble is not None
    return ensemble


def resign(data_dir: Path, model: str, payload: bytes) -> None:
    """Replace a model file and make its manifest entry agree (damaged but re-signed)."""
    directory = set_dir(data_dir)
    path = directory / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    entry = next(m for m in manifest["models"] if m["name"] == model)
    (directory / entry["file"]).write_bytes(payload)
    entry["sha256"] = sha256_hex(payload)
    entry["size_bytes"] = len(payload)
    path.write_text(json.dumps(manifest))


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


def test_training_publishes_one_complete_set(trained: Trained) -> None:
    data_dir, result = trained
    models = data_dir / "models"
    assert (models / CURRENT_FILE).read_text().strip() == result.set_dir.name
    manifest = manifest_of(data_dir)
    assert [m.name for m in manifest.models] == list(MODEL_NAMES)
    assert manifest.trained_at == TRAINED_AT
    assert manifest.symbols == SYMBOLS
    assert TINY.training_end is not None
    assert manifest.training_end <= TINY.training_end  # labels read nothing after it
    assert manifest.training_start < manifest.training_end
    provenance = loaded(data_dir).metadata
    assert set(provenance) == set(MODEL_NAMES)
    assert {(p.training_start, p.training_end) for p in provenance.values()} == {
        (manifest.training_start, manifest.training_end)
    }
    for entry in manifest.models:
        payload = (result.set_dir / entry.file).read_bytes()
        assert sha256_hex(payload) == entry.sha256
        assert {"trades", "mean_r", "hit_rate", "brier"} <= set(entry.metrics)
    files = {p.name for p in result.set_dir.iterdir()}
    assert {REPORT_FILE, "reliability_xgboost.png", "reliability_ensemble.png"} <= files
    assert (result.set_dir / "reliability_nhits.png").read_bytes().startswith(b"\x89PNG")
    assert not [p for p in models.iterdir() if p.name.startswith(".")]


def test_report_scores_every_source_on_the_same_out_of_sample_rows(trained: Trained) -> None:
    report = trained[1].report
    expected = {*MODEL_NAMES, ENSEMBLE, META, RULES, MAJORITY}
    assert set(report.stats) == expected
    assert {s.rows for s in report.stats.values()} == {report.evaluated_rows}
    assert len(report.folds) == 3
    assert all(len(v) == 2 for v in report.by_fold.values())  # blocks 2 and 3
    assert report.folds[0][1] == report.folds[1][0]
    text = report.to_markdown()
    for name in (*expected, "random entries", "calibration only", "Brier"):
        assert name in text


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(trained: Trained, tmp_path: Path) -> None:
    again = train_tiny(tmp_path)
    first, second = manifest_of(trained[0]), manifest_of(tmp_path)
    for a, b in zip(first.models, second.models, strict=True):
        if a.name in ("nhits", "patchtst"):
            x = torch.load(trained[1].set_dir / a.file, weights_only=True)
            y = torch.load(again.set_dir / b.file, weights_only=True)
            assert all(torch.equal(x[key], y[key]) for key in x)
        else:
            assert a.sha256 == b.sha256
        assert a.calibration == b.calibration
        assert a.metrics == b.metrics


def test_saved_models_load_and_vote_with_calibrated_confidence(trained: Trained) -> None:
    ensemble = loaded(trained[0])
    assert ensemble.model_names == MODEL_NAMES
    signals = ensemble.evaluate(FIVE_MIN)
    for symbol in SYMBOLS:
        series = signals[symbol]
        assert set(series.votes) == set(MODEL_NAMES)
        assert ((series.confidence >= 0) & (series.confidence <= 1)).all()
        assert (series.confidence[series.action == 0] == 0).all()
        assert (series.votes["xgboost"][1][-100:] > 0).all()


def test_perturbing_bars_after_t_changes_no_prediction_at_or_before_t(trained: Trained) -> None:
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


def test_live_tail_matches_the_backtest_row(trained: Trained) -> None:
    ensemble = loaded(trained[0])
    bars = {s: b.slice(0, ensemble.warmup_hours * 12) for s, b in FIVE_MIN.items()}
    full, live = ensemble.evaluate(bars), ensemble.evaluate(bars, tail=1)
    for symbol in SYMBOLS:
        assert live[symbol].action[-1] == full[symbol].action[-1]
        assert live[symbol].confidence[-1] == pytest.approx(full[symbol].confidence[-1], rel=1e-9)
        for model in MODEL_NAMES:
            # Forecasters infer in float64: reordering BLAS sums moves a score by < 1e-12
            # relative (ForecasterModel), and calibration is piecewise linear with slopes far
            # below 1e3, so 1e-9 holds on any CPU. Trees predict row by row: exact.
            assert live[symbol].votes[model][1][-1] == pytest.approx(
                full[symbol].votes[model][1][-1], rel=1e-9
            )
            assert live[symbol].votes[model][0][-1] == full[symbol].votes[model][0][-1]


def test_meta_labeling_only_ever_takes_the_rule_agents_side(trained: Trained) -> None:
    settings = settings_for(
        trained[0], ensemble=TINY.model_copy(update={"side_source": "rules", "min_models": 1})
    )
    meta = loaded(trained[0], settings)
    assert meta.name == "ensemble-meta"
    rules = RuleAgent(settings.signals).evaluate(FIVE_MIN)
    for symbol, series in meta.evaluate(FIVE_MIN).items():
        taken = series.action != 0
        np.testing.assert_array_equal(series.action[taken], rules[symbol].action[taken])


def test_a_file_that_does_not_match_its_sha256_abstains(trained: Trained, tmp_path: Path) -> None:
    data_dir = copy_data_dir(trained[0], tmp_path)
    path = set_dir(data_dir) / "xgboost.json"
    payload = bytearray(path.read_bytes())
    payload[100] ^= 0x01
    path.write_bytes(bytes(payload))
    with capture_logs() as logs:
        ensemble = loaded(data_dir)
    failures = [e for e in logs if e["event"] == "model_load_failed"]
    assert [e["model"] for e in failures] == ["xgboost"]
    assert "sha256" in failures[0]["reason"]
    assert ensemble.model_names == ("lightgbm", "nhits", "patchtst")


def test_a_pickle_with_code_in_a_weights_file_is_refused(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = copy_data_dir(trained[0], tmp_path)
    resign(data_dir, "patchtst", pickle.dumps({"weights": Boom()}, protocol=2))
    with capture_logs() as logs:
        ensemble = loaded(data_dir)
    assert "patchtst" not in ensemble.model_names
    assert [e["model"] for e in logs if e["event"] == "model_load_failed"] == ["patchtst"]
    assert "code ran" not in capsys.readouterr().out


class Boom:
    """Unpickling this would call print: weights-only loading must refuse it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sizing": {"stop_atr_multiple": 2.0}}, "sizing.stop_atr_multiple = 1.5"),
        ({"monitor": {"max_hold_h": 24.0}}, "monitor.max_hold_h = 48.0"),
        ({"costs": {"taker_fee": 0.0005}}, "costs.taker_fee = 0.0004"),
        ({"ensemble": {"lookback_bars": 96}}, "lookback 168 h"),
    ],
)
def test_a_set_trained_for_other_settings_is_refused_whole(
    trained: Trained, change: dict[str, dict[str, float]], expected: str
) -> None:
    base = settings_for(trained[0])
    updates = {k: getattr(base, k).model_copy(update=v) for k, v in change.items()}
    with capture_logs() as logs:
        assert load_ensemble(trained[0] / "models", base.model_copy(update=updates)) is None
    refused = [e for e in logs if e["event"] == "model_set_refused"]
    assert len(refused) == 1
    assert expected in refused[0]["reason"]
    assert "retrain with `quantum-trader train`" in refused[0]["reason"]


def test_a_set_with_a_missing_file_is_refused_whole(trained: Trained, tmp_path: Path) -> None:
    data_dir = copy_data_dir(trained[0], tmp_path)
    (set_dir(data_dir) / "lightgbm.txt").unlink()
    with capture_logs() as logs:
        assert load_ensemble(data_dir / "models", settings_for(data_dir)) is None
    (refused,) = [e for e in logs if e["event"] == "model_set_refused"]
    assert "incomplete" in refused["reason"]
    assert "lightgbm.txt" in refused["reason"]


def test_models_in_the_old_layout_are_not_used(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "xgboost.json").write_text("{}")
    assert load_ensemble(tmp_path / "models", settings_for(tmp_path)) is None


def test_only_the_configured_models_load_and_health_says_which_are_missing(
    trained: Trained,
) -> None:
    settings = settings_for(
        trained[0], ensemble=TINY.model_copy(update={"models": ("xgboost", "lightgbm")})
    )
    ensemble = loaded(trained[0], settings)
    assert ensemble.model_names == ("xgboost", "lightgbm")
    assert set(ensemble.evaluate(FIVE_MIN)[SYMBOLS[0]].votes) == {"xgboost", "lightgbm"}
    status, detail = ensemble.health(TRAINED_AT)
    assert status == DEGRADED
    assert "nhits" in detail


def test_health_follows_model_age_and_count(trained: Trained) -> None:
    ensemble = loaded(trained[0])
    max_age = timedelta(hours=TINY.max_model_age_h)
    assert ensemble.health(TRAINED_AT + max_age)[0] == HEALTHY
    status, detail = ensemble.health(TRAINED_AT + max_age + timedelta(seconds=1))
    assert status == DEGRADED
    assert "stale" in detail
    alone = loaded(
        trained[0],
        settings_for(trained[0], ensemble=TINY.model_copy(update={"models": ("xgboost",)})),
    )
    assert alone.health(TRAINED_AT)[0] == CRITICAL
    assert not alone.evaluate(FIVE_MIN)[SYMBOLS[0]].action.any()


class FailingModel:
    """A model whose inference raises."""

    @property
    def name(self) -> str:
        return "patchtst"

    def scores(self, batch: Batch) -> Scores:
        raise RuntimeError("boom")


def test_a_model_failing_at_inference_abstains_and_degrades_health(trained: Trained) -> None:
    good = loaded(trained[0])
    calibration = manifest_of(trained[0]).models[3].calibration
    models = [LoadedModel(FailingModel(), calibration), *good._models[:2]]
    ensemble = Ensemble(models, TINY, TRAINED_AT)
    with capture_logs() as logs:
        signals: Mapping[str, object] = ensemble.evaluate(FIVE_MIN, tail=1)
    assert [e["model"] for e in logs if e["event"] == "model_predict_failed"] == ["patchtst"]
    assert set(signals) == set(SYMBOLS)
    status, detail = ensemble.health(TRAINED_AT)
    assert status == DEGRADED
    assert "failed to predict" in detail


def test_no_training_row_of_a_block_has_a_label_that_reaches_into_the_block() -> None:
    panel = tiny_panel()
    folds = make_folds(panel, TINY)
    embargo_ms = TINY.embargo_h * 3_600_000
    for (start, stop), train, test in zip(folds.blocks, folds.train, folds.test, strict=True):
        assert train.any()
        assert test.any()
        assert int(panel.label_end_ms[train].max()) + embargo_ms <= start
        assert int(panel.time_ms[test].min()) >= start
        assert int(panel.time_ms[test].max()) < stop
        # every row before the block whose label ends in time is used: purging drops only
        # what overlaps
        earlier = panel.time_ms < start
        assert (train == earlier & (panel.label_end_ms + embargo_ms <= start)).all()
    assert (panel.label_end_ms > panel.time_ms + 3_600_000).all()


@pytest.mark.parametrize(
    ("current", "manifest", "expected"),
    [
        ("../elsewhere", None, "does not name a model set"),
        ("gone", None, "model set gone: no readable manifest"),
        ("old", '{"format_version": 1}', "model set format 1, this program reads 2"),
        ("bad", "{not json", "unreadable model set manifest"),
    ],
)
def test_an_unusable_current_or_manifest_is_refused_with_one_line(
    tmp_path: Path, current: str, manifest: str | None, expected: str
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / CURRENT_FILE).write_text(current + "\n")
    if manifest is not None:
        (models / current).mkdir()
        (models / current / MANIFEST_FILE).write_text(manifest)
    with capture_logs() as logs:
        assert load_ensemble(models, settings_for(tmp_path)) is None
    (refused,) = [e for e in logs if e["event"] == "model_set_refused"]
    assert expected in refused["reason"]
