"""XGBoost classifier: (features, side) → raw P(the trade ends with R > 0 after costs).

Stored as XGBoost's JSON model (no code, no pickle). Before XGBoost parses a file, its text is
decoded and parsed here and every tree's arrays are checked against each other and against the
feature count (model_files.check_xgboost_json), so a damaged file is refused by name instead of
reaching the native parser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from quantum_trader.domain import FloatArray
from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.models.base import (
    XGBOOST,
    Batch,
    Scores,
    tree_scores,
    with_side,
)
from quantum_trader.signals.models.model_files import check_xgboost_json

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20.0,
    "lambda": 5.0,
    "tree_method": "hist",
    "eval_metric": "logloss",
}


class XGBoostModel:
    """A trained booster; predicts single-threaded (small live batches pay no thread start)."""

    def __init__(self, booster: xgb.Booster) -> None:
        self._booster = booster
        self._booster.set_param({"nthread": 1})

    @property
    def name(self) -> str:
        return XGBOOST

    @classmethod
    def fit(
        cls,
        features: FloatArray,
        side: FloatArray,
        win: npt.NDArray[np.bool_],
        seed: int,
        rounds: int,
        threads: int,
    ) -> XGBoostModel:
        """Train on (n, F) features, the side (±1) and the outcome; deterministic for a seed."""
        params = {**DEFAULT_PARAMS, "seed": seed, "nthread": threads}
        data = xgb.DMatrix(with_side(features, side), label=win.astype(np.float64))
        return cls(xgb.train(params, data, num_boost_round=rounds))

    def scores(self, batch: Batch) -> Scores:
        return tree_scores(batch, self._booster.inplace_predict)

    def to_bytes(self) -> bytes:
        return bytes(self._booster.save_raw(raw_format="json"))

    @classmethod
    def from_bytes(cls, payload: bytes, n_inputs: int) -> XGBoostModel:
        """Check the JSON's structure, then let XGBoost parse it; any failure is refused."""
        check_xgboost_json(payload, n_inputs)
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(payload))
        except Exception as error:  # XGBoostError, or a decoding error of its message
            raise ModelArtifactError(f"{XGBOOST}: corrupt model file ({error!r})") from error
        if booster.num_features() != n_inputs:
            raise ModelArtifactError(
                f"{XGBOOST}: model expects {booster.num_features()} inputs, not {n_inputs}"
            )
        return cls(booster)
