"""The market model's setup from settings: recorded data, the feed's window, regimes, the
global regime, the statistics windows. Shared by the daemon, the backtest and the tests.

Optional inputs that are missing (BTC's hourly candles for the global regime, funding rates)
are one warning each at the default log level and a line for the health monitor
(`missing_inputs`), never silent. What a replay's data hold that its results depend on — a
symbol the rules list as not TRADING, gaps inside the window (`replay_caveats`) — is one
warning each too, and a line of the report's `missing_inputs`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.domain import Bars, GlobalRegime, MarketRules
from quantum_trader.errors import MarketDataError
from quantum_trader.log import get_logger
from quantum_trader.market import gaps, regime
from quantum_trader.market.candle_store import TIMEFRAME_MS, CandleStore
from quantum_trader.market.model import GlobalRegimeFn, MarketModel
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.rules import not_trading
from quantum_trader.market.series import RegimeFn, StatisticsWindows
from quantum_trader.market.source import MarketData, resolve_market_data
from quantum_trader.market.universe import DAY_MS, resolve_recorded
from quantum_trader.market.validation import MAX_MISSING_BARS, gaps_within
from quantum_trader.ports import Clock, SignalSource

log = get_logger("market")
REGIME_SYMBOL = "BTC/USDT:USDT"
# `missing_inputs`' warnings: a quiet command (the backtest's) still shows them.
MISSING_INPUT_WARNINGS = frozenset(
    {
        "global_regime_unavailable",
        "funding_unavailable",
        "replay_window_narrowed",
        "symbol_not_trading",
        "replay_gaps",
        "gap_warmup",
        "symbols_not_trained_on",  # app_signals.said_not_trained_on: the models never saw them
        # trained models there but not used (signals/loading.py, app_signals.py): the rule
        # agent trades instead, and the report says why
        "model_set_refused",
        "model_load_failed",
        "ensemble_unavailable",
    }
)
CORRELATION_PERIODS_AHEAD = 24  # a recording's correlation matrices, a day's at a time


def open_store(settings: Settings) -> CandleStore:
    """The candle store of the market data the commands agree on (market.source)."""
    return resolve_market_data(settings).store()


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
    regimes, signals, statistics — computed once, vectorized, over the whole recording; the
    correlation matrices a day of refresh periods at a time (`MarketModel.look_ahead`)."""
    model = MarketModel.compute(
        feed.bars,
        source,
        rules,
        tail=None,
        regime=regime_function(settings),
        funding_series=feed.funding,
        global_regime=global_regime_timeline(store, settings),
        windows=statistics_windows(settings),
    )
    model.look_ahead(CORRELATION_PERIODS_AHEAD)
    return model


def statistics_windows(settings: Settings) -> StatisticsWindows:
    g = settings.governor
    return StatisticsWindows(
        returns_bars=max(settings.balancer.correlation_lookback_bars, g.correlation_lookback_bars),
        volatility_bars=g.volatility_lookback_hours,
        volatility_min_bars=g.volatility_min_bars,
    )


def global_regime_timeline(store: CandleStore, settings: Settings) -> GlobalRegimeFn:
    """BTC's recorded daily closes against their EMA200, as of any instant (SPEC §3.3).

    Without BTC's hourly candles it is SIDEWAYS throughout (see `missing_inputs`)."""
    hourly = _btc_hourly(store)
    if hourly is None:
        return lambda now_ms: GlobalRegime.SIDEWAYS
    cache: dict[int, GlobalRegime] = {}

    def at(now_ms: int) -> GlobalRegime:
        day = now_ms // regime.DAY_MS
        if day not in cache:
            visible = hourly.slice(0, hourly.closed_before(day * regime.DAY_MS))
            cache[day] = regime.global_regime(regime.daily_closes(visible), settings.regime)
        return cache[day]

    return at


def regime_gap(days: int, needed: int, where: object) -> str | None:
    """The line saying the global regime lacks BTC daily closes, or None when it has them."""
    if days >= needed:
        return None
    return (
        f"global regime: {days} of {needed} BTC daily closes in {where}; it stays SIDEWAYS "
        f"until there are {needed} (`quantum-trader download-data --symbols {REGIME_SYMBOL} "
        f"--timeframe 1h --days {needed + 10}`)"
    )


