"""What every model shares: names, the input batch, and the mapping from outputs to votes.

Classes: index 0 SELL, 1 HOLD, 2 BUY (label + 1). A vote is (action int8 in {-1, 0, 1},
confidence in (0, 1]); an abstention is HOLD with confidence 0 and `present` False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import FloatArray

XGBOOST = "xgboost"
LIGHTGBM = "lightgbm"
NHITS = "nhits"
PATCHTST = "patchtst"
TREE_MODELS = (XGBOOST, LIGHTGBM)
FORECASTERS = (NHITS, PATCHTST)
MODEL_NAMES = (*TREE_MODELS, *FORECASTERS)
N_CLASSES = 3
MIN_HOLD_CONFIDENCE = 0.05

Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Batch:
    """Model inputs for n (symbol, hour) rows.

    `features` is (n, F) float64; `windows` is (n, 2, lookback) float32 (normalised log price
    and log volume, oldest first) or None when no forecaster needs it. `*_ok` mark the rows
    whose inputs are complete; the others abstain.
    """

    features: FloatArray
    features_ok: BoolArray
    windows: npt.NDArray[np.float32] | None
    windows_ok: BoolArray
    scale: FloatArray

    def __len__(self) -> int:
        return int(self.features.shape[0])


@dataclass(frozen=True, slots=True)
class Votes:
    """One model's votes over a batch."""

    action: Int8Array
    confidence: FloatArray
    present: BoolArray

    @classmethod
    def abstain(cls, n: int) -> Votes:
        return cls(np.zeros(n, np.int8), np.zeros(n), np.zeros(n, dtype=np.bool_))


class Predictor(Protocol):
    """A loaded, trained model."""

    @property
    def name(self) -> str: ...

    def predict(self, batch: Batch) -> Votes:
        """Votes for every row of `batch`; rows without complete inputs abstain."""
        ...


class TrainedModel(Predictor, Protocol):
    """A model fresh from training: it can also serialise itself for its artifact."""

    def to_bytes(self) -> bytes: ...


def votes_from_probabilities(probabilities: FloatArray, ok: BoolArray) -> Votes:
    """Argmax class → action; its probability (≥ 1/3) is the confidence."""
    n = ok.shape[0]
    action = np.zeros(n, np.int8)
    confidence = np.zeros(n)
    if probabilities.shape[0]:
        action[ok] = (np.argmax(probabilities, axis=1) - 1).astype(np.int8)
        confidence[ok] = np.max(probabilities, axis=1)
    return Votes(action, confidence, ok.copy())


def votes_from_forecast(forecast_return: FloatArray, threshold: float, ok: BoolArray) -> Votes:
    """Map a forecast log return over the horizon to a vote.

    |r| > threshold → BUY/SELL with confidence |r| / (2·threshold) clipped to [0.5, 1] (full
    confidence at twice the threshold); otherwise HOLD with confidence 1 − |r|/threshold,
    at least MIN_HOLD_CONFIDENCE so that a HOLD vote is never mistaken for an abstention.
    """
    magnitude = np.abs(forecast_return)
    beyond = magnitude > threshold
    action = np.where(beyond, np.sign(forecast_return), 0.0).astype(np.int8)
    confidence = np.where(
        beyond,
        np.clip(magnitude / (2.0 * threshold), 0.5, 1.0),
        np.clip(1.0 - magnitude / threshold, MIN_HOLD_CONFIDENCE, 1.0),
    )
    action[~ok] = 0
    confidence[~ok] = 0.0
    return Votes(action, confidence, ok.copy())


def class_index(labels: Int8Array) -> npt.NDArray[np.int64]:
    """Labels −1/0/+1 → class indices 0/1/2."""
    return labels.astype(np.int64) + 1
