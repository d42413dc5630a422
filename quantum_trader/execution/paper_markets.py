"""Recorded prices the paper exchange trades on, and the bundled sample's market rules.

A `PriceTape` answers "what is the price now" from one symbol's execution bars (5m): the open of
the bar that contains `now`, else the last close. A fill or a mark price asks
`tradeable_price_at`, which refuses a price more than one missing bar old (a gap in the data:
the symbol is untradeable until it resumes, as on an exchange that halts a market); valuation
and funding use the last known price. It precomputes ATR(14)/close (restarted after a gap) so a
fill can ask for the volatility of the last closed bar in O(log n).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from decimal import Decimal

import numpy as np

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import Bars, FloatArray, MarketRules
from quantum_trader.errors import MarketDataError
from quantum_trader.market import gaps
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.rules import newest_rules_file, read_rules
from quantum_trader.market.validation import is_stale
from quantum_trader.ta import talib

ATR_PERIOD = 14
# Up to this many new bars, a Python loop over numpy scalars beats building boolean masks.
SCALAR_SCAN_MAX_BARS = 16


def default_market_rules(symbols: Iterable[str]) -> dict[str, MarketRules]:
    """Return the bundled sample's Binance USD-M rules (its exchange-info file) for `symbols`.

    Raises MarketDataError for a symbol the sample has no rules for.
    """
    path = newest_rules_file(bundled_sample_dir())
    listings = read_rules(path).listings if path is not None else {}
    unknown = [symbol for symbol in symbols if symbol not in listings]
    if unknown:
        raise MarketDataError(f"unknown symbols {unknown}: no market rules in the bundled sample")
    return {symbol: listings[symbol].rules for symbol in symbols}


def to_decimal(value: float) -> Decimal:
    """Convert a recorded float price exactly as printed (no binary-fraction noise)."""
    return Decimal(repr(float(value)))


class PriceTape:
    """One symbol's execution bars and funding settlements, read-only.

    Lookups are O(1) on a gap-free bar grid (the usual case) and O(log n) otherwise: the
    backtest asks them for every symbol at every 5-minute step.
    """

    __slots__ = ("_count", "_first_ms", "_funding_ms", "_regular", "atr_pct", "bars", "funding")

    def __init__(self, bars: Bars, funding: FundingSeries | None) -> None:
        if len(bars) == 0:
            raise MarketDataError(f"{bars.symbol}: no recorded bars")
        self.bars = bars
        self.funding = funding
        self.atr_pct = _atr_pct(bars)
        self._count = len(bars)
        self._first_ms = int(bars.time_ms[0])
        self._regular = bool(np.all(np.diff(bars.time_ms) == bars.timeframe_ms))
        self._funding_ms: list[int] = [] if funding is None else funding.time_ms.tolist()

    @property
    def symbol(self) -> str:
        return self.bars.symbol

    def closed_count(self, now_ms: int) -> int:
        """Number of bars closed at `now_ms` (close time = open + timeframe <= now)."""
        if not self._regular:
            return self.bars.closed_before(now_ms)
        count = (now_ms - self._first_ms) // self.bars.timeframe_ms
        return 0 if count < 0 else (count if count < self._count else self._count)

    def span(self, last_ms: int, now_ms: int) -> tuple[int, int, int, int]:
        """Unprocessed work for (last_ms, now_ms]: the bars [from, to) that closed in it and
        the funding settlements [from, to) that fell due in it."""
        return (
            self.closed_count(last_ms),
            self.closed_count(now_ms),
            bisect_right(self._funding_ms, last_ms),
            bisect_right(self._funding_ms, now_ms),
        )

    def price_at(self, now_ms: int) -> float:
        """Return the open of the bar containing `now_ms`, else the last closed bar's close.

        Raises MarketDataError before the recording starts.
        """
        bars = self.bars
        closed = self.closed_count(now_ms)
        # .item(): the Python float without the NumPy scalar in between (every step).
        if closed < self._count and self._opened(closed, now_ms):
            return bars.open.item(closed)
        if closed == 0:
            raise MarketDataError(f"{self.symbol}: no recorded price at {now_ms} ms")
        return bars.close.item(closed - 1)

    def tradeable_price_at(self, now_ms: int) -> float:
        """The price a market order fills at now; MarketDataError inside a gap in the data."""
        closed = self.closed_count(now_ms)
        bars = self.bars
        if closed < self._count and self._opened(closed, now_ms):
            return bars.open.item(closed)
        if closed > 0:
            last_close_ms = int(bars.time_ms[closed - 1]) + bars.timeframe_ms
            if is_stale(last_close_ms, now_ms, bars.timeframe_ms):
                raise MarketDataError(
                    f"{self.symbol}: no price at {utc_from_ms(now_ms).isoformat()}: no data "
                    f"since {utc_from_ms(last_close_ms).isoformat()} (untradeable until it resumes)"
                )
        return self.price_at(now_ms)

    def _opened(self, closed: int, now_ms: int) -> bool:
        """Whether the bar after the `closed` ones (`closed_count(now_ms)`, one is left) has
        opened by `now_ms`. On a regular grid it opens at first + closed × timeframe, which
        is ≤ `now_ms` whenever the first bar has opened: no NumPy scalar to read."""
        if self._regular:
            return now_ms >= self._first_ms
        return bool(self.bars.time_ms[closed] <= now_ms)

    def atr_pct_at(self, now_ms: int) -> float:
        """ATR(14)/close of the last closed bar; 0 while the indicator is warming up."""
        closed = self.closed_count(now_ms)
        return float(self.atr_pct[closed - 1]) if closed > 0 else 0.0

    def funding_index(self, after_ms: int) -> int:
        """Index of the first funding settlement strictly after `after_ms`."""
        return bisect_right(self._funding_ms, after_ms)

    def first_reach(self, start: int, stop: int, low_level: float, high_level: float) -> int | None:
        """First bar in [start, stop) whose low <= `low_level` or high >= `high_level`.

        Pass -inf / +inf for a side with nothing to watch.
        """
        low, high = self.bars.low, self.bars.high
        if stop - start == 1:
            return start if low[start] <= low_level or high[start] >= high_level else None
        if stop - start <= SCALAR_SCAN_MAX_BARS:
            for index in range(start, stop):
                if low[index] <= low_level or high[index] >= high_level:
                    return index
            return None
        mask = (low[start:stop] <= low_level) | (high[start:stop] >= high_level)
        first = int(mask.argmax())
        return start + first if mask[first] else None


def _atr_pct(bars: Bars) -> FloatArray:
    """ATR(14)/close at each bar, restarted after each gap (market/gaps.py) as at the tape's
    start: across one the first true range would span the jump, and the fills after a
    maintenance window would pay that as slippage for hours. While it warms up again after a
    gap it holds the value of the last bar before it; before the first, 0."""
    atr_pct = np.zeros(len(bars), dtype=np.float64)
    before = 0.0
    for start, stop in gaps.stretches(bars.time_ms):
        part = np.full(stop - start, np.nan)
        if stop - start > ATR_PERIOD:
            high, low, close = (c[start:stop] for c in (bars.high, bars.low, bars.close))
            part = np.asarray(talib.ATR(high, low, close, timeperiod=ATR_PERIOD)) / close
        atr_pct[start:stop] = np.where(np.isnan(part), before, part)
        before = float(atr_pct[stop - 1]) if stop > start else before
    return atr_pct
