"""download-data: closed candles and funding rates from the exchange into Feather files.

The files use freqtrade's layout (`BTC_USDT_USDT-5m-futures.feather`,
`BTC_USDT_USDT-1h-funding_rate.feather`; funding rate in `open`), exactly what
market/candle_store.CandleStore reads. Files are written whole and renamed into place, so a
reader never sees half a file; file I/O runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import Bars, FloatArray, IntArray
from quantum_trader.errors import MarketDataError
from quantum_trader.market.candle_store import TIMEFRAME_MS, CandleStore
from quantum_trader.market.exchange_feed import (
    MAX_BARS_PER_REQUEST,
    OhlcvSource,
    concat,
    validate_bars,
)
from quantum_trader.market.validation import FILE_ADVICE

Progress = Callable[[str, int, int], None]


async def download(
    source: OhlcvSource,
    symbols: Sequence[str],
    timeframe: str,
    days: float,
    out_dir: Path,
    now: datetime,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Write the last `days` of closed `timeframe` bars and funding of each symbol to `out_dir`.

    `progress(symbol, bars_done, bars_expected)` is called after every page. Returns the bar
    count written per symbol. Raises MarketDataError when a symbol has no data or bad data.
    """
    if timeframe not in TIMEFRAME_MS or days <= 0:
        raise MarketDataError(f"cannot download {days} days of {timeframe!r} candles")
    step = TIMEFRAME_MS[timeframe]
    now_ms = ms_from_utc(now)
    start_ms = -(-ms_from_utc(now - timedelta(days=days)) // step) * step
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    store = CandleStore(out_dir)
    written = {}
    for symbol in symbols:
        bars = await _closed_bars(source, symbol, timeframe, start_ms, now_ms, progress)
        validate_bars(bars, FILE_ADVICE)  # refused: download again
        await asyncio.to_thread(
            write_feather, store.candle_path(symbol, timeframe), bars.time_ms, _columns(bars)
        )
        times, rates = await _funding(source, symbol, start_ms, now_ms)
        zeros = np.zeros_like(rates)
        funding_columns = [rates, zeros, zeros, zeros, zeros]
        await asyncio.to_thread(write_feather, store.funding_path(symbol), times, funding_columns)
        written[symbol] = len(bars)
    return written


async def _closed_bars(
    source: OhlcvSource,
    symbol: str,
    timeframe: str,
    start_ms: int,
    now_ms: int,
    progress: Progress | None,
) -> Bars:
    step = TIMEFRAME_MS[timeframe]
    newest = (now_ms // step) * step - step
    expected = max(0, (newest - start_ms) // step + 1)
    collected: Bars | None = None
    since = start_ms
    while since <= newest:
        page = await source.fetch_ohlcv(symbol, timeframe, since, MAX_BARS_PER_REQUEST)
        page = page.slice(0, page.closed_before(now_ms))
        if len(page) == 0:
            break
        collected = page if collected is None else concat(collected, page)
        since = int(page.time_ms[-1]) + step
        if progress is not None:
            progress(symbol, len(collected), expected)
    if collected is None:
        raise MarketDataError(f"{symbol}: the exchange returned no {timeframe} candles")
    return collected


async def _funding(
    source: OhlcvSource, symbol: str, start_ms: int, now_ms: int
) -> tuple[IntArray, FloatArray]:
    times: list[IntArray] = []
    rates: list[FloatArray] = []
    since = start_ms
    while since <= now_ms:
        page_times, page_rates = await source.fetch_funding_rates(symbol, since)
        keep = page_times <= now_ms
        if not keep.any():
            break
        times.append(page_times[keep])
        rates.append(page_rates[keep])
        since = int(page_times[keep][-1]) + 1
    if not times:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    return np.concatenate(times), np.concatenate(rates)


def _columns(bars: Bars) -> list[FloatArray]:
    return [bars.open, bars.high, bars.low, bars.close, bars.volume]


def write_feather(path: Path, time_ms: IntArray, columns: list[FloatArray]) -> None:
    dates = pa.array(time_ms * 1_000_000, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    names = ["date", "open", "high", "low", "close", "volume"]
    table = pa.table([dates, *(pa.array(c, type=pa.float64()) for c in columns)], names=names)
    partial = path.with_name(path.name + ".partial")
    feather.write_feather(table, partial)
    partial.replace(path)
