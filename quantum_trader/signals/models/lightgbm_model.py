"""LightGBM classifier: (features, side) → raw P(the trade ends with R > 0 after costs).

Stored as LightGBM's text model. LightGBM's parser trusts the text: an inconsistent tree can
crash the whole process (SIGSEGV), so every tree is checked here first
(model_files.check_lightgbm_text) and a damaged file is refused by name.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from quantum_trader.domain import FloatArray
from quantum_trader.errors import ModelArtifactError
from quantum_trader.signals.models.base import (
    LIGHTGBM,
    Batch,
    Scores,
    tree_scores,
    with_side,
)
from quantum_trader.signals.models.model_files import check_lightgbm_text

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
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
        side: FloatArray,
        win: npt.NDArray[np.bool_],
        seed: int,
        rounds: int,
        threads: int,
    ) -> LightGBMModel:
        """Train on (n, F) features, the side (±1) and the outcome; deterministic for a seed."""
        params = {**DEFAULT_PARAMS, "seed": seed, "num_threads": threads}
        data = lgb.Dataset(with_side(features, side), label=win.astype(np.float64))
        return cls(lgb.train(params, data, num_boost_round=rounds))

    def scores(self, batch: Batch) -> Scores:
        return tree_scores(batch, lambda rows: self._booster.predict(rows, num_threads=1))

    def to_bytes(self) -> bytes:
        return str(self._booster.model_to_string()).encode()

    @classmethod
    def from_bytes(cls, payload: bytes, n_inputs: int) -> LightGBMModel:
        """Check every tree of the text, then let LightGBM parse it; any failure is refused."""
        check_lightgbm_text(payload, n_inputs)
        try:
            booster = lgb.Booster(model_str=payload.decode("utf-8"))
        except Exception as error:  # LightGBMError, ValueError, ...
            raise ModelArtifactError(f"{LIGHTGBM}: corrupt model file ({error!r})") from error
        if booster.num_feature() != n_inputs:
            raise ModelArtifactError(
                f"{LIGHTGBM}: model expects {booster.num_feature()} inputs, not {n_inputs}"
            )
        return cls(booster)
