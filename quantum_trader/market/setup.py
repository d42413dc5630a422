"""The market model's setup from settings: recorded data, the feed's window, regimes, the
global regime, the statistics windows. Shared by the daemon, the backtest and the tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from quantum_trader.config import Settings
from quantum_trader.domain import Bars, GlobalRegime, MarketRules
from quantum_trader.errors import MarketDataError
from quantum_trader.log import get_logger
from quantum_trader.market import regime
from quantum_trader.market.candle_store import TIMEFRAME_MS, CandleStore, bundled_sample_dir
from quantum_trader.market.model import GlobalRegimeFn, MarketModel, RegimeFn, StatisticsWindows
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.ports import SignalSource

log = get_logger("market")


def open_store(settings: Settings) -> CandleStore:
    return CandleStore(settings.market.replay_dir or bundled_sample_dir())


def history_bars(settings: Settings, source: SignalSource) -> int:
    """Execution bars the feed keeps: the setting, or more when the signal source or the market
    statistics (the volatility baseline in hours, correlations in bars) need more. Fewer would
    make the daemon's statistics differ from the backtest's over the same instant."""
    timeframe_ms = TIMEFRAME_MS[settings.market.timeframe]
    hours = max(source.warmup_hours, settings.governor.volatility_lookback_hours + 2)
    windows = statistics_windows(settings)
    needed = max(-(-hours * 3_600_000 // timeframe_ms), windows.returns_bars + 1)
    return max(settings.market.history_bars, needed)


def open_replay_feed(settings: Settings, source: SignalSource) -> ReplayFeed:
    history = history_bars(settings, source)
    return ReplayFeed(
        open_store(settings), settings.market.symbols, settings.market.timeframe, history
    )


def regime_function(settings: Settings) -> RegimeFn:
    names = np.asarray(regime.REGIMES, dtype=object)
    regime_settings = settings.regime

    def classify(bars: Bars) -> npt.NDArray[np.object_]:
        codes = regime.regime_series(bars, regime_settings)
        return np.asarray(names[codes], dtype=object)

    return classify


def recorded_model(
    settings: Settings,
    store: CandleStore,
    feed: ReplayFeed,
    source: SignalSource,
    rules: Mapping[str, MarketRules],
) -> MarketModel:
    """Everything about the recorded market that does not depend on the account — indicators,
    regimes, signals, statistics — computed once, vectorized, over the whole recording."""
    return MarketModel.compute(
        feed.bars,
        source,
        rules,
        tail=None,
        regime=regime_function(settings),
        funding_series=feed.funding,
        global_regime=global_regime_timeline(store, settings),
        windows=statistics_windows(settings),
    )


def statistics_windows(settings: Settings) -> StatisticsWindows:
    g = settings.governor
    return StatisticsWindows(
        returns_bars=max(settings.balancer.correlation_lookback_bars, g.correlation_lookback_bars),
        volatility_bars=g.volatility_lookback_hours,
        volatility_min_bars=g.volatility_min_bars,
    )


def global_regime_timeline(store: CandleStore, settings: Settings) -> GlobalRegimeFn:
    """BTC's recorded daily closes against their EMA200, as of any instant (SPEC §3.3)."""
    try:
        hourly = store.load_bars("BTC/USDT:USDT", "1h")
    except MarketDataError:
        log.warning("global_regime_unavailable", reason="no recorded BTC 1h candles")
        return lambda now_ms: GlobalRegime.SIDEWAYS
    cache: dict[int, GlobalRegime] = {}

    def at(now_ms: int) -> GlobalRegime:
        day = now_ms // regime.DAY_MS
        if day not in cache:
            visible = hourly.slice(0, hourly.closed_before(day * regime.DAY_MS))
            cache[day] = regime.global_regime(regime.daily_closes(visible), settings.regime)
        return cache[day]

    return at