def _btc_hourly(store: CandleStore) -> Bars | None:
    return _btc_hourly_or_why(store)[0]


def _btc_hourly_or_why(store: CandleStore) -> tuple[Bars | None, str | None]:
    """BTC's hourly candles, or None and, when their file is there but cannot be used, why
    (a missing file is counted as no daily closes; a corrupt one is said to be corrupt)."""
    try:
        return store.load_bars(REGIME_SYMBOL, "1h"), None
    except MarketDataError as error:
        if not store.candle_path(REGIME_SYMBOL, "1h").is_file():
            return None, None
        return None, str(error)


def _unreadable_regime(why: str, needed: int) -> str:
    return (
        f"global regime: BTC's hourly candles cannot be used ({why}); it stays SIDEWAYS "
        f"until they can (replace the file: `quantum-trader download-data --symbols "
        f"{REGIME_SYMBOL} --timeframe 1h --days {needed + 10}`)"
    )


def _closes_before(hourly: Bars | None, now_ms: int) -> int:
    if hourly is None:
        return 0
    return len(regime.daily_closes(hourly.slice(0, hourly.closed_before(now_ms))))


def _funding_gap(feed: ReplayFeed | None) -> tuple[list[str], str | None]:
    without = [] if feed is None else [s for s, f in feed.funding.items() if f.time_ms.size == 0]
    if not without:
        return without, None
    return without, (
        f"funding rates: none recorded for {', '.join(without)}; no funding is charged "
        "(spot candles, or download-data for these symbols)"
    )


def missing_inputs(
    store: CandleStore, settings: Settings, feed: ReplayFeed | None, start_ms: int
) -> list[str]:
    """Warn once per optional input that is missing at `start_ms`; return one line for each.

    Checked: BTC's hourly candles with `regime.global_ema_days` daily closes before the start
    (else the global regime stays SIDEWAYS), and recorded funding rates per symbol (else no
    funding is charged or earned, and the ensemble's funding feature reads 0).
    """
    notices = []
    needed = settings.regime.global_ema_days
    hourly, unreadable = _btc_hourly_or_why(store)
    days = _closes_before(hourly, start_ms)
    gap = regime_gap(days, needed, f"{store.directory} before the start")
    if unreadable is not None:
        gap = _unreadable_regime(unreadable, needed)
    if gap is not None:
        notices.append(gap)
        log.warning("global_regime_unavailable", daily_closes=days, needed=needed, hint=gap)
    without, funding = _funding_gap(feed)
    if funding is not None:
        notices.append(funding)
        log.warning("funding_unavailable", symbols=without, hint=funding)
    return notices


def recorded_input_check(
    store: CandleStore, settings: Settings, feed: ReplayFeed | None, clock: Clock
) -> Callable[[], list[str]]:
    """The health monitor's check of the recorded optional inputs as of the clock's now: the
    regime's line clears once the replay has passed `regime.global_ema_days` BTC daily closes
    (logged once, `global_regime_available`)."""
    (hourly, unreadable), needed = _btc_hourly_or_why(store), settings.regime.global_ema_days
    funding = _funding_gap(feed)[1]
    checked_day, gap = -1, ""

    def check() -> list[str]:
        nonlocal checked_day, gap
        now_ms = ms_from_utc(clock.now())
        if unreadable is not None:
            return [_unreadable_regime(unreadable, needed), *([funding] if funding else [])]
        if now_ms // DAY_MS != checked_day:
            days = _closes_before(hourly, now_ms)
            now_gap = regime_gap(days, needed, store.directory) or ""
            if gap and not now_gap:
                log.info("global_regime_available", daily_closes=days)
            checked_day, gap = now_ms // DAY_MS, now_gap
        return [line for line in (gap, funding) if line]

    return check


def replay_caveats(
    data: MarketData, feed: ReplayFeed, start: datetime, end: datetime, history_hours: int
) -> list[str]:
    """One line (and one shown warning) per symbol the rules list as not TRADING, per symbol
    with gaps in its candles between `start` and `end`, and per gap whose warm-up reaches into
    them (`history_hours`: the signal source's): for the report."""
    lines = said_not_trading(data, feed.symbols)
    start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
    lines += said_gaps(feed, start_ms, end_ms)
    return lines + said_warmups(feed, start_ms, end_ms, history_hours)


