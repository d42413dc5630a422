"""The median as `np.nanmedian` gives it, without importing `numpy.ma`.

NumPy's median (and quantile, percentile) imports `numpy.ma` for its NaN check, ≈ 10–25 ms of
a backtest's start, for the few medians the command takes (a recording's tick check and
funding interval, the report's median holding time).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def median(values: ArrayLike) -> float:
    """The median of `values` but their NaNs; NaN when none is left."""
    numbers = np.asarray(values, dtype=np.float64)
    numbers = numbers[~np.isnan(numbers)]
    size = len(numbers)
    if not size:
        return math.nan
    half = size // 2
    if size % 2:
        return float(np.partition(numbers, half)[half])
    low, high = np.partition(numbers, (half - 1, half))[half - 1 : half + 1]
    return float((low + high) / 2)
