"""`quantum-trader backtest`: the daemon's pipeline over recorded data on a simulated clock.

The same executor, monitor, trader, gates, sizer and paper exchange run as in `run`. What does
not depend on the account (indicators, regimes, signals) is computed once, vectorized over the
whole range without look-ahead (SPEC §11); each step then costs only the account's work. The
executor and the monitor run once per bar close: recorded bars carry no price path inside a
bar, so 30 s cycles within one 5 m bar would repeat the same decision.

Honest windows: trained models are never evaluated on their own training data without the
caller saying so (report/provenance.py). Outputs are written into a partial directory and
swapped in only when complete (report/outputs.py); a set `stopping` event (SIGTERM/SIGINT)
ends the replay at the next step and leaves the previous outputs as they were.

Memory: `run_backtest` releases the replay (recorded market, market model, core) before the
report is built, keeping only the run's records (the ledger and the audit's tallies, a few MB
a year), so the command's peak is the larger of the two phases rather than their sum. The
report is computed from those records as the database now holds them (report/load.py
`held_run`): the command does not read back what it has just written, and the charts are
drawn while the database is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from quantum_trader.app import Core, assemble, make_paper_exchange
from quantum_trader.app_signals import choose_signal_source, said_not_trained_on
from quantum_trader.clock import ManualClock, ms_from_utc, on_whole_ms
from quantum_trader.collector import collector_paused, loaded_objects_exempt
from quantum_trader.config import Settings
from quantum_trader.domain import EquitySnapshot, MarketRules
from quantum_trader.errors import QuantumTraderError
from quantum_trader.market.candle_store import TIMEFRAME_MS, CandleStore
from quantum_trader.market.correlations_aside import correlations_aside
from quantum_trader.market.provider import PrecomputedMarket
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import (
    history_bars,
    missing_inputs,
    recorded_model,
    replay_caveats,
    with_universe,
)
from quantum_trader.market.source import resolve_market_data
from quantum_trader.ports import SignalSource
from quantum_trader.record import record
from quantum_trader.replay_quiet import QuietSteps
from quantum_trader.replay_window import said_narrowed, window
from quantum_trader.report.benchmark import buy_and_hold
from quantum_trader.report.chart_inputs import ChartInputs, chart_inputs
from quantum_trader.report.chart_process import ChartProcess, chart_process
from quantum_trader.report.load import ChartRecords, held_for_charts, held_run
from quantum_trader.report.model import BacktestReport, RunContext
from quantum_trader.report.outputs import staged_output
from quantum_trader.report.provenance import Provenance, check_window
from quantum_trader.signals.ensemble import Ensemble, recorded_funding
from quantum_trader.signals.model_set import models_dir_in
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.split import SplitRepository
from quantum_trader.storage.sqlite import SqliteRepository

EQUITY_EVERY = timedelta(hours=1)
DATABASE_FILE = "backtest.db"
UNCHANGED_KEY = ("executor", "unchanged_cycles")
YIELD_EVERY_STEPS = 64  # a few tens of milliseconds of replay between two looks at signals


class BacktestInterrupted(QuantumTraderError):
    """SIGTERM/SIGINT stopped the backtest before it finished; nothing was written."""


@record
class BacktestRequest:
    start: datetime | None = None
    end: datetime | None = None
    symbols: tuple[str, ...] | None = None
    out_dir: Path = Path("reports/backtest")
    allow_in_sample: bool = False
    # Use the machine's other core: the correlations computed, the decisions inserted and the
    # report's charts drawn in processes of their own (the command's choice; the optimizer's
    # backtests already run one per core).
    helper_processes: bool = False


@record
class Replay:
    """A backtest ready to run: the market, the signals, the window and their provenance."""

    store: CandleStore
    feed: ReplayFeed
    source: SignalSource
    start: datetime
    end: datetime
    provenance: Provenance
    rules: Mapping[str, MarketRules]
    missing_inputs: tuple[str, ...] = ()  # optional inputs the data lack (market/setup.py)


async def run_backtest(
    settings: Settings, request: BacktestRequest, stopping: asyncio.Event | None = None
) -> BacktestReport:
    """Run the pipeline from `request.start` to `request.end`; write the report and return it.

    Raise ConfigurationError when the window overlaps the models' training window (unless
    `request.allow_in_sample`), BacktestInterrupted when `stopping` is set before the end.
    """
    started = time.perf_counter()
    # The chart process loads its library from the start (≈ 0.9 s of CPU, which a short run's
    # report would wait for); after a refusal it is ended unused.
    async with chart_process(request.helper_processes) as aside:
        settings, replay = prepare_replay(settings, request)  # refusals before anything is written
        with staged_output(request.out_dir) as work:
            with loaded_objects_exempt():  # collector.py: what is loaded outlives the replay
                replayed = await replay_into(
                    settings,
                    replay,
                    work,
                    stopping or asyncio.Event(),
                    helper_processes=request.helper_processes,
                    aside=aside,
                )
                # The market, its model and the core are no longer needed: release them
                # before the report loads its libraries (the command's peak memory).
                del replay
                gc.collect()
            with collector_paused():  # the report's cycles, a few MB, are left for after it
                return await write_report(replayed, work, started)


def prepare_replay(settings: Settings, request: BacktestRequest) -> tuple[Settings, Replay]:
    """The settings with the universe resolved, and the market, the signals, the window and
    its provenance; or the refusal that says why."""
    data = resolve_market_data(settings)
    if request.symbols is None:
        start_ms = ms_from_utc(request.start) if request.start else None
        settings = with_universe(settings, data, start_ms)
    symbols = request.symbols or settings.market.symbols
    rules = data.rules(symbols, settings.market.timeframe)
    store = data.store()
    # The ensemble's funding feature needs the recorded rates of exactly these symbols.
    not_used: list[str] = []  # trained models there but refused: said in the report
    source = choose_signal_source(settings, recorded_funding(store, symbols), not_used)
    feed = ReplayFeed(store, symbols, settings.market.timeframe, history_bars(settings, source))
    feed.check_ticks(rules)
    start, end = window(feed, request.start, request.end)
    missing = missing_inputs(store, settings, feed, ms_from_utc(start))
    missing += said_narrowed(feed, request.start, request.end)
    # not TRADING, gaps in the window and the warm-ups after them
    missing += replay_caveats(data, feed, start, end, source.history_hours)
    missing += said_not_trained_on(settings, source, symbols) + not_used
    metadata = source.metadata if isinstance(source, Ensemble) else None
    provenance = check_window(
        source.name,
        metadata,
        models_dir_in(settings.data_dir),
        (start, end),
        request.allow_in_sample,
    )
    return settings, Replay(store, feed, source, start, end, provenance, rules, tuple(missing))


async def run_replay(
    settings: Settings, replay: Replay, out: Path, started: float, stopping: asyncio.Event
) -> BacktestReport:
    """Replay `replay` into the database in `out`, then write the report beside it."""
    replayed = await replay_into(settings, replay, out, stopping)
    return await write_report(replayed, out, started)


@record
class Replayed:
    """A replay written into its database, with what the report is computed from: the
    run's context, its records as the database holds them (`held_run`: the ledger still
    encoded, decoded once the replay is released), and the charts' inputs."""

    context: RunContext
    records: SplitRepository  # closed: what it holds in memory is read
    chart_records: ChartRecords
    charts: ChartInputs
    drawn_by: ChartProcess | None  # the process the charts were handed to


