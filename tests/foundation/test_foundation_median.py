"""`median` is `np.nanmedian`'s value without importing `numpy.ma` (quantum_trader/median.py)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from child_env import child_env

from quantum_trader.median import median


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 10, 101, 1000])
def test_the_median_is_numpys_for_odd_and_even_sizes_with_and_without_nans(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.normal(100.0, 30.0, size)
    assert median(values) == float(np.median(values))
    values[rng.random(size) < 0.3] = np.nan
    if not np.isnan(values).all():
        assert median(values) == float(np.nanmedian(values))


def test_integers_are_counted_as_numpy_counts_them_and_nothing_left_is_nan() -> None:
    spans = np.array([28_800_000, 28_800_000, 14_400_000, 28_800_000], dtype=np.int64)
    assert median(spans) == float(np.median(spans)) == 28_800_000.0
    assert median(np.array([3, 4], dtype=np.int64)) == 3.5
    assert math.isnan(median(np.array([np.nan, np.nan])))
    assert math.isnan(median(np.array([], dtype=np.float64)))


def test_taking_a_median_never_imports_numpy_ma() -> None:
    code = (
        "import sys, numpy as np\nfrom quantum_trader.median import median\n"
        "print(median(np.array([1.0, np.nan, 3.0, 2.0])), 'numpy.ma' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2.0", "False"]
