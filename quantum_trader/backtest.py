"""`quantum-trader backtest`: the daemon's pipeline over recorded data on a simulated clock.

The same executor, monitor, trader, gates, sizer and paper exchange run as in `run`. What does
not depend on the account (indicators, regimes, signals) is computed once, vectorized over the
whole range without look-ahead (SPEC §11); each step then costs only the account's work. The
executor and the monitor run once per bar close: recorded bars carry no price path inside a
bar, so 30 s cycles within one 5 m bar would repeat the same decision.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from quantum_trader.app import (
    Core,
    assemble,
    choose_signal_source,
    make_paper_exchange,
)
from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.config import Settings
from quantum_trader.domain import EquitySnapshot
from quantum_trader.errors import ConfigurationError
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import TIMEFRAME_MS
from quantum_trader.market.provider import PrecomputedMarket
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import (
    history_bars,
    missing_inputs,
    recorded_model,
    with_universe,
)
from quantum_trader.market.source import resolve_market_data
from quantum_trader.reporting import BacktestReport, build_report
from quantum_trader.signals.ensemble import recorded_funding
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.split import SplitRepository
from quantum_trader.storage.sqlite import SqliteRepository

log = get_logger("backtest")
EQUITY_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    start: datetime | None = None
    end: datetime | None = None
    symbols: tuple[str, ...] | None = None
    out_dir: Path = Path("reports/backtest")


async def run_backtest(settings: Settings, request: BacktestRequest) -> BacktestReport:
    """Run the pipeline from `request.start` to `request.end`; write report.json and return it."""
    started = time.perf_counter()
    data = resolve_market_data(settings)
    if request.symbols is None:
        start_ms = ms_from_utc(request.start) if request.start else None
        settings = with_universe(settings, data, start_ms)
    symbols = request.symbols or settings.market.symbols
    rules = data.rules(symbols, settings.market.timeframe)
    store = data.store()
    # The ensemble's funding feature needs the recorded rates of exactly these symbols.
    source = choose_signal_source(settings, recorded_funding(store, symbols))
    feed = ReplayFeed(store, symbols, settings.market.timeframe, history_bars(settings, source))
    start, end = _window(feed, request)
    clock = ManualClock(start)
    missing_inputs(store, settings, feed, ms_from_utc(start))
    model = await asyncio.to_thread(recorded_model, settings, store, feed, source, rules)
    # The ledger lives in memory (no thread hop per write on the hot path); the audit trail
    # streams to the database in batches; the ledger joins it in one transaction at the end.
    repository = SplitRepository(InMemoryRepository(), await _fresh_database(request.out_dir))
    try:
        exchange = make_paper_exchange(settings, clock, feed, rules, state_path=None)
        core = await assemble(
            settings, PrecomputedMarket(model), exchange, repository, rules, start, asyncio.Event()
        )
        steps = await _replay(settings, clock, core, repository, start, end)
        await repository.save_ledger()
        start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
        candles = sum(
            b.closed_before(end_ms) - b.closed_before(start_ms) for b in feed.bars.values()
        )
        report = await build_report(
            repository.database,
            exchange,
            settings,
            symbols,
            start,
            end,
            steps,
            int(candles),
            time.perf_counter() - started,
            source.name,
        )
    finally:
        await repository.close()
    report.write(request.out_dir / "report.json")
    return report


async def _fresh_database(out_dir: Path) -> SqliteRepository:
    path = out_dir / "backtest.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    return await SqliteRepository.open(path)


async def _replay(
    settings: Settings,
    clock: ManualClock,
    core: Core,
    repository: SplitRepository,
    start: datetime,
    end: datetime,
) -> int:
    """Step bar close by bar close: the keeper first (exits the exchange made), then the cycle."""
    step = timedelta(milliseconds=TIMEFRAME_MS[settings.market.timeframe])
    now, steps, next_equity = start, 0, start
    while now < end:
        clock.set(now)
        await core.keeper.tick(now)
        await core.executor.run_cycle(now)
        if now >= next_equity:
            await _snapshot_equity(core, repository, now)
            next_equity = now + EQUITY_EVERY
        steps += 1
        now += step
    return steps


async def _snapshot_equity(core: Core, repository: SplitRepository, now: datetime) -> None:
    portfolio = await core.executor.portfolio(now)
    await repository.record_equity(
        EquitySnapshot(
            now,
            portfolio.equity_usdt,
            portfolio.wallet_usdt,
            portfolio.used_margin_usdt,
            len(core.keeper.positions),
        )
    )


def _window(feed: ReplayFeed, request: BacktestRequest) -> tuple[datetime, datetime]:
    start = max(request.start or feed.start, feed.start)
    end = min(request.end or feed.end, feed.end)
    if start >= end:
        raise ConfigurationError(
            [
                f"--start/--end: nothing to replay between {start.isoformat()} and "
                f"{end.isoformat()}; recorded data (after warm-up) covers "
                f"{feed.start.isoformat()} .. {feed.end.isoformat()}"
            ]
        )
    return start, end