async def replay_into(
    settings: Settings,
    replay: Replay,
    out: Path,
    stopping: asyncio.Event,
    *,
    helper_processes: bool = False,
    aside: ChartProcess | None = None,
) -> Replayed:
    """Replay `replay` into the database in `out`; return what the report needs (benchmark
    and candle counts included), so that nothing of the replay is kept. With
    `helper_processes`, the correlations are computed and the decisions inserted by
    processes of their own; with `aside`, it draws the charts while the database is
    written."""
    feed = replay.feed
    rules = replay.rules
    clock = ManualClock(replay.start)
    model = await asyncio.to_thread(
        recorded_model, settings, replay.store, feed, replay.source, rules
    )
    check_stop(stopping)
    start_ms, end_ms = ms_from_utc(replay.start), ms_from_utc(replay.end)
    job = model.correlation_job(start_ms, end_ms) if helper_processes else None
    with correlations_aside(job) as correlations:
        if correlations is not None:
            model.correlations_from(correlations.matrices)
        # The ledger lives in memory (no thread hop per write on the hot path); the audit trail
        # streams to the database in batches (the decisions through a process of their own,
        # with helper processes); the ledger joins it in one transaction at the end.
        database = await SqliteRepository.open(out / DATABASE_FILE)
        repository = SplitRepository(InMemoryRepository(), database)
        try:
            if helper_processes:
                await database.insert_decisions_aside()
            exchange = make_paper_exchange(settings, clock, feed, rules, state_path=None)
            market = PrecomputedMarket(model)
            core = await assemble(
                settings, market, exchange, repository, rules, replay.start, asyncio.Event()
            )
            step = timedelta(milliseconds=TIMEFRAME_MS[settings.market.timeframe])
            quiet = QuietSteps(core, model, exchange, settings.backtest, step, replay.start)
            # No cycle search while replaying (collector.py): its passes were ≈ 4 % of the
            # replay's instructions and found ≈ 36,000 objects in the year's; the caller's
            # collection after the replay frees them.
            with collector_paused():
                steps = await _replay(settings, clock, core, repository, replay, stopping, quiet)
            context = _context(settings, replay, steps)
            held = await held_for_charts(repository)
            charts = chart_inputs(held, context)
            if aside is not None:  # drawn while the ledger is saved and the report built
                await aside.send(charts)
            await repository.save_ledger()
        finally:
            await repository.close()
    return Replayed(context, repository, held, charts, aside)


