"""Correlations of recent returns read a missing (NaN) return as 0, as numpy's nan_to_num
does, and touch finite returns not at all."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain.correlation import correlation_matrix

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    holes=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 39), st.just(np.nan)),
        max_size=4,
    ),
)
def test_a_missing_return_counts_as_nan_to_num_makes_it(
    seed: int, holes: list[tuple[int, int, float]]
) -> None:
    rows = np.random.default_rng(seed).normal(0.0, 0.002, (3, 40))
    for row, column, value in holes:
        rows[row, column] = value
    raw = correlation_matrix({s: rows[i] for i, s in enumerate(SYMBOLS)}, lookback=32)
    read = correlation_matrix({s: np.nan_to_num(rows[i]) for i, s in enumerate(SYMBOLS)}, None, 32)
    assert raw.symbols == read.symbols == SYMBOLS
    assert np.array_equal(raw.values, read.values)
    assert np.isfinite(raw.values).all()
