"""What every model shares: names, the input batch, and raw scores per side.

Every model answers the same question for each row and each side (column 0 long, column 1
short): how good would that trade be? Its raw answer is a score that only has to be monotone in
the trade's quality (a tree's uncalibrated win probability, a forecaster's forecast return in σ
units times the side's sign). Calibration (signals/calibration.py) turns a score into the
probability that the trade ends with R > 0 after costs and into its expected R.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import FloatArray
from quantum_trader.record import record

XGBOOST = "xgboost"
LIGHTGBM = "lightgbm"
NHITS = "nhits"
PATCHTST = "patchtst"
TREE_MODELS = (XGBOOST, LIGHTGBM)
FORECASTERS = (NHITS, PATCHTST)
MODEL_NAMES = (*TREE_MODELS, *FORECASTERS)
SIDE_SIGNS = np.array([1.0, -1.0])
"""The side input of the tree models: +1 long (column 0), −1 short (column 1)."""

Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]


@record
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

    def subset(self, mask: BoolArray) -> Batch:
        """The rows selected by `mask`."""
        windows = None if self.windows is None else self.windows[mask]
        return Batch(
            self.features[mask], self.features_ok[mask], windows, self.windows_ok[mask],
            self.scale[mask],
        )  # fmt: skip


@record
class Scores:
    """One model's raw scores over a batch: (n, 2) long/short, and the rows it answered."""

    values: FloatArray
    present: BoolArray

    @classmethod
    def abstain(cls, n: int) -> Scores:
        return cls(np.zeros((n, 2)), np.zeros(n, dtype=np.bool_))


class Predictor(Protocol):
    """A loaded, trained model."""

    @property
    def name(self) -> str: ...

    def scores(self, batch: Batch) -> Scores:
        """Raw scores for every row of `batch`; rows without complete inputs abstain."""
        ...


class TrainedModel(Predictor, Protocol):
    """A model fresh from training: it can also serialise itself for its model file."""

    def to_bytes(self) -> bytes: ...


def with_side(features: FloatArray, side: FloatArray) -> FloatArray:
    """Append the side (+1 long, −1 short) as the last input column of the tree models."""
    return np.column_stack([features, side])


def both_sides(features: FloatArray) -> FloatArray:
    """Each row twice, long then short: (2n, F + 1), rows [0, n) long and [n, 2n) short."""
    n = features.shape[0]
    stacked = np.concatenate([features, features])
    return with_side(stacked, np.repeat(SIDE_SIGNS, n))


def tree_scores(batch: Batch, predict: Callable[[FloatArray], object]) -> Scores:
    """A tree model's scores: `predict` answers `both_sides` of the complete rows (long rows
    first, then short); the incomplete rows abstain."""
    ok = batch.features_ok
    values = np.zeros((len(batch), 2))
    rows = batch.features[ok]
    if rows.shape[0]:
        out = np.asarray(predict(both_sides(rows)), dtype=np.float64)
        values[ok] = out.reshape(2, -1).T
    return Scores(values, ok.copy())
