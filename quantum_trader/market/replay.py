"""Replay feed: the MarketFeed port over recorded candles, for paper runs, demos and tests.

It holds every recorded bar in memory (numpy, ~3 MB for the bundled sample) and answers each
`snapshot(now)` with views of the closed bars up to `now`: nothing is copied per cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import Bars, FloatArray, IntArray, MarketRules, MarketSnapshot
from quantum_trader.errors import ConfigurationError
from quantum_trader.market.candle_store import TIMEFRAME_MS, CandleStore
from quantum_trader.median import median
from quantum_trader.record import record

EIGHT_HOURS_MS = TIMEFRAME_MS["8h"]
# Binance's ticks are ≈ 1e-6–1e-3 of a price (rarely 1e-2 for a coin near its tick): a tick
# above this share of the price is not Binance's rule for that price.
MAX_TICK_SHARE = 0.05


@record
class FundingSeries:
    """Funding settlements of one symbol; `rate_8h` is normalised to an 8-hour interval."""

    time_ms: IntArray
    rate: FloatArray
    rate_8h: FloatArray

    @classmethod
    def from_rates(cls, time_ms: IntArray, rate: FloatArray) -> FundingSeries:
        interval = median(np.diff(time_ms)) if time_ms.size > 1 else EIGHT_HOURS_MS
        return cls(time_ms, rate, rate * (EIGHT_HOURS_MS / interval))

    def rate_8h_at(self, now_ms: int) -> float:
        index = int(np.searchsorted(self.time_ms, now_ms, side="right")) - 1
        return float(self.rate_8h[index]) if index >= 0 else 0.0


class ReplayFeed:
    """Closed bars of recorded data as of any instant within the recording."""

    def __init__(
        self, store: CandleStore, symbols: Sequence[str], timeframe: str, history_bars: int
    ) -> None:
        self._symbols = tuple(symbols)
        self.timeframe = timeframe
        self.history_bars = history_bars
        self.bars: dict[str, Bars] = {s: store.load_bars(s, timeframe) for s in self._symbols}
        self.funding = {s: FundingSeries.from_rates(*store.load_funding(s)) for s in self._symbols}

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    @property
    def start(self) -> datetime:
        """The earliest instant at which every symbol has `history_bars` closed bars."""
        first = max(int(b.time_ms[0]) for b in self.bars.values())
        timeframe_ms = TIMEFRAME_MS[self.timeframe]
        return utc_from_ms(first + self.history_bars * timeframe_ms)

    @property
    def end(self) -> datetime:
        """Close time of the last recorded bar common to every symbol."""
        last = min(int(b.time_ms[-1]) for b in self.bars.values())
        return utc_from_ms(last + TIMEFRAME_MS[self.timeframe])

    @property
    def first_starting(self) -> str:
        """The symbol whose recording begins last: it sets `start`."""
        return max(self.bars, key=lambda symbol: int(self.bars[symbol].time_ms[0]))

    @property
    def first_ending(self) -> str:
        """The symbol whose recording ends first: it sets `end`."""
        return min(self.bars, key=lambda symbol: int(self.bars[symbol].time_ms[-1]))

    def check_ticks(self, rules: Mapping[str, MarketRules]) -> None:
        """ConfigurationError (exit 2) for each symbol whose tick size is more than
        `MAX_TICK_SHARE` of its median recorded close: every fill would move by a sizeable
        share of the price, so the rules do not belong to these candles (another symbol's,
        or another price scale's)."""
        problems = []
        for symbol, bars in self.bars.items():
            symbol_rules = rules.get(symbol)
            price = median(bars.close) if len(bars) else 0.0
            if symbol_rules is None or price <= 0:
                continue
            tick = symbol_rules.tick_size
            if float(tick) <= MAX_TICK_SHARE * price:
                continue
            problems.append(
                f"market rules: {symbol}'s tick size {tick} is "
                f"{float(tick) / price:.0%} of its median recorded close ({price:.6g}): "
                "the rules do not fit these candles (another symbol's, or another price "
                "scale's); download the data and the rules again, or import Binance's own "
                "answer with `quantum-trader import-data --exchange-info FILE`"
            )
        if problems:
            raise ConfigurationError(problems)

    def too_short(self) -> str:
        """Why nothing can be replayed when a symbol's recording begins so late that its
        warm-up ends after the recording does (`start` >= `end`): the symbol and what to do."""
        late = self.first_starting
        begins = utc_from_ms(int(self.bars[late].time_ms[0]))
        return (
            f"nothing to replay: {late}'s candles begin at {begins:%Y-%m-%d %H:%M}, so after "
            f"{self.history_bars} bars of warm-up the replay would start at "
            f"{self.start:%Y-%m-%d %H:%M}, after the recorded data ends "
            f"({self.end:%Y-%m-%d %H:%M}); leave {late} out of the symbols (--symbols or "
            "market.symbols) or record more of it"
        )

    def check_covers(self, moment: datetime) -> None:
        """ConfigurationError unless the replay can start at `moment` (`market.replay_start`)."""
        if self.start >= self.end:
            raise ConfigurationError([self.too_short()])
        if not self.start <= moment <= self.end:
            raise ConfigurationError(
                [
                    f"market.replay_start: {moment.isoformat()} is outside the recording "
                    f"({self.start.isoformat()} .. {self.end.isoformat()}); choose an instant "
                    "inside it, or leave it unset to start at the recording's beginning"
                ]
            )

    async def snapshot(self, now: datetime) -> MarketSnapshot:
        return self.snapshot_at(ms_from_utc(now))

    def snapshot_at(self, now_ms: int) -> MarketSnapshot:
        window: dict[str, Bars] = {}
        for symbol, bars in self.bars.items():
            stop = bars.closed_before(now_ms)
            if stop > 0:
                window[symbol] = bars.slice(max(0, stop - self.history_bars), stop)
        funding = {s: f.rate_8h_at(now_ms) for s, f in self.funding.items()}
        return MarketSnapshot(now_ms, window, funding)
