"""Properties of the stored representation: exact Decimals, UTC instants, time-ordered text."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import storage_samples as s
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import Fill
from quantum_trader.storage import codec
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.sqlite import SqliteRepository

decimals = st.decimals(allow_nan=False, allow_infinity=False)
offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
    lambda d: timezone(timedelta(minutes=d // timedelta(minutes=1)))
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by contract
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.one_of(st.just(UTC), offsets),
)


@given(quantity=decimals, price=decimals)
def test_decimals_round_trip_exactly(quantity: Decimal, price: Decimal) -> None:
    fill = s.fill(quantity=quantity, price=price)

    decoded = codec.decode_fill(codec.encode_fill(fill))

    assert decoded == fill
    assert (str(decoded.quantity), str(decoded.price)) == (str(quantity), str(price))


@given(moment=moments)
def test_datetimes_round_trip_as_the_same_instant_in_utc(moment: datetime) -> None:
    decoded = codec.decode_time(codec.encode_time(moment))

    assert decoded == moment
    assert decoded.utcoffset() == timedelta(0)


@given(first=moments, second=moments)
def test_stored_time_text_sorts_in_time_order(first: datetime, second: datetime) -> None:
    text_order = codec.encode_time(first) < codec.encode_time(second)

    assert text_order == (first < second)


async def _store_and_read_fills(fills: list[Fill]) -> tuple[list[Fill], list[Fill]]:
    memory = InMemoryRepository()
    await memory.record_fills(fills)
    with tempfile.TemporaryDirectory() as folder:
        repo = await SqliteRepository.open(Path(folder) / "ledger.db")
        try:
            await repo.record_fills(fills)
            return await repo.fills(), await memory.fills()
        finally:
            await repo.close()


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(decimals, moments), min_size=1, max_size=8))
def test_both_repositories_store_the_same_fills(rows: list[tuple[Decimal, datetime]]) -> None:
    fills = [s.fill(f"t{i}", quantity=q, time=t) for i, (q, t) in enumerate(rows)]

    from_sqlite, from_memory = asyncio.run(_store_and_read_fills(fills))

    expected = sorted(fills, key=lambda f: (f.time, f.trade_id))
    assert from_sqlite == from_memory == expected
    assert [str(f.quantity) for f in from_sqlite] == [str(f.quantity) for f in expected]
