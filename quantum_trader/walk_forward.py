"""`quantum-trader walk-forward`: retrain on a rolling window, trade each next block out of
sample, one account and one report over all blocks.

The window is cut into consecutive blocks of `block_days`; a tail shorter than half a block
is traded by the block before it (a model set trained to trade a day or two costs a whole
training and gives a block too short to read; the older models keep it out of sample). Before
each block the ensemble is trained on the `training_days` that end at the block's start
(`ensemble.training_end` = the block's start: only hourly bars closed by then are read), into
out/models/block-NN/. One backtest then runs over the whole window; at every instant the
signals come from the models of the block that instant falls in, so every decision is made by
models that finished learning before its block began. The account, the governor and the
statistics carry across blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from quantum_trader.backtest import Replay, check_stop, run_replay
from quantum_trader.clock import ms_from_utc
from quantum_trader.config import Settings
from quantum_trader.domain import Bars, SignalSeries
from quantum_trader.errors import MarketDataError, ModelArtifactError
from quantum_trader.market.replay import FundingSeries, ReplayFeed
from quantum_trader.market.setup import history_bars, missing_inputs, replay_caveats
from quantum_trader.market.source import resolve_market_data
from quantum_trader.ports import SignalSource
from quantum_trader.record import record
from quantum_trader.replay_window import said_narrowed, window
from quantum_trader.report.model import BacktestReport
from quantum_trader.report.outputs import staged_output
from quantum_trader.report.provenance import SignalPeriod, training_window, walk_forward_provenance
from quantum_trader.signals.ensemble import Ensemble, recorded_funding
from quantum_trader.signals.loading import load_ensemble
from quantum_trader.signals.rules import RuleAgent

MODELS_DIR = "models"


@record
class WalkForwardRequest:
    block_days: int
    training_days: int
    start: datetime | None = None
    end: datetime | None = None
    symbols: tuple[str, ...] | None = None
    out_dir: Path = Path("reports/walk-forward")


@record
class Block:
    """[start, end): traded by models trained on data that ends at `start`."""

    start: datetime
    end: datetime


def plan_blocks(start: datetime, end: datetime, days: int) -> list[Block]:
    """Consecutive blocks of `days` from `start`; the last one ends at `end`, and takes in a
    tail shorter than half a block (at most 1.5 blocks long)."""
    # Longer than the window is the window: no date arithmetic beyond the calendar.
    length = timedelta(days=min(days, (end - start).days + 1))
    blocks, first = [], start
    while first < end:
        blocks.append(Block(first, min(first + length, end)))
        first += length
    if len(blocks) > 1 and (blocks[-1].end - blocks[-1].start) * 2 < length:
        tail = blocks.pop()
        blocks[-1] = Block(blocks[-1].start, tail.end)
    return blocks


def train_block(
    settings: Settings, symbols: Sequence[str], block: Block, training_days: int, out: Path
) -> tuple[str, ...]:
    """Train the ensemble on the `training_days` before `block.start` into `out`; return what
    its training report notes about the data (signals/coverage.py).

    The one place the walk-forward calls training; `trained_at` is the block's start.
    """
    from quantum_trader.signals.training import train_models  # heavy: model libraries

    ensemble = settings.ensemble.model_copy(
        update={"training_end": block.start, "training_days": training_days}
    )
    source_dir = resolve_market_data(settings).directory
    try:
        result = train_models(
            settings.model_copy(update={"ensemble": ensemble}),
            source_dir,
            symbols,
            out,
            block.start,
        )
    except MarketDataError as error:
        raise MarketDataError(
            f"training for the block from {block.start:%Y-%m-%d %H:%M}: {error}"
        ) from error
    return result.report.notes


class BlockwiseSignals:
    """A SignalSource that takes each bar's signal from the models of the block its close
    falls in (bars outside every block: HOLD)."""

    def __init__(self, blocks: Sequence[tuple[Block, SignalSource]]) -> None:
        self._blocks = tuple(blocks)

    @property
    def name(self) -> str:
        return "walk-forward ensemble"

    @property
    def warmup_hours(self) -> int:
        return max(source.warmup_hours for _, source in self._blocks)

    @property
    def history_hours(self) -> int:
        return max(source.history_hours for _, source in self._blocks)

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        """Each block's models over the bars; a bar keeps the signal of its own block."""
        out = {
            symbol: SignalSeries(np.zeros(len(b), np.int8), np.zeros(len(b)), {})
            for symbol, b in bars.items()
        }
        for block, source in self._blocks:
            computed = source.evaluate(bars, tail)
            for symbol, b in bars.items():
                close = b.time_ms + b.timeframe_ms
                rows = (close >= ms_from_utc(block.start)) & (close < ms_from_utc(block.end))
                _copy_rows(out[symbol], computed[symbol], rows)
        return out


