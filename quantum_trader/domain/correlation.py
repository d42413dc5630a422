"""Correlation of recent returns: per-symbol return arrays (newest last) → matrix, mean.

Arrays are aligned on their newest element and cut to the shortest (and to `lookback`). A
symbol whose returns do not vary correlates 0 with everything (and 1 with itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field

import numpy as np

from quantum_trader.domain.market import FloatArray
from quantum_trader.record import record

MIN_SAMPLES = 3


@record
class CorrelationMatrix:
    """Pairwise correlations; `symbols[i]` names row and column i."""

    symbols: tuple[str, ...]
    values: FloatArray
    # The governor reads the mean every cycle; a matrix is built once per refresh period.
    _mean: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_mean", self._off_diagonal_mean())

    def get(self, a: str, b: str) -> float:
        """Correlation of two symbols; 0.0 when either is unknown."""
        try:
            i, j = self.symbols.index(a), self.symbols.index(b)
        except ValueError:
            return 0.0
        return float(self.values[i, j])

    def mean_pairwise(self) -> float:
        """Mean of the off-diagonal correlations (0.0 with fewer than two symbols)."""
        return self._mean

    def _off_diagonal_mean(self) -> float:
        n = len(self.symbols)
        if n < 2:
            return 0.0
        # Symmetric with a unit diagonal: the off-diagonal mean without indexing arrays.
        return float((self.values.sum() - n) / (n * (n - 1)))

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            a: {b: round(float(self.values[i, j]), 6) for j, b in enumerate(self.symbols)}
            for i, a in enumerate(self.symbols)
        }


def returns_window(returns: FloatArray, last: int, lookback: int) -> FloatArray:
    """The `lookback` returns up to row `last` (row 0 has none: no bar before it)."""
    return returns[max(1, last + 1 - lookback) : last + 1]


def correlation_matrix(
    returns: Mapping[str, FloatArray], symbols: Sequence[str] | None = None, lookback: int = 288
) -> CorrelationMatrix:
    """Correlations of the last `lookback` returns of `symbols` (default: all with data).

    Symbols without at least MIN_SAMPLES finite returns are left out.
    """
    names = [s for s in (symbols if symbols is not None else returns) if s in returns]
    names = list(dict.fromkeys(n for n in names if returns[n].shape[0] >= MIN_SAMPLES))
    if not names:
        return CorrelationMatrix((), np.empty((0, 0)))
    length = min(lookback, *(returns[n].shape[0] for n in names))
    rows = np.vstack([returns[n][-length:] for n in names])
    if not np.isfinite(rows).all():  # nan_to_num leaves finite values as they are, slowly
        rows = np.nan_to_num(rows)
    centred = rows - rows.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred * centred).sum(axis=1))
    safe = np.where(norms > 0, norms, 1.0)
    unit = centred / safe[:, None]
    # einsum, not BLAS: for matrices this small, BLAS threads only add contention.
    values = np.clip(np.einsum("ik,jk->ij", unit, unit), -1.0, 1.0)
    np.fill_diagonal(values, 1.0)
    return CorrelationMatrix(tuple(names), values)
