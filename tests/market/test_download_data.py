"""download-data: paginated fetch, Feather files that CandleStore reads back identically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from test_exchange_feed_fakes import FIVE_MINUTES_MS, SampleSource

from quantum_trader.clock import ms_from_utc
from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.download import download

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
NOW = datetime(2025, 10, 20, 7, 2, 10, tzinfo=UTC)


async def test_round_trip_through_candle_store(tmp_path: Path) -> None:
    source = SampleSource(ms_from_utc(NOW), max_limit=1000)
    seen: list[tuple[str, int, int]] = []
    written = await download(
        source, [BTC, ETH], "5m", 12, tmp_path, NOW, lambda *args: seen.append(args)
    )
    expected_bars = 12 * 288 - 1  # the window opens at the first bar after now - 12 days
    assert written == {BTC: expected_bars, ETH: expected_bars}
    store = CandleStore(tmp_path)
    for symbol in (BTC, ETH):
        bars = store.load_bars(symbol, "5m")
        original = source.bars(symbol, "5m")
        start = int(np.searchsorted(original.time_ms, bars.time_ms[0]))
        expected = original.slice(start, start + len(bars))
        assert np.array_equal(bars.time_ms, expected.time_ms)
        assert np.array_equal(bars.close, expected.close)
        assert np.array_equal(bars.volume, expected.volume)
        assert int(bars.time_ms[-1]) + FIVE_MINUTES_MS <= ms_from_utc(NOW)  # closed only
        times, rates = store.load_funding(symbol)
        all_times, all_rates = source.store.load_funding(symbol)
        keep = (all_times >= bars.time_ms[0]) & (all_times <= ms_from_utc(NOW))
        assert np.array_equal(times, all_times[keep])
        assert np.array_equal(rates, all_rates[keep])
    assert seen[-1] == (ETH, expected_bars, expected_bars)
    assert len([c for c in source.calls if c[0] == BTC]) == 4  # 1000-bar pages
    assert all(c[3] <= 1500 for c in source.calls)


async def test_a_symbol_without_data_is_an_error(tmp_path: Path) -> None:
    source = SampleSource(ms_from_utc(datetime(2020, 1, 1, tzinfo=UTC)))
    with pytest.raises(MarketDataError, match="no 5m candles"):
        await download(source, [BTC], "5m", 1, tmp_path, datetime(2020, 1, 1, tzinfo=UTC))


async def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    source = SampleSource(ms_from_utc(NOW))
    with pytest.raises(MarketDataError):
        await download(source, [BTC], "3m", 1, tmp_path, NOW)
    with pytest.raises(MarketDataError):
        await download(source, [BTC], "5m", 0, tmp_path, NOW - timedelta(days=1))