async def write_report(replayed: Replayed, out: Path, started: float) -> BacktestReport:
    """Write the report of the run replayed into `out` beside its database, the charts taken
    from the chart process `replay_into` handed them to, if any.

    The chart library (matplotlib) and the page's templates are imported here, when the
    report is built, not with this module: a caller that released its replay never holds
    both them and the market in memory.
    """
    from quantum_trader.report.build import build_report
    from quantum_trader.report.publish import write_outputs

    data = await held_run(replayed.records, replayed.chart_records)
    context = dataclasses.replace(replayed.context, elapsed_s=time.perf_counter() - started)
    report = build_report(data, context)
    await write_outputs(report, replayed.charts, out, replayed.drawn_by)
    return report


def _context(settings: Settings, replay: Replay, steps: int) -> RunContext:
    """The run's context; its `elapsed_s` is filled in when the report is written."""
    start_ms, end_ms = ms_from_utc(replay.start), ms_from_utc(replay.end)
    bars = replay.feed.bars
    candles = sum(b.closed_before(end_ms) - b.closed_before(start_ms) for b in bars.values())
    initial = settings.exchange.paper_initial_balance_usdt
    return RunContext(
        start=replay.start,
        end=replay.end,
        symbols=tuple(replay.feed.symbols),
        provenance=replay.provenance,
        sizing_method=settings.sizing.method,
        initial_equity_usdt=initial,
        benchmark=buy_and_hold(bars, replay.start, replay.end, EQUITY_EVERY, initial),
        steps=steps,
        candles=int(candles),
        elapsed_s=0.0,
        missing_inputs=replay.missing_inputs,
    )


