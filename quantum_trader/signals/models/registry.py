"""Load a trained model from its artifact, importing PyTorch only when a forecaster needs it."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.artifacts import ArtifactMetadata, read_artifact
from quantum_trader.signals.features import FEATURE_NAMES
from quantum_trader.signals.models.base import FORECASTERS, LIGHTGBM, XGBOOST, Predictor
from quantum_trader.signals.models.lightgbm_model import LightGBMModel
from quantum_trader.signals.models.xgboost_model import XGBoostModel
from quantum_trader.signals.settings import EnsembleSettings


class TorchUnavailable(ModelArtifactError):
    """PyTorch is not installed: the forecasters abstain, everything else works."""


def load_predictor(
    models_dir: Path, name: str, settings: EnsembleSettings
) -> tuple[Predictor, ArtifactMetadata]:
    """Verify and load one model; raise ModelArtifactError (or TorchUnavailable) otherwise."""
    meta, payload = read_artifact(models_dir, name, FEATURE_NAMES)
    if (
        meta.lookback_bars != settings.lookback_bars
        or meta.horizon_h != settings.forecast_horizon_h
    ):
        raise ModelArtifactError(
            f"{name}: trained with lookback {meta.lookback_bars} h and horizon {meta.horizon_h} h,"
            f" settings ask for {settings.lookback_bars} h and {settings.forecast_horizon_h} h;"
            " retrain with `quantum-trader train`"
        )
    if name == XGBOOST:
        return XGBoostModel.from_bytes(payload, len(FEATURE_NAMES)), meta
    if name == LIGHTGBM:
        return LightGBMModel.from_bytes(payload, len(FEATURE_NAMES)), meta
    if name in FORECASTERS:
        forecaster = import_forecaster(settings.torch_threads)
        model = forecaster.ForecasterModel.from_bytes(
            name, payload, meta.lookback_bars, meta.horizon_h, meta.params
        )
        return model, meta
    raise ModelArtifactError(f"{name}: unknown model")


def import_forecaster(threads: int) -> ModuleType:
    """Import the PyTorch forecasters module (and cap torch's threads) or raise TorchUnavailable."""
    try:
        from quantum_trader.signals.models import forecaster
    except ImportError as error:
        raise TorchUnavailable(f"PyTorch is not installed ({error})") from error
    forecaster.configure_threads(threads)
    return forecaster
