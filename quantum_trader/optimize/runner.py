"""`quantum-trader optimize` end to end: check the request, cut the markets, run the study
(in this process or in K worker processes), then score the best settings once on the holdout
and write the results."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna

from quantum_trader.backtest import BacktestInterrupted
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError, QuantumTraderError
from quantum_trader.market.candle_store import CandleStore
from quantum_trader.market.layout import TIMEFRAME_MS
from quantum_trader.market.replay import ReplayFeed
from quantum_trader.market.setup import history_bars
from quantum_trader.market.source import resolve_market_data
from quantum_trader.optimize.folds import Layout, cut_market, plan_layout
from quantum_trader.optimize.objective import Evaluation, Markets, Score, Stop
from quantum_trader.optimize.results import StudyResults, collect
from quantum_trader.optimize.scratch import make_scratch
from quantum_trader.optimize.space import SEARCHABLE, SearchSpace, apply, load_space
from quantum_trader.optimize.study import (
    INTERRUPTED_EXIT,
    StudyRequest,
    WorkerJob,
    finished,
    open_storage,
    open_study,
    run_worker,
    run_workers,
    split,
)
from quantum_trader.record import record
from quantum_trader.replay_window import narrowed, window
from quantum_trader.signals.rules import RuleAgent
from quantum_trader.stop_signals import on_stop_signals
from quantum_trader.walk_forward import Block

STUDY_DB = "optimize/studies.db"


class OptimizeInterrupted(QuantumTraderError):
    """SIGTERM/SIGINT/SIGHUP stopped the study; what finished is in the store."""


@record
class OptimizeRequest:
    space: Path
    trials: int
    workers: int = 1
    storage: str | None = None
    study: str = "optimize"
    seed: int | None = None
    out: Path = Path("optimize/best.toml")
    config: Path | None = None
    symbols: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    fold_days: int = 14
    folds: int = 3
    holdout_days: int = 14
    score: Score = Score.SHARPE
    multi: bool = False
    progress_bar: bool = False
    min_trades: int = 1


def default_storage(settings: Settings) -> str:
    return f"sqlite:///{(settings.data_dir / STUDY_DB).absolute()}"


def run_optimize(
    settings: Settings, request: OptimizeRequest, progress: Callable[[int, int], None]
) -> StudyResults:
    """Run (or resume, or join) the study to `request.trials` finished trials; score the best
    on the holdout; return the results (the caller writes them)."""
    space = load_space(request.space, settings)
    base = trial_base(settings, request)
    layout = study_layout(base, request)
    stop = Stop()
    # Around the trials too (the workers install their own): a signal while the markets are
    # cut or the holdout scored must still end in the line, exit 1, and the scratch removed.
    handlers = ExitStack()
    handlers.enter_context(on_stop_signals(lambda _signal: stop.request()))
    scratch = make_scratch()
    try:
        evaluation = Evaluation(
            base,
            space,
            layout,
            cut_markets(base, layout, scratch, stop),
            request.score,
            request.multi,
            scratch / "runs",
            request.min_trades,
        )
        study_request = StudyRequest(
            request.storage or default_storage(settings),
            request.study,
            request.trials,
            request.seed,
            request.multi,
            spec(base, space, layout, request),
        )
        storage = open_storage(study_request.storage)
        study = open_study(study_request, storage)
        _run(study, study_request, evaluation, request, progress, stop)
        try:
            return collect(study, evaluation, study_request, stop)
        except BacktestInterrupted:
            raise OptimizeInterrupted(
                f"interrupted while scoring the holdout; {_kept(study, study_request)}: rerun "
                f"the same command (--study {study_request.name}) to score it"
            ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        handlers.close()


def trial_base(settings: Settings, request: OptimizeRequest) -> Settings:
    """The settings every trial starts from: the rule agent, the chosen symbols."""
    symbols = request.symbols or settings.market.symbols
    base = apply(settings, {"signals.source": "rules", "market.symbols": list(symbols)})
    resolve_market_data(base).rules(symbols, base.market.timeframe)  # unknown symbol: exit 2
    return base


def study_layout(base: Settings, request: OptimizeRequest) -> Layout:
    store = resolve_market_data(base).store()
    warm_up = history_bars(base, RuleAgent(base.signals))
    feed = ReplayFeed(store, base.market.symbols, base.market.timeframe, warm_up)
    first, last = window(feed, request.start, request.end)  # an empty one: backtest's line
    return plan_layout(first, last, request.fold_days, request.folds, request.holdout_days)


def cut_markets(base: Settings, layout: Layout, scratch: Path, stop: Stop | None = None) -> Markets:
    """One cut market per block and the holdout; OptimizeInterrupted once `stop` is set."""
    stop = stop or Stop()
    source = resolve_market_data(base).directory
    symbols = base.market.symbols
    blocks = [*layout.blocks, layout.holdout]
    names = [*(f"market-{index}" for index in range(len(layout.blocks))), "market-holdout"]
    markets = []
    for name, block in zip(names, blocks, strict=True):
        if stop.requested:
            raise OptimizeInterrupted(
                "interrupted while the market was cut for the study: no trial ran; rerun the "
                "same command"
            )
        markets.append(cut_market(source, scratch / name, symbols, block.end))
        check_reaches_end(base, markets[-1], block)
    return Markets(tuple(markets[:-1]), markets[-1])


def check_reaches_end(base: Settings, market: Path, block: Block) -> None:
    """ConfigurationError when a symbol's cut recording stops more than a bar before `block`
    ends: a gap that reaches the block's end would shorten (or empty) its replay in every trial
    alike, and each would be pruned as if its settings were refused."""
    feed = ReplayFeed(CandleStore(market), base.market.symbols, base.market.timeframe, 0)
    if feed.end >= block.end - timedelta(milliseconds=TIMEFRAME_MS[feed.timeframe]):
        return  # one bar short is no gap (validation.py): the replay loses that bar only
    (line,) = narrowed(feed, None, block.end)
    raise ConfigurationError(
        [
            f"block {block.start:%Y-%m-%d} .. {block.end:%Y-%m-%d}: {line} (a gap in the "
            "recording reaches the block's end); move --end or change --fold-days so that no "
            f"block ends in the gap, or leave {feed.first_ending} out (--symbols)"
        ]
    )


def spec(
    base: Settings, space: SearchSpace, layout: Layout, request: OptimizeRequest
) -> dict[str, Any]:
    """What makes two commands the same search: a worker joining a study must match it."""
    decisive = base.model_dump(mode="json", include={*SEARCHABLE, "costs", "exchange"})
    decisive["exchange"] = decisive["exchange"]["paper_initial_balance_usdt"]
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "space": space.describe(),
        "layout": layout.describe(),
        "score": str(request.score),
        "multi": request.multi,
        "symbols": list(base.market.symbols),
        "timeframe": base.market.timeframe,
        "settings_sha256": digest,
    }


def _run(
    study: optuna.Study,
    request: StudyRequest,
    evaluation: Evaluation,
    options: OptimizeRequest,
    progress: Callable[[int, int], None],
    stop: Stop,
) -> None:
    remaining = request.trials - finished(study)
    if remaining <= 0:
        return
    shares = split(remaining, options.workers)
    bar = options.progress_bar and len(shares) == 1
    jobs = [WorkerJob(request, evaluation, q, i, bar) for i, q in enumerate(shares)]
    if len(jobs) == 1:
        try:
            run_worker(jobs[0], stop)  # a signal since the command began ends it too
        except BacktestInterrupted:
            raise _interrupted(study, request) from None
        return
    codes = run_workers(jobs, lambda: progress(finished(study), request.trials))
    if INTERRUPTED_EXIT in codes:
        raise _interrupted(study, request)
    if any(codes):
        raise QuantumTraderError(
            f"optimize: a worker process failed (exit codes {codes}); see above"
        )


def _interrupted(study: optuna.Study, request: StudyRequest) -> OptimizeInterrupted:
    return OptimizeInterrupted(
        f"interrupted with {finished(study)} of {request.trials} trials finished; they are "
        f"kept in the store: rerun the same command (--study {request.name}) to resume"
    )


def _kept(study: optuna.Study, request: StudyRequest) -> str:
    done = finished(study)
    if done == 1:
        return f"the 1 finished trial of {request.trials} is kept in the store"
    return f"the {done} finished trials of {request.trials} are kept in the store"
