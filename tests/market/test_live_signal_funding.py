"""In testnet/live the signal source's funding feature reads the exchange's settlements as
they come, over the whole window of bars it sees (loopback Binance stand-in, its clock moved
by hand): not a copy taken at the start that goes stale, and not nothing for a symbol."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

import numpy as np
from loopback import LoopbackBinance
from loopback.fixtures import clock_into_bar, loopback, loopback_settings
from loopback.server import loopback_api_urls
from loopback.state import FUNDING_INTERVAL_MS

from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.domain import Bars, SignalSeries
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.setup import history_bars

__all__ = ["loopback"]
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
HISTORY = 600  # 50 h of 5 m bars; the statistics' windows ask for more
FIVE_MINUTES_MS = 300_000


class FundingReader:
    """A signal source that reads funding as the ensemble does (`set_funding`) and says HOLD;
    it notes, at each evaluation, the settlements it holds per symbol."""

    name = "funding_reader"
    warmup_hours = 1
    history_hours = 1

    def __init__(self) -> None:
        self.funding: dict[str, FundingSeries] = {}
        self.seen: list[dict[str, list[int]]] = []

    def set_funding(self, funding: Mapping[str, FundingSeries]) -> None:
        self.funding = dict(funding)

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        self.seen.append({s: self.funding[s].time_ms.tolist() for s in bars if s in self.funding})
        hold = {s: (np.zeros(len(b), np.int8), np.zeros(len(b))) for s, b in bars.items()}
        return {s: SignalSeries(a, c, {self.name: (a, c)}) for s, (a, c) in hold.items()}


def settlements(first_ms: int, now_ms: int) -> list[int]:
    """The stand-in's settlement times in [first_ms, now_ms] (every 8 h)."""
    start = -(-first_ms // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
    return list(range(start, now_ms + 1, FUNDING_INTERVAL_MS))


async def test_the_signal_sources_funding_follows_the_exchange_over_the_bars_window(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        exchange=loopback_settings(),
        market=MarketSettings(symbols=(BTC, ETH), history_bars=HISTORY),
    )
    source = FundingReader()
    clock = clock_into_bar(loopback)
    async with AsyncExitStack() as stack:
        runtime = await open_exchange_runtime(
            settings,
            stack,
            asyncio.Event(),
            clock=clock,
            api_urls=loopback_api_urls(loopback.base_url),
            source=source,
            rate_limit=False,
        )
        bars_ms = history_bars(runtime.settings, source) * FIVE_MINUTES_MS  # the feed's window

        def expected(now: datetime) -> list[int]:
            now_ms = ms_from_utc(now)
            week = 7 * 24 * 3_600_000
            return settlements(now_ms - max(week, bars_ms + FUNDING_INTERVAL_MS), now_ms)

        await runtime.core.executor.run_cycle(clock.now())
        assert source.seen[-1] == {BTC: expected(clock.now()), ETH: expected(clock.now())}

        # Two days on: the settlements since are read before the signals, none is kept twice.
        loopback.state.now_ms += 2 * 24 * 3_600_000
        clock.set(utc_from_ms(loopback.state.now_ms + 10_000))
        await runtime.core.executor.run_cycle(clock.now())
        newest = settlements(loopback.state.now_ms - FUNDING_INTERVAL_MS, loopback.state.now_ms)
        assert source.seen[-1][BTC][-1] == newest[-1]
        assert source.seen[-1] == {BTC: expected(clock.now()), ETH: expected(clock.now())}