def said_warmups(feed: ReplayFeed, start_ms: int, end_ms: int, history_hours: int) -> list[str]:
    """`gaps.said_warmup` of each gap whose warm-up overlaps [`start_ms`, `end_ms`): the
    market model computes the same warm-ups from the same bars."""
    warmup_h = gaps.warmup_hours(history_hours)
    return [
        gaps.said_warmup(symbol, warmup)
        for symbol, bars in feed.bars.items()
        for warmup in gaps.warmups(bars.time_ms, warmup_h)
        if warmup.resume_ms < end_ms and warmup.warm_ms > start_ms
    ]


def said_not_trading(data: MarketData, symbols: Sequence[str]) -> list[str]:
    """A warning per symbol the rules file lists with a status other than TRADING (BREAK,
    SETTLING, ...). Not refused: the file is of one day, the candles may be of a time it
    traded; the replay trades it as recorded."""
    lines = []
    for symbol, (status, source) in not_trading(symbols, data.rules_files()).items():
        line = (
            f"{symbol} is {status}, not TRADING, in {source.path.name}: the replay trades it "
            "as recorded (the rules are of that day; check its candles are of a time it traded)"
        )
        log.warning("symbol_not_trading", symbol=symbol, status=status, detail=line)
        lines.append(line)
    return lines


def said_gaps(feed: ReplayFeed, start_ms: int, end_ms: int) -> list[str]:
    """A warning per symbol whose candles miss more than MAX_MISSING_BARS bars in a row
    between `start_ms` and `end_ms` (untradeable across each): how many such gaps, the
    largest and when."""
    lines = []
    for symbol, bars in feed.bars.items():
        count, largest = gaps_within(bars.time_ms, bars.timeframe_ms, start_ms, end_ms)
        if largest is None:
            continue
        first = utc_from_ms(largest.last_ms + bars.timeframe_ms)
        resume = utc_from_ms(largest.resume_ms)
        line = (
            f"{symbol}'s candles have {count} gap{'s' if count > 1 else ''} of more than "
            f"{MAX_MISSING_BARS} bar inside the replay (no price, signal or market fill across "
            f"one), the largest {largest.missing_bars} {feed.timeframe} bars from "
            f"{first:%Y-%m-%d %H:%M} to {resume:%Y-%m-%d %H:%M}"
        )
        log.warning(
            "replay_gaps",
            symbol=symbol,
            gaps=count,
            largest_missing_bars=largest.missing_bars,
            largest_from=first.isoformat(),
            largest_to=resume.isoformat(),
            detail=line,
        )
        lines.append(line)
    return lines


def with_universe(settings: Settings, data: MarketData, start_ms: int | None) -> Settings:
    """`settings` with market.symbols set to the universe rule's pick from the recorded data as
    of `start_ms` (default: a day after the latest first bar), once; unchanged for a fixed
    list. Logs the pick and the symbols the balancer's sector map does not know."""
    universe = settings.market.universe
    if universe.rule == "fixed":
        log_unknown_sectors(settings)
        return settings
    store = data.store()
    listings = {s: x for f in reversed(data.rules_files()) for s, x in f.listings.items()}
    candidates = [s for s in store.available_symbols(settings.market.timeframe) if s in listings]
    bars = {s: store.load_bars(s, settings.market.timeframe) for s in candidates}
    if start_ms is None and bars:
        start_ms = max(int(b.time_ms[0]) for b in bars.values()) + DAY_MS
    chosen = resolve_recorded(bars, listings, start_ms or 0, universe)
    log.info("universe_resolved", rule=universe.rule, symbols=list(chosen), source="recorded")
    market = settings.market.model_copy(update={"symbols": chosen})
    resolved = settings.model_copy(update={"market": market})
    log_unknown_sectors(resolved)
    return resolved


def log_unknown_sectors(settings: Settings) -> None:
    """Once per start: the symbols the balancer files under its default sector."""
    unknown = [s for s in settings.market.symbols if s not in settings.balancer.sectors]
    if unknown:
        log.info(
            "sector_unknown",
            symbols=unknown,
            sector=settings.balancer.unknown_sector,
            hint="balancer.sectors maps a symbol to its sector",
        )
