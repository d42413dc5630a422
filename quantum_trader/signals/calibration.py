"""Calibration: a model's raw score → P(R > 0 after costs) and expected R, per side.

Fitted on out-of-fold predictions only (scores of rows the model never trained on) with
scikit-learn's IsotonicRegression: monotone, no parametric shape assumed. To keep the tails
from following a handful of trades, scores are first grouped into at most `MAX_BINS` quantile
bins (each bin's mean score and mean outcome, weighted by its size), and the isotonic fit runs
on those. Applying a calibration is linear interpolation between the fitted points, clipped at
the ends (what IsotonicRegression.predict does with out_of_bounds="clip"), so a calibration is
stored as plain numbers in the model set's manifest and needs no pickle.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from quantum_trader.domain import FloatArray
from quantum_trader.record import record
from quantum_trader.signals.models.base import BoolArray

MAX_BINS = 50
MIN_ROWS = 20


@record
class Curve:
    """A monotone non-decreasing piecewise-linear map, clipped outside [x[0], x[-1]]."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, values: FloatArray) -> FloatArray:
        return np.interp(values, self.x, self.y)

    @classmethod
    def fit(cls, scores: FloatArray, targets: FloatArray, bins: int = MAX_BINS) -> Curve:
        """Isotonic regression of `targets` on `scores`, on quantile bins of the scores."""
        if scores.shape[0] < MIN_ROWS:
            constant = float(np.mean(targets)) if targets.size else 0.0
            return cls((0.0, 1.0), (constant, constant))
        order = np.argsort(scores, kind="stable")
        groups = np.array_split(order, min(bins, scores.shape[0]))
        x = np.array([scores[g].mean() for g in groups])
        y = np.array([targets[g].mean() for g in groups])
        weight = np.array([g.shape[0] for g in groups], dtype=np.float64)
        # Imported when fitting only: every backtest and daemon imports this module, and
        # scikit-learn costs them ~0.2 s and ~80 MB of RSS for a fit they never make.
        from sklearn.isotonic import IsotonicRegression

        fitted = IsotonicRegression(out_of_bounds="clip").fit(x, y, sample_weight=weight)
        xs = np.asarray(fitted.X_thresholds_, dtype=np.float64)
        ys = np.asarray(fitted.y_thresholds_, dtype=np.float64)
        if xs.shape[0] == 1:
            return cls((float(xs[0]), float(xs[0]) + 1.0), (float(ys[0]), float(ys[0])))
        return cls(tuple(xs.tolist()), tuple(ys.tolist()))

    def to_json(self) -> dict[str, list[float]]:
        return {"x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Curve:
        x = tuple(float(v) for v in data["x"])
        y = tuple(float(v) for v in data["y"])
        if len(x) < 2 or len(x) != len(y) or not all(np.isfinite([*x, *y])):
            raise ValueError("a calibration curve needs ≥ 2 finite points")
        if any(b < a for a, b in itertools.pairwise(x)) or any(
            b < a for a, b in itertools.pairwise(y)
        ):
            raise ValueError("a calibration curve must be non-decreasing")
        return cls(x, y)


@record
class Calibration:
    """Per side (0 long, 1 short): score → P(win), score → expected R after costs."""

    probability: tuple[Curve, Curve]
    expected_r: tuple[Curve, Curve]

    def apply(self, scores: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(n, 2) scores → ((n, 2) probabilities, (n, 2) expected R)."""
        p = np.column_stack([self.probability[s](scores[:, s]) for s in (0, 1)])
        r = np.column_stack([self.expected_r[s](scores[:, s]) for s in (0, 1)])
        return p, r

    @classmethod
    def fit(cls, scores: FloatArray, outcome_r: FloatArray, rows: BoolArray) -> Calibration:
        """Fit on out-of-fold `scores` (n, 2) against the outcomes (n, 2) of `rows`."""
        probability, expected = [], []
        for side in (0, 1):
            known = rows & np.isfinite(outcome_r[:, side])
            s, r = scores[known, side], outcome_r[known, side]
            probability.append(Curve.fit(s, (r > 0).astype(np.float64)))
            expected.append(Curve.fit(s, r))
        return cls((probability[0], probability[1]), (expected[0], expected[1]))

    def to_json(self) -> dict[str, Any]:
        return {
            "probability": [c.to_json() for c in self.probability],
            "expected_r": [c.to_json() for c in self.expected_r],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        p = [Curve.from_json(c) for c in data["probability"]]
        r = [Curve.from_json(c) for c in data["expected_r"]]
        if len(p) != 2 or len(r) != 2:
            raise ValueError("a calibration has a long and a short side")
        return cls((p[0], p[1]), (r[0], r[1]))
