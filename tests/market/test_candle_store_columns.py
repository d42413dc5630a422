"""A recorded column read from Arrow's buffers (candle_store.column_values) is what pyarrow's
own `to_numpy(zero_copy_only=False)` gives, which imports pandas: the same values, NaN where
null, for columns of several chunks, sliced (a chunk's offset) or empty, and the other types
by pyarrow itself. (pyarrow 26 gives a combined column offset 0 even when sliced; the
offset is read all the same, as the Arrow format allows one.)"""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.market.candle_store import column_values

VALUES = {
    pa.float64(): st.floats(allow_nan=True, allow_infinity=True) | st.none(),
    pa.int64(): st.integers(-(2**63), 2**63 - 1) | st.none(),
    pa.float32(): st.floats(width=32) | st.none(),
}


@st.composite
def columns(draw: st.DrawFn) -> pa.ChunkedArray:
    kind = draw(st.sampled_from(list(VALUES)))
    chunks = draw(st.lists(st.lists(VALUES[kind], max_size=20), max_size=4))
    column = pa.chunked_array([pa.array(c, type=kind) for c in chunks], type=kind)
    start = draw(st.integers(0, len(column)))
    return column.slice(start, draw(st.integers(0, len(column) - start)))


@given(columns())
def test_a_column_read_from_its_buffers_is_pyarrows_to_numpy(column: pa.ChunkedArray) -> None:
    expected = column.combine_chunks().to_numpy(zero_copy_only=False)
    got = column_values(column)
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()  # NaN payloads too: nulls are NaN in both
    assert got.flags.writeable  # a copy, not a view of Arrow's memory
