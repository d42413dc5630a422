"""An in-memory OhlcvSource over the shipped sample, behaving like the exchange at `now_ms`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quantum_trader.domain import Bars, FloatArray, IntArray
from quantum_trader.market.candle_store import TIMEFRAME_MS, CandleStore, bundled_sample_dir


@dataclass
class SampleSource:
    """Answers like Binance at `now_ms`: bars opening up to now (the last one still forming),
    at most `limit` per call; records every call."""

    now_ms: int
    max_limit: int = 1500
    calls: list[tuple[str, str, int, int]] = field(default_factory=list)
    funding_calls: list[tuple[str, int]] = field(default_factory=list)
    overrides: dict[str, Bars] = field(default_factory=dict)
    ignores_start: bool = False  # answer from the first bar whatever startTime says

    def __post_init__(self) -> None:
        self.store = CandleStore(bundled_sample_dir())

    def bars(self, symbol: str, timeframe: str) -> Bars:
        return self.overrides.get(symbol) or self.store.load_bars(symbol, timeframe)

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> Bars:
        self.calls.append((symbol, timeframe, since_ms, limit))
        bars = self.bars(symbol, timeframe)
        start = 0 if self.ignores_start else int(np.searchsorted(bars.time_ms, since_ms, "left"))
        stop = int(np.searchsorted(bars.time_ms, self.now_ms, side="right"))
        return bars.slice(start, min(stop, start + min(limit, self.max_limit)))

    async def fetch_funding_rates(self, symbol: str, since_ms: int) -> tuple[IntArray, FloatArray]:
        self.funding_calls.append((symbol, since_ms))
        times, rates = self.store.load_funding(symbol)
        keep = (times >= since_ms) & (times <= self.now_ms)
        return times[keep][:1000], rates[keep][:1000]


FIVE_MINUTES_MS = TIMEFRAME_MS["5m"]


def writable(bars: Bars) -> Bars:
    """A copy whose arrays can be edited (loaded arrays are read-only views)."""
    return Bars(
        bars.symbol,
        bars.timeframe_ms,
        bars.time_ms.copy(),
        bars.open.copy(),
        bars.high.copy(),
        bars.low.copy(),
        bars.close.copy(),
        bars.volume.copy(),
    )
