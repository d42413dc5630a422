"""A trial's objective: the drawn settings, backtested block by block out of sample.

Each block is one `run_backtest` of the daemon's pipeline over that block alone, on the market
cut at the block's end (folds.py), with a fresh paper account of
`exchange.paper_initial_balance_usdt`. The signals come from the rule agent: nothing is trained
per trial, so a block's score depends only on the settings and the bars up to its end.

Scores (higher is better), per block:
- `sharpe`: the report's annualized Sharpe ratio of day-end equity; 0 when it is undefined
  (no change in equity: no trade).
- `return_over_drawdown`: return % over max drawdown %, the drawdown floored at 1 % so a block
  that barely moved cannot score without bound.
The single objective is the mean over the folds' out-of-sample blocks. The multi-objective
study (NSGA-II) maximizes the mean out-of-sample return % and minimizes the mean out-of-sample
max drawdown %.

Because a block without trades scores 0, settings that never trade would beat any that lose:
a trial whose out-of-sample blocks together hold fewer than `min_trades` trades (freqtrade's
hyperopt `--min-trades`) is pruned once its last fold is scored, its count recorded as
`too_few_trades`. Pruned, it is never Optuna's best, TPE ranks it below every complete trial,
and NSGA-II and the median pruner read complete trials only; results.py chooses from the
recorded folds again (eligibility.py), so the rule holds for trials stored before it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Any

import optuna

from quantum_trader.backtest import BacktestRequest, run_backtest
from quantum_trader.config import Settings
from quantum_trader.errors import ConfigurationError
from quantum_trader.optimize.folds import Layout
from quantum_trader.optimize.space import Parameter, Scalar, SearchSpace, apply
from quantum_trader.record import record
from quantum_trader.report.model import BacktestReport
from quantum_trader.walk_forward import Block

DRAWDOWN_FLOOR_PCT = 1.0
TOO_FEW_TRADES = "too_few_trades"  # a trial's user attribute: its out-of-sample trades


class Score(StrEnum):
    SHARPE = "sharpe"
    RETURN_OVER_DRAWDOWN = "return_over_drawdown"


@record
class BlockResult:
    """One block's backtest: its score and the figures it comes from."""

    start: str
    end: str
    score: float
    return_pct: float
    max_drawdown_pct: float
    sharpe: float | None
    trades: int

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@record
class Markets:
    """The market directory each block reads: `blocks[i]` cut at block i's end."""

    blocks: tuple[Path, ...]
    holdout: Path


@record
class Evaluation:
    """Everything a worker needs to score a trial (picklable: it crosses to worker processes)."""

    base: Settings
    space: SearchSpace
    layout: Layout
    markets: Markets
    score: Score
    multi: bool
    scratch: Path
    min_trades: int


def block_score(report: BacktestReport, score: Score) -> float:
    if score is Score.SHARPE:
        return report.sharpe if report.sharpe is not None else 0.0
    return report.return_pct / max(report.max_drawdown_pct, DRAWDOWN_FLOOR_PCT)


def run_block(
    settings: Settings,
    market: Path,
    block: Block,
    score: Score,
    scratch: Path,
    stop: Stop | None = None,
) -> BlockResult:
    """Backtest `settings` over `block` on the market in `market`; the outputs are discarded.

    A set `stop` (SIGTERM/SIGINT) ends the backtest at its next step: BacktestInterrupted."""
    settings = settings.model_copy(
        update={"market": settings.market.model_copy(update={"replay_dir": market})}
    )
    out = scratch / f"block-{block.start:%Y%m%d}"
    request = BacktestRequest(
        start=block.start, end=block.end, symbols=settings.market.symbols, out_dir=out
    )
    try:
        report = asyncio.run((stop or Stop()).backtest(settings, request))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if report.start != block.start.isoformat():
        raise ConfigurationError(
            [
                f"block {block.start.isoformat()}: these settings need more warm-up than the "
                f"data before it holds (the backtest could only start at {report.start})"
            ]
        )
    return BlockResult(
        start=block.start.isoformat(),
        end=block.end.isoformat(),
        score=block_score(report, score),
        return_pct=report.return_pct,
        max_drawdown_pct=report.max_drawdown_pct,
        sharpe=report.sharpe,
        trades=report.trades,
    )