def _copy_rows(target: SignalSeries, source: SignalSeries, rows: np.ndarray) -> None:
    target.action[rows] = source.action[rows]
    target.confidence[rows] = source.confidence[rows]
    for model, (action, confidence) in source.votes.items():
        if model not in target.votes:
            target.votes[model] = (np.zeros_like(action), np.zeros_like(confidence))
        target.votes[model][0][rows] = action[rows]
        target.votes[model][1][rows] = confidence[rows]


async def run_walk_forward(
    settings: Settings,
    request: WalkForwardRequest,
    stopping: asyncio.Event | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> BacktestReport:
    """Train before every block, then backtest all blocks in one run; write one report."""
    started = time.perf_counter()
    stopping = stopping or asyncio.Event()
    symbols = request.symbols or settings.market.symbols
    data = resolve_market_data(settings)
    # Training reads 5m or 1h candles whatever market.timeframe says: said before any work,
    # in the words `train` uses, not after the warm-up as an unknown symbol.
    data.require_symbols(symbols, "5m", "1h")
    with staged_output(request.out_dir) as work:
        store = data.store()
        rules = data.rules(symbols, settings.market.timeframe)
        funding = recorded_funding(store, symbols)
        # The ensemble's warm-up depends on its settings alone, not on trained models.
        planned = Ensemble((), settings.ensemble, rules=RuleAgent(settings.signals))
        warm_up = history_bars(settings, planned)
        feed = ReplayFeed(store, symbols, settings.market.timeframe, warm_up)
        feed.check_ticks(rules)
        start, end = window(feed, request.start, request.end)
        missing = (
            *missing_inputs(store, settings, feed, ms_from_utc(start)),
            *said_narrowed(feed, request.start, request.end),
            *replay_caveats(data, feed, start, end, planned.history_hours),
        )
        blocks = plan_blocks(start, end, request.block_days)
        trained, periods = [], []
        for index, block in enumerate(blocks, 1):
            check_stop(stopping)
            progress(f"block {index}/{len(blocks)}: training for {block.start} .. {block.end}")
            relative = Path(MODELS_DIR) / f"block-{index:02d}"
            notes = await asyncio.to_thread(
                train_block, settings, symbols, block, request.training_days, work / relative
            )
            for note in notes:
                progress(f"block {index}/{len(blocks)}: note: {note}")
            ensemble = _load(settings, work / relative, funding)
            trained.append((block, ensemble))
            window_trained = training_window(ensemble.metadata)
            periods.append(SignalPeriod(block.start, block.end, window_trained, str(relative)))
        provenance = walk_forward_provenance(periods)
        progress(f"backtesting {start} .. {end} over {len(blocks)} blocks")
        signals = BlockwiseSignals(trained)
        replay = Replay(store, feed, signals, start, end, provenance, rules, missing)
        return await run_replay(settings, replay, work, started, stopping)


def _load(settings: Settings, models_dir: Path, funding: Mapping[str, FundingSeries]) -> Ensemble:
    ensemble = load_ensemble(models_dir, settings, funding)
    if ensemble is None or len(ensemble.model_names) < settings.ensemble.min_models:
        raise ModelArtifactError(
            f"walk-forward: fewer than ensemble.min_models={settings.ensemble.min_models} "
            f"models trained into {models_dir}"
        )
    return ensemble
