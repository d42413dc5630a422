"""The two neural forecasters behind one predictor: fit, forecast, (de)serialise.

PyTorch is optional: this module imports it at the top, so callers import this module lazily
and treat an ImportError as "forecasters abstain". Weights are a state_dict saved with
`torch.save` and read with `torch.load(weights_only=True)` (tensors only, no code); the
architecture is rebuilt from the hyper-parameters in the metadata and the state_dict must
match it exactly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from quantum_trader.domain import FloatArray
from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.models.base import NHITS, PATCHTST, Batch, Scores
from quantum_trader.signals.models.nhits import DEFAULT_PARAMS as NHITS_PARAMS
from quantum_trader.signals.models.nhits import NHiTS
from quantum_trader.signals.models.patchtst import DEFAULT_PARAMS as PATCHTST_PARAMS
from quantum_trader.signals.models.patchtst import PatchTST
from quantum_trader.signals.models.windows import Float32Array
from quantum_trader.signals.stopping import TRAINING_STOP

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {NHITS: NHITS_PARAMS, PATCHTST: PATCHTST_PARAMS}
INFERENCE_CHUNK = 4096
MAX_THREADS = 2


def configure_threads(threads: int) -> None:
    """Cap PyTorch's intra-op threads (the machine has 2 cores shared with the daemon)."""
    torch.set_num_threads(max(1, min(threads, MAX_THREADS)))


def build_module(name: str, lookback: int, horizon: int, params: Mapping[str, Any]) -> nn.Module:
    if name == NHITS:
        return NHiTS.from_params(lookback, horizon, params)
    if name == PATCHTST:
        return PatchTST.from_params(lookback, horizon, params)
    raise ModelArtifactError(f"{name}: not a forecaster")


class ForecasterModel:
    """A trained forecaster. Its score for a long is the forecast log return over the horizon in
    σ units of the window (the same scale for every symbol), for a short the same negated;
    calibration maps it to the trade's win probability and expected R.

    Inference runs in float64 whatever the training precision: the live cycle forecasts one
    row, a backtest thousands, and the BLAS kernels sum in a batch-shape-dependent order. In
    float32 that order moved a vote by 1.5e-5 relative between the two paths on an AVX-512 CPU;
    in float64 (unit roundoff 1.1e-16) reordering the ≤ 1,536-term sums of these networks moves
    it by less than 1e-12, so the live and the backtest path agree to that bound on any CPU.
    """

    def __init__(self, name: str, module: nn.Module) -> None:
        self._name = name
        self.module = module.double().eval()

    @property
    def name(self) -> str:
        return self._name

    def forecast_sigma(self, windows: Float32Array) -> FloatArray:
        """Forecast log return over the horizon for each window, in σ units of the window."""
        out = np.empty(windows.shape[0])
        with torch.inference_mode():
            for start in range(0, windows.shape[0], INFERENCE_CHUNK):
                chunk = torch.from_numpy(
                    windows[start : start + INFERENCE_CHUNK].astype(np.float64)
                )
                predicted = self.module(chunk)
                last = predicted[:, -1] if predicted.dim() == 2 else predicted[:, 0, -1]
                out[start : start + chunk.shape[0]] = last.double().numpy()
        return out

    def scores(self, batch: Batch) -> Scores:
        ok = batch.windows_ok if batch.windows is not None else np.zeros(len(batch), np.bool_)
        values = np.zeros((len(batch), 2))
        if batch.windows is not None and ok.any():
            forecast = self.forecast_sigma(batch.windows[ok])
            values[ok] = np.column_stack([forecast, -forecast])
        return Scores(values, ok.copy())

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        # Trained in float32: the float32 weights are exact, so the file stays float32.
        state = {key: value.float() for key, value in self.module.state_dict().items()}
        torch.save(state, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(
        cls, name: str, payload: bytes, lookback: int, horizon: int, params: Mapping[str, Any]
    ) -> ForecasterModel:
        """Rebuild the architecture from `params` and load weights without unpickling code."""
        try:
            module = build_module(name, lookback, horizon, params["architecture"])
            state = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
            module.load_state_dict(state, strict=True)
        except ModelArtifactError:
            raise
        except Exception as error:  # torch raises many types for a bad file
            raise ModelArtifactError(f"{name}: corrupt or mismatched weights ({error})") from error
        return cls(name, module)


def fit_forecaster(
    name: str,
    windows: Float32Array,
    targets: Float32Array,
    seed: int,
    steps: int,
    batch_size: int = 256,
) -> nn.Module:
    """Train with Adam on the Huber loss over random mini-batches; deterministic for a seed.

    N-HiTS is scored on the price channel only (volume is its exogenous input); PatchTST on
    both channels, as channel independence makes each channel a training series.
    """
    torch.manual_seed(seed)
    lookback, horizon = windows.shape[2], targets.shape[2]
    module = build_module(name, lookback, horizon, DEFAULT_PARAMS[name]).train()
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-3)
    loss_fn = nn.HuberLoss(delta=1.0)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        TRAINING_STOP.check()  # between steps: a safe point to stop at
        rows = rng.integers(0, windows.shape[0], size=min(batch_size, windows.shape[0]))
        x = torch.from_numpy(windows[rows])
        y = torch.from_numpy(targets[rows])
        predicted = module(x)
        loss = loss_fn(predicted, y[:, 0] if predicted.dim() == 2 else y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return module.eval()