async def _replay(
    settings: Settings,
    clock: ManualClock,
    core: Core,
    repository: SplitRepository,
    replay: Replay,
    stopping: asyncio.Event,
    quiet: QuietSteps,
) -> int:
    """Step bar close by bar close: a simulated operator (if configured), the keeper (exits
    the exchange made), then the cycle; equity every hour and at the end. A step that would
    repeat the one before is repeated instead of run (replay_quiet.py; unless
    `backtest.skip_quiet_steps` is off). Cycles unchanged since an earlier one are kept as
    spans (UNCHANGED_KEY), one state entry for the run."""
    step_ms = TIMEFRAME_MS[settings.market.timeframe]
    step = timedelta(milliseconds=step_ms)
    reset_after = settings.backtest.operator_reset_after
    now, steps, next_equity = replay.start, 0, replay.start
    # Each step's instant in ms is counted, not converted (`ms_from_utc`, ≈ 3,700 instructions,
    # asked by the quiet steps once or twice a step): the same from a start of whole ms.
    now_ms = ms_from_utc(now)
    counted = on_whole_ms(now)
    unchanged = UnchangedSpans()
    while now < replay.end:
        if steps % YIELD_EVERY_STEPS == 0:
            # A step need not suspend at all (nothing to write), and SIGTERM/SIGINT set
            # `stopping` from a loop callback that runs only when the loop gets a turn.
            await asyncio.sleep(0)
        check_stop(stopping)
        if now < next_equity and quiet.repeats(now, now_ms):
            summary = await quiet.repeat(now, now_ms, next_equity)
        else:
            before = quiet.before()
            clock.set(now)
            if reset_after is not None:
                await core.governor.reset_operator_halt(now, reset_after)
            if not await quiet.tick_spared(now, now_ms):
                await core.keeper.tick(now)
            if now < next_equity and await quiet.repeats_cycle(before, now, now_ms):
                summary = await quiet.repeat_cycle(now)
            else:
                summary = await core.executor.run_cycle(now)
            quiet.after(before, summary, now, now_ms)
            if now >= next_equity:
                await _snapshot_equity(core, repository, now)
                next_equity = now + EQUITY_EVERY
        unchanged.add(summary.cycle_id, summary.unchanged_since)
        steps += 1
        now += step
        now_ms = now_ms + step_ms if counted else ms_from_utc(now)
    clock.set(replay.end)
    await _snapshot_equity(core, repository, replay.end)
    await repository.save_state(*UNCHANGED_KEY, unchanged.to_dict(quiet))
    return steps


class UnchangedSpans:
    """Runs of consecutive cycles that repeated one full cycle: [since, first, last] cycle
    numbers, columnar so a year of them is one small entry."""

    def __init__(self) -> None:
        self.spans: list[list[int]] = []
        self._since: str | None = None  # the id of the last span's base

    def add(self, cycle_id: str, since: str | None) -> None:
        if since is None:
            return
        number = int(cycle_id[1:])
        last = self.spans[-1] if self.spans else None
        # The base's number is read from its id once a span, not at every cycle.
        if last is not None and since == self._since and last[2] == number - 1:
            last[2] = number
        else:
            self.spans.append([int(since[1:]), number, number])
            self._since = since

    def to_dict(self, quiet: QuietSteps) -> dict[str, object]:
        """The spans, with how many of their cycles were repeated steps (replay_quiet.py)."""
        return {
            "unchanged_cycles": sum(last - first + 1 for _, first, last in self.spans),
            "repeated_steps": quiet.repeated,
            "repeated_with_positions": quiet.repeated_open,
            "repeated_with_new_extremes": quiet.repeated_extremes,
            "repeated_in_stretches": quiet.stretched,
            "repeated_in_priced_stretches": quiet.stretched_priced,
            "priced_stretches_checked_at_once": quiet.ranged,
            "repeated_cycles": quiet.repeated_cycles,
            "spared_ticks": quiet.spared_ticks,
            "spans": self.spans,
        }


def check_stop(stopping: asyncio.Event) -> None:
    if stopping.is_set():
        raise BacktestInterrupted(
            "stopped before the end: nothing was written, the output directory keeps its "
            "previous contents"
        )


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
