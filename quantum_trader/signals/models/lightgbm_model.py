"""LightGBM classifier: features → P(SELL, HOLD, BUY). Stored as LightGBM's text model."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from quantum_trader.domain import FloatArray
from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.models.base import (
    LIGHTGBM,
    N_CLASSES,
    Batch,
    Votes,
    votes_from_probabilities,
)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "multiclass",
    "num_class": N_CLASSES,
    "num_leaves": 15,
    "learning_rate": 0.05,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "min_data_in_leaf": 50,
    "lambda_l2": 5.0,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}


class LightGBMModel:
    """A trained booster; predicts single-threaded."""

    def __init__(self, booster: lgb.Booster) -> None:
        self._booster = booster

    @property
    def name(self) -> str:
        return LIGHTGBM

    @classmethod
    def fit(
        cls,
        features: FloatArray,
        classes: npt.NDArray[np.int64],
        seed: int,
        rounds: int = 250,
        threads: int = 2,
    ) -> LightGBMModel:
        """Train on (n, F) features and class indices 0/1/2; deterministic for a seed."""
        params = {**DEFAULT_PARAMS, "seed": seed, "num_threads": threads}
        data = lgb.Dataset(features, label=classes, free_raw_data=True)
        return cls(lgb.train(params, data, num_boost_round=rounds))

    def probabilities(self, features: FloatArray) -> FloatArray:
        if features.shape[0] == 0:
            return np.zeros((0, N_CLASSES))
        out = self._booster.predict(features, num_threads=1)
        return np.asarray(out, dtype=np.float64).reshape(-1, N_CLASSES)

    def predict(self, batch: Batch) -> Votes:
        ok = batch.features_ok
        return votes_from_probabilities(self.probabilities(batch.features[ok]), ok)

    def to_bytes(self) -> bytes:
        return str(self._booster.model_to_string()).encode()

    @classmethod
    def from_bytes(cls, payload: bytes, n_features: int) -> LightGBMModel:
        """Parse a text model; a parse failure or a feature-count mismatch is an error.

        LightGBM aborts the whole process on some malformed models (a truncated tree), so the
        text's structure is checked before the library sees it.
        """
        _check_structure(payload)
        try:
            booster = lgb.Booster(model_str=payload.decode("utf-8"))
        except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as error:
            raise ModelArtifactError(f"{LIGHTGBM}: corrupt model file ({error})") from error
        if booster.num_feature() != n_features:
            raise ModelArtifactError(
                f"{LIGHTGBM}: model expects {booster.num_feature()} features, not {n_features}"
            )
        return cls(booster)


def _check_structure(payload: bytes) -> None:
    """Reject text that is not a complete LightGBM model: header, every tree, the end marker."""
    header_ok = payload.startswith(b"tree\n")
    trees = payload.count(b"\nTree=")
    sizes_line = next(
        (line for line in payload.split(b"\n", 64) if line.startswith(b"tree_sizes=")), b""
    )
    declared = len(sizes_line.removeprefix(b"tree_sizes=").split())
    complete = b"\nend of trees\n" in payload
    if not (header_ok and complete and trees > 0 and trees == declared):
        raise ModelArtifactError(f"{LIGHTGBM}: corrupt model file (incomplete model text)")
