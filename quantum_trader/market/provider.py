"""Where a cycle gets its market state: computed live from a feed, or read from a model that the
backtest computed once over the whole range."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import MarketRules
from quantum_trader.market.gaps import said_warmup
from quantum_trader.market.model import GlobalRegimeFn, MarketModel, MarketState
from quantum_trader.market.series import RegimeFn, StatisticsWindows
from quantum_trader.ports import MarketFeed, SignalSource


class MarketStateProvider(Protocol):
    async def state(self, now: datetime) -> MarketState: ...


class LiveMarket:
    """Each cycle: closed bars from the feed, then the model over that window in a worker
    thread (inference never blocks the event loop), read at its newest row. A symbol warming
    up after a gap in its candles (market/gaps.py) is said once per gap (`gap_warmup`).

    `before_signals`, when given, runs after each snapshot and before the signals are
    computed (the composition root hands the signal source the feed's funding there)."""

    def __init__(
        self,
        feed: MarketFeed,
        source: SignalSource,
        rules: Mapping[str, MarketRules],
        regime: RegimeFn,
        global_regime: GlobalRegimeFn,
        windows: StatisticsWindows,
        before_signals: Callable[[], None] | None = None,
    ) -> None:
        self._feed = feed
        self._source = source
        self._rules = rules
        self._regime = regime
        self._global_regime = global_regime
        self._windows = windows
        self._before_signals = before_signals
        self._said: set[tuple[str, int]] = set()  # the warm-ups said: (symbol, resume_ms)

    async def state(self, now: datetime) -> MarketState:
        snapshot = await self._feed.snapshot(now)
        if self._before_signals is not None:
            self._before_signals()
        funding = snapshot.funding_rate_8h
        model = await asyncio.to_thread(
            MarketModel.compute,
            snapshot.bars,
            self._source,
            self._rules,
            tail=1,
            regime=self._regime,
            funding_rate_8h=lambda symbol, _now_ms: funding.get(symbol, 0.0),
            global_regime=self._global_regime,
            windows=self._windows,
        )
        self._say_warmups(model, snapshot.time_ms)
        return model.state_at(snapshot.time_ms)

    def _say_warmups(self, model: MarketModel, now_ms: int) -> None:
        """Log each warm-up after a gap once, at the first cycle that shows it."""
        for symbol, warmup in model.warming_up(now_ms):
            if (symbol, warmup.resume_ms) not in self._said:
                self._said.add((symbol, warmup.resume_ms))
                said_warmup(symbol, warmup)


class PrecomputedMarket:
    """The backtest's provider: one model over the whole range, read at each step."""

    def __init__(self, model: MarketModel) -> None:
        self._model = model

    async def state(self, now: datetime) -> MarketState:
        return self._model.state_at(ms_from_utc(now))
