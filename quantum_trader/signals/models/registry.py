"""Turn a checked model file into a predictor, importing PyTorch only when a forecaster needs it."""

from __future__ import annotations

from types import ModuleType

from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.manifest import ModelEntry
from quantum_trader.signals.models.base import FORECASTERS, LIGHTGBM, XGBOOST, Predictor
from quantum_trader.signals.models.lightgbm_model import LightGBMModel
from quantum_trader.signals.models.xgboost_model import XGBoostModel


class TorchUnavailable(ModelArtifactError):
    """PyTorch is not installed: the forecasters abstain, everything else works."""


def build_predictor(
    entry: ModelEntry,
    payload: bytes,
    n_inputs: int,
    lookback_bars: int,
    horizon_h: int,
    torch_threads: int,
) -> Predictor:
    """Parse one model file (already checked against its manifest entry); else raise
    ModelArtifactError (or TorchUnavailable)."""
    if entry.name == XGBOOST:
        return XGBoostModel.from_bytes(payload, n_inputs)
    if entry.name == LIGHTGBM:
        return LightGBMModel.from_bytes(payload, n_inputs)
    if entry.name in FORECASTERS:
        forecaster = import_forecaster(torch_threads)
        model: Predictor = forecaster.ForecasterModel.from_bytes(
            entry.name, payload, lookback_bars, horizon_h, entry.params
        )
        return model
    raise ModelArtifactError(f"{entry.name}: unknown model")


def import_forecaster(threads: int) -> ModuleType:
    """Import the PyTorch forecasters module (and cap torch's threads) or raise TorchUnavailable."""
    try:
        from quantum_trader.signals.models import forecaster
    except ImportError as error:
        raise TorchUnavailable(f"PyTorch is not installed ({error})") from error
    forecaster.configure_threads(threads)
    return forecaster
