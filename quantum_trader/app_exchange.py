"""The composition root for exchange.mode testnet/live: the same core as paper mode, on Binance.

Opening order (each resource on the caller's AsyncExitStack, closed in reverse): the ccxt
adapter → the universe (market/live_universe.py: the rule or the fixed list, each symbol's
rules and leverage brackets; an unknown configured symbol is a ConfigurationError) → account
checks (one-way, single-asset, isolated margin and leverage per symbol, at most its bracket's;
OperatorActionRequired when the account is not usable) → SQLite → the exchange feed, signals
and regimes → the trading core → reconciliation with the exchange, before the first trade. A
mismatch reconciliation cannot resolve blocks new entries (fail closed) while the monitor keeps
protecting open positions.

Market data always comes from the exchange in these modes (`market.source` is not consulted).
The API key and secret go to the ccxt client only; nothing here logs or stores them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime

from pydantic import SecretStr

from quantum_trader.app import Runtime, database_path, metered, reconciled_core
from quantum_trader.app_signals import (
    choose_signal_source,
    said_not_trained_on,
    saying_not_trained_on,
    source_health,
)
from quantum_trader.clock import LiveClock, ms_from_utc
from quantum_trader.config import ExchangeSettings, Settings
from quantum_trader.domain import ExchangeMode, GlobalRegime
from quantum_trader.errors import ConfigurationError, MarketDataError, RetryLater
from quantum_trader.execution.binance_errors import Operation
from quantum_trader.execution.binance_streams import BinanceStreams
from quantum_trader.execution.ccxt_exchange import DEFAULT_RETRY_DELAYS_S, CcxtExchange
from quantum_trader.gates.settings import RegimeSettings
from quantum_trader.log import get_logger
from quantum_trader.market import regime
from quantum_trader.market.exchange_feed import ExchangeFeed, OhlcvSource
from quantum_trader.market.live_marks import LiveMarks
from quantum_trader.market.live_universe import LiveUniverse
from quantum_trader.market.model import MarketState
from quantum_trader.market.provider import LiveMarket, MarketStateProvider
from quantum_trader.market.setup import (
    history_bars,
    log_unknown_sectors,
    regime_function,
    regime_gap,
    statistics_windows,
)
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ports import Clock, SignalSource
from quantum_trader.storage.sqlite import SqliteRepository

log = get_logger("app_exchange")
REGIME_SYMBOL = "BTC/USDT:USDT"
REGIME_REFRESH_S = 3600.0


class DailyRegime:
    """The global regime (SPEC §3.3) from BTC's daily candles on the exchange.

    `refresh` fetches at most once per `refresh_s` (one klines request, weight 5); `at` is the
    synchronous GlobalRegimeFn the market model calls. A failed refresh keeps the last value
    (SIDEWAYS before the first) and is retried on the next cycle.
    """

    def __init__(
        self, source: OhlcvSource, settings: RegimeSettings, refresh_s: float = REGIME_REFRESH_S
    ) -> None:
        self._source = source
        self._settings = settings
        self._refresh_ms = round(refresh_s * 1000)
        self._fetched_ms: int | None = None
        self.value = GlobalRegime.SIDEWAYS
        self.daily_closes: int | None = None  # None: not read yet

    def health_lines(self) -> list[str]:
        """The shortfall of BTC daily closes (the regime stays SIDEWAYS) once a read was
        tried, if any."""
        if self.daily_closes is None:
            return []
        gap = regime_gap(self.daily_closes, self._settings.global_ema_days, "the exchange")
        return [] if gap is None else [gap]

    def at(self, now_ms: int) -> GlobalRegime:
        return self.value

    async def refresh(self, now: datetime) -> None:
        now_ms = ms_from_utc(now)
        if self._fetched_ms is not None and now_ms - self._fetched_ms < self._refresh_ms:
            return
        days = self._settings.global_ema_days + 10
        since = (now_ms // regime.DAY_MS - days) * regime.DAY_MS
        try:
            daily = await self._source.fetch_ohlcv(REGIME_SYMBOL, "1d", since, days + 1)
        except (MarketDataError, RetryLater) as error:
            log.warning("global_regime_refresh_failed", error=str(error), kept=self.value)
            if self.daily_closes is None:
                self.daily_closes = 0
            return
        closes = regime.daily_closes(daily.slice(0, daily.closed_before(now_ms)))
        self.value = regime.global_regime(closes, self._settings)
        self._fetched_ms = now_ms
        self.daily_closes = len(closes)
        log.info("global_regime_refreshed", global_regime=self.value, daily_closes=len(closes))


class ExchangeMarket:
    """The live market provider, with the hourly BTC regime refresh and the universe refresh
    (market.universe.refresh_s) before each state."""

    def __init__(
        self,
        inner: MarketStateProvider,
        daily: DailyRegime,
        universe: LiveUniverse,
        feed: ExchangeFeed,
    ) -> None:
        self._inner = inner
        self._daily = daily
        self._universe = universe
        self._feed = feed

    async def state(self, now: datetime) -> MarketState:
        await self._universe.refresh(now)
        await self._daily.refresh(now)
        return await self._inner.state(now)

    def health_lines(self) -> list[str]:
        """Missing inputs right now (health): the global regime's, untradable symbols, symbols
        whose candles were refused last cycle."""
        return [
            *self._daily.health_lines(),
            *self._universe.health_lines(),
            *self._feed.health_lines(),
        ]


async def open_exchange_runtime(
    settings: Settings,
    stack: AsyncExitStack,
    stopping: asyncio.Event,
    *,
    clock: Clock | None = None,
    api_urls: Mapping[str, str] | None = None,
    source: SignalSource | None = None,
    rate_limit: bool = True,
    retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
    metrics: Metrics | None = None,
) -> Runtime:
    """Open every resource for `run` in testnet/live mode and reconcile before trading.

    `clock` (default LiveClock), `api_urls` (ccxt REST base URLs by name), `source` (default
    from settings), `rate_limit=False` (no client-side throttle) and `retry_delays_s` (waits
    between retries of an idempotent read, in real seconds) exist for the loopback tests;
    `metrics` counts requests, request weight, orders, fills and errors. Raises
    ConfigurationError for paper mode or an unknown symbol, OperatorActionRequired when the
    account cannot be used.
    """
    if settings.exchange.mode is ExchangeMode.PAPER:
        raise ConfigurationError(["exchange.mode: 'paper' runs through app.open_runtime"])
    clock = clock or LiveClock()
    exchange = CcxtExchange.create(
        settings.exchange,
        api_urls=api_urls,
        rate_limit=rate_limit,
        clock=clock,
        retry_delays_s=retry_delays_s,
    )
    stack.push_async_callback(exchange.close)
    if metrics is not None:
        exchange.on_request = metrics.on_request
        metrics.declare_operations(operation.value for operation in Operation)
    await exchange.load_markets()
    universe = LiveUniverse(exchange, settings)
    await universe.start(clock.now())
    settings = _with_symbols(settings, universe.symbols)
    rules = universe.rules  # shared with the keeper: grows as symbols join, never shrinks
    await exchange.prepare_account(
        universe.symbols, settings.sizing.default_leverage, universe.leverage_caps()
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    repository = await SqliteRepository.open(database_path(settings))
    stack.push_async_callback(repository.close)
    if source is None:  # its funding history comes from the feed, before each cycle's signals
        source = choose_signal_source(settings, {})
    said_not_trained_on(settings, source, settings.market.symbols)
    universe.listeners.append(saying_not_trained_on(settings, source))
    market = _exchange_market(settings, exchange, source, universe)
    streams = (
        BinanceStreams.create(settings.exchange, exchange, clock)
        if settings.exchange.use_streams
        else None
    )
    traded = metered(exchange, metrics)
    marks = LiveMarks(traded, streams)  # entries sized at the mark, not a bar's close
    core, health = await reconciled_core(
        settings, market, traded, repository, rules, clock, stopping, streams, marks
    )
    health.checks.append(market.health_lines)
    log.info(
        "runtime_ready",
        mode=settings.exchange.mode,
        signal_source=source.name,
        sizing_method=settings.sizing.method,
        symbols=list(settings.market.symbols),
        open_positions=len(core.keeper.positions),
        entries_blocked=sorted(core.keeper.blocked_symbols()),
        streams=streams is not None,
        trading_state=core.governor.governor.state.trading_state,
    )
    return Runtime(
        settings,
        clock,
        repository,
        traded,
        core,
        None,
        health,
        source_health(source),
        streams,
        universe,
    )


def _with_symbols(settings: Settings, symbols: Sequence[str]) -> Settings:
    """`settings` with market.symbols the universe traded at start (logged, fed, funded)."""
    resolved = settings.model_copy(
        update={"market": settings.market.model_copy(update={"symbols": tuple(symbols)})}
    )
    log_unknown_sectors(resolved)
    return resolved


def public_exchange(
    settings: ExchangeSettings, api_urls: Mapping[str, str] | None = None
) -> CcxtExchange:
    """A keyless client on Binance USD-M production for public market data (candles, funding).

    Production, whatever `exchange.mode` says: recorded data should be the real market. It
    never sends an order (it has no keys), so the live-mode confirmation does not apply.
    """
    public = ExchangeSettings.model_construct(
        mode=ExchangeMode.LIVE,
        api_key=SecretStr(""),
        api_secret=SecretStr(""),
        request_timeout_s=settings.request_timeout_s,
        rest_url=settings.rest_url,
        recv_window_ms=settings.recv_window_ms,
    )
    return CcxtExchange.create(public, api_urls=api_urls)


def _exchange_market(
    settings: Settings,
    exchange: CcxtExchange,
    source: SignalSource,
    universe: LiveUniverse,
) -> ExchangeMarket:
    feed = ExchangeFeed(
        exchange,
        universe.symbols,
        settings.market.timeframe,
        history_bars(settings, source),
    )
    universe.feed = feed
    daily = DailyRegime(exchange, settings.regime)
    live = LiveMarket(
        feed,
        source,
        universe.rules,
        regime_function(settings),
        daily.at,
        statistics_windows(settings),
        before_signals=_funding_from_feed(source, feed),
    )
    return ExchangeMarket(live, daily, universe, feed)


def _funding_from_feed(source: SignalSource, feed: ExchangeFeed) -> Callable[[], None] | None:
    """Hand a signal source that reads funding (the ensemble's funding feature) the feed's
    settlements before each cycle's signals: kept current and over the bars' window, joining
    symbols included, as training read the recorded ones. The rule agent reads none."""
    set_funding = getattr(source, "set_funding", None)
    if not callable(set_funding):
        return None
    return lambda: set_funding(feed.funding_series)
