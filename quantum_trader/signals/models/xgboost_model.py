"""XGBoost classifier: features → P(SELL, HOLD, BUY). Stored as UBJSON (no code, no pickle)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from quantum_trader.domain import FloatArray
from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.models.base import (
    N_CLASSES,
    XGBOOST,
    Batch,
    Votes,
    votes_from_probabilities,
)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "multi:softprob",
    "num_class": N_CLASSES,
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20.0,
    "lambda": 5.0,
    "tree_method": "hist",
    "eval_metric": "mlogloss",
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
        classes: npt.NDArray[np.int64],
        seed: int,
        rounds: int = 250,
        threads: int = 2,
    ) -> XGBoostModel:
        """Train on (n, F) features and class indices 0/1/2; deterministic for a seed."""
        params = {**DEFAULT_PARAMS, "seed": seed, "nthread": threads}
        data = xgb.DMatrix(features, label=classes)
        return cls(xgb.train(params, data, num_boost_round=rounds))

    def probabilities(self, features: FloatArray) -> FloatArray:
        if features.shape[0] == 0:
            return np.zeros((0, N_CLASSES))
        out = self._booster.inplace_predict(features)
        return np.asarray(out, dtype=np.float64).reshape(-1, N_CLASSES)

    def predict(self, batch: Batch) -> Votes:
        ok = batch.features_ok
        return votes_from_probabilities(self.probabilities(batch.features[ok]), ok)

    def to_bytes(self) -> bytes:
        return bytes(self._booster.save_raw(raw_format="ubj"))

    @classmethod
    def from_bytes(cls, payload: bytes, n_features: int) -> XGBoostModel:
        """Parse a UBJSON booster; a parse failure or a feature-count mismatch is an error."""
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(payload))
        except xgb.core.XGBoostError as error:
            raise ModelArtifactError(f"{XGBOOST}: corrupt model file ({error})") from error
        if booster.num_features() != n_features:
            raise ModelArtifactError(
                f"{XGBOOST}: model expects {booster.num_features()} features, not {n_features}"
            )
        return cls(booster)
