"""The composition root: the only place that chooses implementations for the ports.

`open_runtime` wires settings → clock, repository, market feed, signal source, exchange, gates,
sizer, position keeper and executor, registering every resource on the caller's AsyncExitStack
so cleanup runs in reverse order, and only for what was opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from quantum_trader.app_signals import (
    choose_signal_source,
    said_in_sample,
    said_not_trained_on,
    source_health,
)
from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.cycle import Executor, HealthFn
from quantum_trader.domain import ExchangeMode, MarketRules, Regime
from quantum_trader.errors import ConfigurationError, OperatorActionRequired, RetryLater
from quantum_trader.execution.paper import PaperExchange
from quantum_trader.execution.paper_continuity import Books, continuity_problem
from quantum_trader.execution.paper_state import load_state, refuse_linked
from quantum_trader.gates.balancer import PortfolioBalancer
from quantum_trader.gates.balancer_journal import BalancerJournal
from quantum_trader.gates.chain import ApprovalChain
from quantum_trader.gates.orchestrator import OrchestratorPolicy
from quantum_trader.gates.risk_guard import RiskGuard
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.log import get_logger
from quantum_trader.market.live_universe import LiveUniverse
from quantum_trader.market.provider import LiveMarket, MarketStateProvider
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import (
    global_regime_timeline,
    missing_inputs,
    open_replay_feed,
    open_store,
    recorded_input_check,
    regime_function,
    said_not_trading,
    statistics_windows,
    with_universe,
)
from quantum_trader.market.source import describe, resolve_market_data
from quantum_trader.ops.data_dir import HeldDataDir, hold_data_dir, prepare_data_dir
from quantum_trader.ops.governor_keeper import GovernorKeeper, load_governor
from quantum_trader.ops.health import HealthMonitor
from quantum_trader.ops.metered import MeteredExchange
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.presence import HEARTBEAT_FILE, STOPPING_FILE
from quantum_trader.paper_account_checks import (
    refuse_held_symbols_unrecorded,
    refuse_symbols_left_out,
    said_kept_balance,
)
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import (
    Clock,
    EntryMarks,
    Exchange,
    ExchangeStreams,
    Repository,
    SignalSource,
)
from quantum_trader.sizing.costs import CostModel
from quantum_trader.sizing.desk import SizingDesk
from quantum_trader.storage.sqlite import SqliteRepository

log = get_logger("app")
# Wall seconds between attempts of the start-up reconciliation (about half a minute in all).
STARTUP_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0)
DATABASE_FILE = "quantum_trader.db"
PAPER_STATE_FILE = "paper_exchange.json"
REPLAY_STATE = ("replay", "clock")


@dataclass(slots=True)
class Core:
    """The trading core, identical in `run` and `backtest`."""

    keeper: PositionKeeper
    ledger: Ledger
    governor: GovernorKeeper
    balancer: BalancerJournal
    sizing: SizingDesk
    executor: Executor


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    repository: Repository
    exchange: Exchange
    core: Core
    replay_end: datetime | None
    health: HealthMonitor
    models_status: HealthFn
    streams: ExchangeStreams | None = None
    universe: LiveUniverse | None = None  # testnet/live: refreshed on a schedule
    held: HeldDataDir | None = None  # the data directory, checked at every step (daemon.py)


def database_path(settings: Settings) -> Path:
    return settings.data_dir / DATABASE_FILE


def make_paper_exchange(
    settings: Settings,
    clock: Clock,
    feed: ReplayFeed,
    rules: Mapping[str, MarketRules],
    state_path: Path | None,
    order_latency_s: float = 0.0,
    held: HeldDataDir | None = None,
) -> PaperExchange:
    return PaperExchange(
        rules=rules,
        costs=CostModel(settings.costs),
        clock=clock,
        initial_balance_usdt=Decimal(repr(settings.exchange.paper_initial_balance_usdt)),
        bars=feed.bars,
        funding=feed.funding,
        state_path=state_path,
        order_latency_s=order_latency_s,
        before_save=held.check if held is not None else None,
    )


async def assemble(
    settings: Settings,
    market: MarketStateProvider,
    exchange: Exchange,
    repository: Repository,
    rules: Mapping[str, MarketRules],
    start: datetime,
    stopping: asyncio.Event,
    health: HealthFn = lambda now: "HEALTHY",
    streams: ExchangeStreams | None = None,
    clock: Callable[[], datetime] | None = None,
    entry_marks: EntryMarks | None = None,
) -> Core:
    """Ledger, governor, keeper, approval chain, sizing desk and executor. `clock`: the
    daemon's, which the keeper reads before an entry (keeper/entry_fresh.py); a backtest gives
    none (it has no person to open a position beside the books). `entry_marks`: testnet/live,
    where entries are sized at the mark (market/live_marks.py)."""
    balance = await exchange.fetch_balance()
    ledger = await Ledger.load(repository, balance.equity_usdt, start, settings.performance)
    governor = await load_governor(settings.governor, repository)
    executor_ref: list[Executor] = []

    def conditions() -> tuple[bool, Mapping[str, Regime]]:
        # The keeper asks at every tick: the state's flag read directly (≈ 900 instructions
        # fewer than through the governor's property).
        regimes = executor_ref[0].latest_regimes() if executor_ref else {}
        return governor.state.defensive_exit, regimes

    keeper = await PositionKeeper.load(
        exchange,
        repository,
        ledger,
        rules,
        settings.keeper,
        settings.monitor,
        streams=streams,
        admits=governor.state_allows_order,
        conditions=conditions,
        clock=clock,
        beside_a_person=clock is not None,
    )
    governor_keeper = GovernorKeeper(governor, repository, keeper, ledger)
    costs = CostModel(settings.costs)
    share = settings.sizing.max_slippage_stop_share
    balancer = BalancerJournal(PortfolioBalancer(settings.balancer, costs, share))
    chain = ApprovalChain(
        gates=[OrchestratorPolicy(settings.orchestrator), balancer, governor],
        order_gates=[RiskGuard(settings.risk)],
    )
    sizing = await SizingDesk.load(
        settings.sizing, CostModel(settings.costs), repository, settings.monitor
    )
    connect_learning(sizing, keeper, ledger)
    executor = Executor(
        market,
        exchange,
        repository,
        keeper,
        ledger,
        chain,
        sizing,
        governor_keeper,
        settings.executor.min_confidence,
        stopping,
        health,
        skip_unchanged=settings.executor.skip_unchanged_cycles,
        entry_marks=entry_marks,
    )
    executor_ref.append(executor)
    return Core(keeper, ledger, governor_keeper, balancer, sizing, executor)


def connect_learning(sizing: SizingDesk, keeper: PositionKeeper, ledger: Ledger) -> None:
    """The sizing desk hears of each entry before the keeper sends it (the RL decision kept by
    its client order id), of each trade the ledger books (learnt from) and of each it amends
    (the recent R read anew)."""
    keeper.entry_listeners.append(sizing)
    ledger.trade_listeners.append(lambda trade: sizing.on_trade_closed(trade, ledger.stats))
    ledger.amend_listeners.append(sizing.on_trade_amended)


async def reconciled_core(
    settings: Settings,
    market: MarketStateProvider,
    exchange: Exchange,
    repository: Repository,
    rules: Mapping[str, MarketRules],
    clock: Clock,
    stopping: asyncio.Event,
    streams: ExchangeStreams | None = None,
    entry_marks: EntryMarks | None = None,
) -> tuple[Core, HealthMonitor]:
    """The trading core with its health monitor, reconciled with the exchange before it trades
    (SPEC §9): the keeper's first tick, from a REST snapshot, is start-up reconciliation and
    crash recovery; every later tick runs the same code."""
    health = HealthMonitor(settings.health, settings.risk.min_balance_usdt)
    core = await assemble(
        settings,
        market,
        exchange,
        repository,
        rules,
        clock.now(),
        stopping,
        lambda _now: health.latest.status.value,
        streams,
        clock.now,
        entry_marks,
    )
    await first_reconciliation(core.keeper, clock)
    return core, health


async def first_reconciliation(keeper: PositionKeeper, clock: Clock) -> None:
    """The keeper's first tick, tried again after `STARTUP_RETRY_DELAYS_S` while the exchange
    answers RetryLater: a service restarted during a blip of the exchange (or of its own
    network) starts once it can see its account, and nothing trades before that. After the
    last attempt the RetryLater goes to the caller (exit 1, one line)."""
    for delay_s in (*STARTUP_RETRY_DELAYS_S, None):
        try:
            await keeper.tick(clock.now(), rest=True)
            return
        except RetryLater as error:
            if delay_s is None:
                raise
            log.warning("startup_reconcile_retry", error=str(error), retry_in_s=delay_s)
            await asyncio.sleep(delay_s)


async def open_runtime(
    settings: Settings,
    stack: AsyncExitStack,
    make_clock: Callable[[datetime], Clock],
    stopping: asyncio.Event,
    metrics: Metrics | None = None,
    source: SignalSource | None = None,
) -> Runtime:
    """Open every resource for `run`: paper mode on a replayed market, or the exchange.

    First the data directory is checked and locked for this process (ConfigurationError /
    UsageError, exit 2): nothing is opened before it is known to be this daemon's alone.
    With `metrics`, the exchange's orders, fills and errors are counted.
    """
    paper = settings.exchange.mode is ExchangeMode.PAPER
    if paper:
        _require_replay(settings)
    prepare_data_dir(settings.data_dir)
    # A database linked elsewhere is used there (SQLite keeps its journal beside the file).
    held = stack.enter_context(hold_data_dir(settings.data_dir, (DATABASE_FILE,)))
    (settings.data_dir / STOPPING_FILE).unlink(missing_ok=True)  # a previous daemon's
    heartbeat = settings.data_dir / HEARTBEAT_FILE
    if heartbeat.exists() and not heartbeat.is_file():  # every step would fail to touch it
        raise OperatorActionRequired(
            f"{heartbeat} is not a file: move it aside; the daemon writes its heartbeat there "
            "(status and the operator commands read it)"
        )
    if not paper:
        from quantum_trader.app_exchange import open_exchange_runtime  # ccxt: only when used

        runtime = await open_exchange_runtime(
            settings, stack, stopping, metrics=metrics, source=source
        )
        return _holding(runtime, held)
    data = resolve_market_data(settings)
    refuse_held_symbols_unrecorded(settings, settings.data_dir / PAPER_STATE_FILE, data)
    start = settings.market.replay_start
    settings = with_universe(settings, data, ms_from_utc(start) if start else None)
    log.info(
        "market_data_selected", **describe(data, settings.market.symbols, settings.market.timeframe)
    )
    rules = data.rules(settings.market.symbols, settings.market.timeframe)
    said_not_trading(data, settings.market.symbols)  # BREAK, SETTLING, ...: traded as recorded
    source = source or choose_signal_source(settings)
    feed = open_replay_feed(settings, source)
    feed.check_ticks(rules)
    if not database_path(settings).is_file():  # a first run: where it starts, before the file
        feed.check_covers(settings.market.replay_start or feed.start)
    refuse_symbols_left_out(settings, settings.data_dir / PAPER_STATE_FILE, rules)
    repository, paper_last = await _open_paper_books(settings, stack)
    replay_from = await _replay_start(settings, feed, repository, paper_last)
    said_in_sample(settings, source, (replay_from, feed.end))
    said_not_trained_on(settings, source, settings.market.symbols)
    clock = make_clock(replay_from)
    exchange = make_paper_exchange(
        settings,
        clock,
        feed,
        rules,
        settings.data_dir / PAPER_STATE_FILE,
        settings.exchange.paper_order_latency_s,
        held,
    )
    stack.push_async_callback(exchange.close)
    said_kept_balance(settings, exchange, settings.data_dir / PAPER_STATE_FILE)
    traded = metered(exchange, metrics)
    market = LiveMarket(
        feed,
        source,
        rules,
        regime_function(settings),
        global_regime_timeline(open_store(settings), settings),
        statistics_windows(settings),
    )
    log.info(
        "market_data_loaded",
        source="replay",
        directory=str(data.directory),
        origin=data.origin,
        timeframe=settings.market.timeframe,
        bars={symbol: len(bars) for symbol, bars in feed.bars.items()},
        first=feed.start.isoformat(),
        last=feed.end.isoformat(),
    )
    core, health = await reconciled_core(
        settings, market, traded, repository, rules, clock, stopping
    )
    store = open_store(settings)
    missing_inputs(store, settings, feed, ms_from_utc(clock.now()))  # warned once at start
    health.checks.append(recorded_input_check(store, settings, feed, clock))
    log.info(
        "runtime_ready",
        mode=settings.exchange.mode,
        signal_source=source.name,
        sizing_method=settings.sizing.method,
        symbols=list(settings.market.symbols),
        replay_from=clock.now().isoformat(),
        replay_until=feed.end.isoformat(),
        open_positions=len(core.keeper.positions),
        trading_state=core.governor.governor.state.trading_state,
    )
    runtime = Runtime(
        settings, clock, repository, traded, core, feed.end, health, source_health(source)
    )
    return _holding(runtime, held)


def _holding(runtime: Runtime, held: HeldDataDir) -> Runtime:
    """`runtime` with its data directory held, the database checked along with the lock."""
    held.keep(database_path(runtime.settings))
    runtime.held = held
    return runtime


def metered(exchange: Exchange, metrics: Metrics | None) -> Exchange:
    """The exchange, counted when there are metrics to count into."""
    return exchange if metrics is None else MeteredExchange(exchange, metrics)


def _require_replay(settings: Settings) -> None:
    if settings.market.source != "replay":
        raise ConfigurationError(
            [
                "market.source: 'exchange' needs exchange.mode 'testnet' or 'live'; the paper "
                "exchange fills on recorded prices, so paper mode replays (market.source "
                "'replay')"
            ]
        )


async def _open_paper_books(
    settings: Settings, stack: AsyncExitStack
) -> tuple[Repository, datetime | None]:
    """Open the database beside the paper account, refusing a pair that does not belong
    together (one was lost or replaced) before either is changed. Return the repository and
    the instant up to which the paper account has processed prices (None: no account yet)."""
    paper_path, database = settings.data_dir / PAPER_STATE_FILE, database_path(settings)
    refuse_linked(paper_path)
    paper = load_state(paper_path)  # a damaged account is refused before anything is opened

    def refuse_if_apart(books: Books) -> None:
        problem = continuity_problem(paper, books, paper_path, database)
        if problem is not None:
            raise OperatorActionRequired(problem)

    if not database.is_file() or database.stat().st_size == 0:
        refuse_if_apart(Books(fills=0, open_positions=0))  # before the file is created
    repository = await SqliteRepository.open(database)
    stack.push_async_callback(repository.close)
    refuse_if_apart(Books(await repository.fill_count(), len(await repository.open_positions())))
    return repository, None if paper is None else utc_from_ms(paper.last_ms)


async def _replay_start(
    settings: Settings, feed: ReplayFeed, repository: Repository, paper_last: datetime | None
) -> datetime:
    """Resume the recorded market where the last run stopped, else start where configured.

    Never before the instant the paper account has processed: its stops only trigger on prices
    after it, so resuming earlier (the database's clock is saved once a cycle) would leave them
    blind until the replay caught up — nor where the database saved no clock at all (a run
    stopped before its first cycle's save, by a database another program held locked: the
    replay began again at its start, the paper account's time went back, and a position it
    closed then was saved closed before it opened — the next start refused the account as
    damaged; `tests/robustness/test_database_locked.py`, under load).
    """
    saved = (await repository.load_state(REPLAY_STATE[0])).get(REPLAY_STATE[1])
    if saved:
        resume = datetime.fromisoformat(saved["now"])
        return max(resume, paper_last) if paper_last is not None else resume
    start = settings.market.replay_start or feed.start
    feed.check_covers(start)
    return max(start, paper_last) if paper_last is not None else start


async def save_replay_time(repository: Repository, now: datetime) -> None:
    await repository.save_state(*REPLAY_STATE, {"now": now.isoformat(), "ms": ms_from_utc(now)})
