"""Exchange feed: the MarketFeed port over live candles, refreshed incrementally.

Per symbol it keeps a trailing window of CLOSED bars (the exchange's still-forming last candle
is dropped) and asks the source only for bars that can have closed since the last refresh: with
5m bars and a 30 s cycle, nine cycles in ten send no candle request at all. Funding rates are
refreshed at most once per `funding_refresh_s` and kept over the bars' window and the longest
settlement interval before it (at least a week): the signal source's funding feature reads the
one in force at every bar it sees, as training read the recorded ones. Every merged window is
validated like recorded data (market.validation). A symbol whose window is refused is left out
of the snapshot — no price, no signal: untradeable — and fetched afresh next cycle; the other
symbols go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import Bars, FloatArray, IntArray, MarketSnapshot
from quantum_trader.errors import MarketDataError
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import TIMEFRAME_MS, log_report
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.validation import (
    EXCHANGE_ADVICE,
    MAX_FUNDING_RATE,
    Advice,
    Gap,
    check_candles,
)

MAX_BARS_PER_REQUEST = 1500
FUNDING_HISTORY_MS = 7 * 24 * 3_600_000
LONGEST_FUNDING_INTERVAL_MS = 8 * 3_600_000
log = get_logger("market")


class OhlcvSource(Protocol):
    """Where candles and funding come from (CcxtExchange satisfies it)."""

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> Bars:
        """Up to `limit` bars opening at or after `since_ms`, oldest first; the last one may
        still be forming."""
        ...

    async def fetch_funding_rates(self, symbol: str, since_ms: int) -> tuple[IntArray, FloatArray]:
        """Funding settlement times (ms) and rates from `since_ms`, oldest first (a page:
        Binance answers 1,000 at most)."""
        ...


def validate_bars(
    bars: Bars, advice: Advice = EXCHANGE_ADVICE, said_gaps: set[Gap] | None = None
) -> Bars:
    """The bars after market.validation: repaired (spikes removed, logged) or refused with a
    MarketDataError naming the symbol and row, and `advice`. `said_gaps`: the gaps said
    already for this window (candle_store.log_report)."""
    columns = {
        "open": bars.open,
        "high": bars.high,
        "low": bars.low,
        "close": bars.close,
        "volume": bars.volume,
    }
    time_ms, checked, report = check_candles(
        bars.symbol, bars.time_ms, columns, bars.timeframe_ms, advice
    )
    log_report(bars.symbol, report, said_gaps)
    if not report.repairs:
        return bars
    return Bars(
        bars.symbol,
        bars.timeframe_ms,
        time_ms,
        checked["open"],
        checked["high"],
        checked["low"],
        checked["close"],
        checked["volume"],
    )


def concat(head: Bars, tail: Bars) -> Bars:
    """`head` followed by `tail` (same symbol and timeframe)."""
    return Bars(
        head.symbol,
        head.timeframe_ms,
        np.concatenate([head.time_ms, tail.time_ms]),
        np.concatenate([head.open, tail.open]),
        np.concatenate([head.high, tail.high]),
        np.concatenate([head.low, tail.low]),
        np.concatenate([head.close, tail.close]),
        np.concatenate([head.volume, tail.volume]),
    )


class ExchangeFeed:
    """Closed bars and funding rates of the universe, fetched from an OhlcvSource."""

    def __init__(
        self,
        source: OhlcvSource,
        symbols: Sequence[str],
        timeframe: str,
        history_bars: int,
        funding_refresh_s: float = 3600.0,
    ) -> None:
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(f"unsupported timeframe {timeframe!r}")
        self._source = source
        self._symbols = tuple(symbols)
        self.timeframe = timeframe
        self.timeframe_ms = TIMEFRAME_MS[timeframe]
        self.history_bars = history_bars
        self._funding_refresh_ms = round(funding_refresh_s * 1000)
        bars_span_ms = history_bars * self.timeframe_ms + LONGEST_FUNDING_INTERVAL_MS
        self._funding_window_ms = max(FUNDING_HISTORY_MS, bars_span_ms)
        self._bars: dict[str, Bars] = {}
        self._funding: dict[str, FundingSeries] = {}
        self._funding_fetched_ms: int | None = None
        self.rejected: dict[str, str] = {}  # symbol → why its candles were refused last cycle
        self._gaps_said: dict[str, set[Gap]] = {}  # per symbol, the gaps its window holds

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    @property
    def funding_series(self) -> dict[str, FundingSeries]:
        """The funding settlements held per symbol (the window's; see the module's text)."""
        return dict(self._funding)

    async def snapshot(self, now: datetime) -> MarketSnapshot:
        """Refresh what is new and return the closed bars up to `now` and funding rates."""
        now_ms = ms_from_utc(now)
        jobs = [self._refresh_bars(symbol, now_ms) for symbol in self._symbols]
        if self._funding_due(now_ms):
            jobs += [self._refresh_funding(symbol, now_ms) for symbol in self._symbols]
            self._funding_fetched_ms = now_ms
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for index, (symbol, result) in enumerate(zip(self._symbols * 2, results, strict=False)):
            if isinstance(result, MarketDataError):  # that symbol sits this cycle out
                log.warning("market_data_rejected", symbol=symbol, error=str(result))
            elif isinstance(result, BaseException):
                raise result
            if index < len(self._symbols):  # a candle job: the symbol's data this cycle
                self._note_rejection(symbol, result)
        funding = {s: f.rate_8h_at(now_ms) for s, f in self._funding.items()}
        return MarketSnapshot(now_ms, dict(self._bars), funding)

    def set_symbols(self, symbols: Sequence[str]) -> None:
        """Follow a new universe: symbols that left are dropped with their bars and funding."""
        self._symbols = tuple(symbols)
        for held in (self._bars, self._funding, self.rejected):
            for symbol in [s for s in held if s not in self._symbols]:
                held.pop(symbol)

    async def warm_up(self, symbols: Sequence[str], now: datetime) -> dict[str, str]:
        """Fetch the full window of closed bars and the funding of symbols about to join;
        return why each that cannot trade yet cannot (an error, or fewer bars than the
        window: its signals would not match the others')."""
        now_ms = ms_from_utc(now)
        failed = {}
        for symbol in symbols:
            try:
                await self._refresh_bars(symbol, now_ms)
                await self._refresh_funding(symbol, now_ms)
            except MarketDataError as error:
                failed[symbol] = str(error)
                continue
            held = len(self._bars.get(symbol, ()))
            if held < self.history_bars:
                failed[symbol] = f"{held} of {self.history_bars} closed bars"
        for symbol in failed:
            self._bars.pop(symbol, None)
            self._funding.pop(symbol, None)
        return failed

    def health_lines(self) -> list[str]:
        """One line per symbol without usable candles in the last snapshot (health)."""
        return [f"{symbol}: no usable market data ({why})" for symbol, why in self.rejected.items()]

    def _note_rejection(self, symbol: str, result: object) -> None:
        if isinstance(result, MarketDataError):
            self.rejected[symbol] = str(result)
        elif symbol in self._bars:
            self.rejected.pop(symbol, None)

    def last_closed_open_ms(self, now_ms: int) -> int:
        """Open time of the newest bar whose close (open + timeframe) is at or before now."""
        return (now_ms // self.timeframe_ms) * self.timeframe_ms - self.timeframe_ms

    async def _refresh_bars(self, symbol: str, now_ms: int) -> None:
        newest = self.last_closed_open_ms(now_ms)
        held = self._bars.get(symbol)
        if held is not None and int(held.time_ms[-1]) >= newest:
            return
        first_wanted = newest - (self.history_bars - 1) * self.timeframe_ms
        since = first_wanted if held is None else max(int(held.time_ms[-1]) + self.timeframe_ms,
                                                      first_wanted)  # fmt: skip
        fresh = await self._fetch_closed(symbol, since, newest, now_ms)
        if fresh is None:
            return
        merged = fresh if held is None else concat(held, fresh)
        merged = merged.slice(max(0, len(merged) - self.history_bars), len(merged))
        try:
            said = self._gaps_said.setdefault(symbol, set())
            self._bars[symbol] = validate_bars(merged, said_gaps=said)
        except MarketDataError:
            self._bars.pop(symbol, None)  # refetch the whole window next cycle
            raise

    async def _fetch_closed(self, symbol: str, since: int, newest: int, now_ms: int) -> Bars | None:
        """Closed bars opening in [since, newest], paginated; None when there are none.

        Every page must make progress: bars opening before `since` are dropped, and a page
        of nothing but such bars (a source that ignores startTime) is a MarketDataError.
        """
        collected: Bars | None = None
        while since <= newest:
            limit = min(MAX_BARS_PER_REQUEST, (newest - since) // self.timeframe_ms + 1)
            page = await self._source.fetch_ohlcv(symbol, self.timeframe, since, limit)
            page = page.slice(0, page.closed_before(now_ms))
            if len(page) == 0:
                break
            first = int(np.searchsorted(page.time_ms, since, side="left"))
            if first == len(page):
                raise MarketDataError(
                    f"{symbol}: the exchange answered only klines opening before startTime "
                    f"{since} (it ignores startTime); check exchange.rest_url"
                )
            page = page.slice(first, len(page))
            collected = page if collected is None else concat(collected, page)
            since = int(page.time_ms[-1]) + self.timeframe_ms
        return collected

    def _funding_due(self, now_ms: int) -> bool:
        fetched = self._funding_fetched_ms
        return fetched is None or now_ms - fetched >= self._funding_refresh_ms

    async def _refresh_funding(self, symbol: str, now_ms: int) -> None:
        held = self._funding.get(symbol)
        first_kept = now_ms - self._funding_window_ms
        since = first_kept if held is None else int(held.time_ms[-1]) + 1
        times, rates = await self._fetch_funding(symbol, since, now_ms)
        if held is not None:
            times = np.concatenate([held.time_ms, times])
            rates = np.concatenate([held.rate, rates])
        first = int(np.searchsorted(times, first_kept, side="left"))
        times, rates = times[first:], rates[first:]
        implausible = np.flatnonzero(~(np.abs(rates) <= MAX_FUNDING_RATE))  # NaN included
        if implausible.size:
            row = int(implausible[0])
            raise MarketDataError(
                f"{symbol}: the exchange answered a funding rate of {rates[row]:g} at "
                f"{utc_from_ms(int(times[row])):%Y-%m-%d %H:%M}, not a number within "
                f"±{MAX_FUNDING_RATE:.0%} an interval (no Binance cap allows it); the rates "
                "held before are kept and asked again at the next refresh"
            )
        if times.size:
            self._funding[symbol] = FundingSeries.from_rates(times, rates)

    async def _fetch_funding(
        self, symbol: str, since: int, now_ms: int
    ) -> tuple[IntArray, FloatArray]:
        """Settlements from `since`, page after page (hourly funding fills a page of 1,000 in
        42 days) until the newest is within the longest interval of now: whatever a page holds
        at most, no settlement due since then can be missing. A page with nothing newer ends
        it (no more, or a source that ignores startTime)."""
        pages_t: list[IntArray] = []
        pages_r: list[FloatArray] = []
        while True:
            times, rates = await self._source.fetch_funding_rates(symbol, since)
            newer = times >= since
            times, rates = times[newer], rates[newer]
            if times.size == 0:
                break
            pages_t.append(times)
            pages_r.append(rates)
            since = int(times[-1]) + 1
            if since > now_ms - LONGEST_FUNDING_INTERVAL_MS:
                break
        if not pages_t:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        return np.concatenate(pages_t), np.concatenate(pages_r)