class Stop:
    """A stop asked for by a signal handler, seen by the backtest running at the time (its
    stopping event is set through the loop's thread-safe wake-up, never from inside the
    handler) and by every block after it."""

    def __init__(self) -> None:
        self._requested = False
        self._waiting: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        self._requested = True
        waiting = self._waiting
        if waiting is not None:
            waiting[0].call_soon_threadsafe(waiting[1].set)

    async def backtest(self, settings: Settings, request: BacktestRequest) -> BacktestReport:
        """`run_backtest`, stopped at its next step once a stop is requested."""
        stopping = asyncio.Event()
        self._waiting = (asyncio.get_running_loop(), stopping)
        if self._requested:
            stopping.set()
        try:
            return await run_backtest(settings, request, stopping)
        finally:
            self._waiting = None


def suggest(trial: optuna.trial.BaseTrial, parameter: Parameter) -> Scalar:
    """Draw one parameter from the trial's sampler."""
    if parameter.kind == "categorical":
        drawn = trial.suggest_categorical(parameter.path, list(parameter.choices))
        assert drawn is not None  # the choices hold no None (space.py)
        return drawn
    assert parameter.low is not None
    assert parameter.high is not None
    if parameter.kind == "int":
        step = int(parameter.step or 1)
        return trial.suggest_int(
            parameter.path, int(parameter.low), int(parameter.high), step=step, log=parameter.log
        )
    return trial.suggest_float(
        parameter.path, parameter.low, parameter.high, step=parameter.step, log=parameter.log
    )


class Objective:
    """Optuna's objective: draw, check, then score block 0 (in-sample of fold 1) and each fold's
    out-of-sample block in time order, reporting each fold to the pruner."""

    def __init__(self, evaluation: Evaluation, stop: Stop | None = None) -> None:
        self._evaluation = evaluation
        self._stop = stop or Stop()

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | Sequence[float]:
        e = self._evaluation
        trial.set_user_attr("worker_pid", os.getpid())
        drawn = {p.path: suggest(trial, p) for p in e.space.parameters}
        try:
            settings = apply(e.base, drawn)
            return self._folds(trial, settings)
        except ConfigurationError as error:  # a combination the settings' rules refuse
            trial.set_user_attr("refused", "; ".join(error.problems))
            raise optuna.TrialPruned(error.problems[0]) from None

    def _folds(self, trial: optuna.trial.BaseTrial, settings: Settings) -> float | Sequence[float]:
        e = self._evaluation
        scratch = e.scratch / f"trial-{trial.number}"
        blocks = e.layout.blocks
        previous = self._block(settings, 0, scratch)
        folds: list[dict[str, Any]] = []
        for index in range(1, len(blocks)):
            oos = self._block(settings, index, scratch)
            folds.append(fold_record(index, previous, oos))
            trial.set_user_attr("folds", folds)
            previous = oos
            if not e.multi:  # Optuna prunes single-objective trials only
                trial.report(oos.score, step=index)
                # After the last fold there is nothing left to save: the trial completes.
                if index < len(blocks) - 1 and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {index}: {oos.score:.4f}")
        trades = oos_trades(folds)
        if trades < e.min_trades:
            trial.set_user_attr(TOO_FEW_TRADES, trades)
            raise optuna.TrialPruned(
                f"{trades} trades out of sample, fewer than --min-trades {e.min_trades}"
            )
        return objective_values(folds, e.multi)

    def _block(self, settings: Settings, index: int, scratch: Path) -> BlockResult:
        e = self._evaluation
        block = e.layout.blocks[index]
        return run_block(settings, e.markets.blocks[index], block, e.score, scratch, self._stop)


def fold_record(index: int, in_sample: BlockResult, out_of_sample: BlockResult) -> dict[str, Any]:
    return {
        "fold": index,
        "in_sample": in_sample.describe(),
        "out_of_sample": out_of_sample.describe(),
        "gap": in_sample.score - out_of_sample.score,
    }


def oos_trades(folds: Sequence[dict[str, Any]]) -> int:
    """The trades of the folds' out-of-sample blocks together."""
    return sum(int(f["out_of_sample"]["trades"]) for f in folds)


def objective_values(folds: Sequence[dict[str, Any]], multi: bool) -> float | Sequence[float]:
    """Mean out-of-sample score; or (mean return %, mean max drawdown %) for NSGA-II."""
    oos = [f["out_of_sample"] for f in folds]
    if multi:
        return (
            statistics.fmean(o["return_pct"] for o in oos),
            statistics.fmean(o["max_drawdown_pct"] for o in oos),
        )
    return statistics.fmean(o["score"] for o in oos)


ProgressFn = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
