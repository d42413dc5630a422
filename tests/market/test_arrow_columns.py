"""A recorded column read from Arrow's buffers (arrow_columns.column_values) is what pyarrow's
own `to_numpy(zero_copy_only=False)` gives, which imports pandas: the same values, NaN where
null, for columns of several chunks, sliced (a chunk's offset) or empty, and the other types
by pyarrow itself. (pyarrow 26 gives a combined column offset 0 even when sliced; the
offset is read all the same, as the Arrow format allows one.)"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.market.arrow_columns import column_values, epoch_ms

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


UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}  # per second


@st.composite
def timestamp_columns(draw: st.DrawFn) -> pa.ChunkedArray:
    """Instants around now and far off, whole milliseconds or not, in any unit and zone."""
    unit = draw(st.sampled_from(list(UNITS)))
    whole_ms = draw(st.booleans())
    per_ms = max(1, UNITS[unit] // 1_000)

    def instant(value: int) -> int:
        return value * per_ms if whole_ms else value

    far = 2**62 // (per_ms if whole_ms else 1)
    values = st.integers(-far, far).map(instant) | st.integers(0, 2 * 10**12).map(instant)
    chunks = draw(st.lists(st.lists(values, max_size=10), max_size=3))
    kind = pa.timestamp(unit, tz=draw(st.sampled_from([None, "UTC", "Europe/Oslo"])))
    return pa.chunked_array([pa.array(c, type=kind) for c in chunks], type=kind)


@given(timestamp_columns())
def test_instants_read_from_the_buffer_are_arrows_safe_cast_to_milliseconds(
    column: pa.ChunkedArray,
) -> None:
    """The same milliseconds where Arrow's cast gives them; an error where it refuses."""
    try:
        cast = column.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    except pa.ArrowInvalid:
        with pytest.raises(ValueError):
            epoch_ms(column)
        return
    assert epoch_ms(column).tolist() == cast.to_pylist()


def test_a_null_instant_is_refused() -> None:
    column = pa.chunked_array([pa.array([0, None], type=pa.timestamp("ms"))])
    with pytest.raises(ValueError, match="empty"):
        epoch_ms(column)


@pytest.mark.parametrize(
    ("unit", "stored", "ms"),
    [
        ("s", [1_700_000_000, -86_400], [1_700_000_000_000, -86_400_000]),
        ("ms", [1_700_000_000_123, -1], [1_700_000_000_123, -1]),
        ("us", [1_700_000_000_123_000, -1_000], [1_700_000_000_123, -1]),
        ("ns", [1_700_000_000_123_000_000, -1_000_000], [1_700_000_000_123, -1]),
    ],
)
def test_each_unit_is_read_in_milliseconds(unit: str, stored: list[int], ms: list[int]) -> None:
    column = pa.chunked_array([pa.array(stored, type=pa.timestamp(unit, tz="UTC"))])
    assert epoch_ms(column).tolist() == ms
