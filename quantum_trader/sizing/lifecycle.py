"""Lifecycle stages (SPEC §5.4): how much capital a (symbol, model set) earns from its record.

PAPER (paper book only) → DISCOVERY (base 2 %) → VALIDATION (5 %) → MATURE (10 %); a live stage
whose record degrades falls to DECAY (3 %), or back to PAPER from DISCOVERY (DECAY's base is
larger than DISCOVERY's). The base is the stage's share of the margin a MATURE trade may use, so
the size factor is min(base × confidence, base) ÷ base(MATURE); per-stage totals cap the margin
all of a stage's positions use.

The record's `sharpe` is the Sharpe of the recent R multiples over the window,
mean ÷ std × √n (a per-window figure, so the confidence formula's ÷2 scale applies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np

from quantum_trader.domain import SymbolStats
from quantum_trader.record import record
from quantum_trader.sizing.settings import LifecycleSettings


class Stage(StrEnum):
    PAPER = "PAPER"
    DISCOVERY = "DISCOVERY"
    VALIDATION = "VALIDATION"
    MATURE = "MATURE"
    DECAY = "DECAY"

    @property
    def trades_real_capital(self) -> bool:
        """PAPER trades only in the paper book beside the real one."""
        return self is not Stage.PAPER


@record
class LifecycleRecord:
    """The track record a stage is judged on: closed trades, win rate (0..1), window Sharpe."""

    trades: int
    win_rate: float
    sharpe: float

    @classmethod
    def from_stats(cls, stats: SymbolStats) -> LifecycleRecord:
        return cls(stats.trades, stats.win_rate, window_sharpe(stats.last_20_r))


def window_sharpe(r_multiples: Sequence[float]) -> float:
    """mean ÷ std × √n of the R multiples; 0 with fewer than two or no dispersion."""
    values = np.asarray(r_multiples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return 0.0
    std = float(np.std(values, ddof=1))
    if std == 0:
        return 0.0
    return float(np.mean(values)) / std * float(np.sqrt(values.size))


def confidence_factor(record: LifecycleRecord) -> float:
    """clamp(0.6 · min(sharpe ÷ 2, 1.5) + 0.4 · win_rate, 0.5, 1.5)."""
    raw = 0.6 * min(record.sharpe / 2.0, 1.5) + 0.4 * record.win_rate
    return min(max(raw, 0.5), 1.5)


def base_allocation(stage: Stage, settings: LifecycleSettings) -> float:
    """The stage's base share of equity (PAPER: none)."""
    return {
        Stage.PAPER: 0.0,
        Stage.DISCOVERY: settings.base_discovery,
        Stage.VALIDATION: settings.base_validation,
        Stage.MATURE: settings.base_mature,
        Stage.DECAY: settings.base_decay,
    }[stage]


def stage_cap(stage: Stage, settings: LifecycleSettings) -> float:
    """The most equity all of a stage's positions may use together (PAPER: none)."""
    return {
        Stage.PAPER: 0.0,
        Stage.DISCOVERY: settings.cap_discovery,
        Stage.VALIDATION: settings.cap_validation,
        Stage.MATURE: settings.cap_mature,
        Stage.DECAY: settings.cap_decay,
    }[stage]


def stage_factor(stage: Stage, record: LifecycleRecord, settings: LifecycleSettings) -> float:
    """Size factor in [0, 1] for the real book: min(base × confidence, base) ÷ base(MATURE).

    PAPER gives 0 (the sizer then refuses a real order); size a PAPER symbol's paper-book trade
    with a factor of 1.
    """
    base = base_allocation(stage, settings)
    return min(base * confidence_factor(record), base) / settings.base_mature


def stage_room_usdt(
    stage: Stage,
    margin_by_stage: Mapping[Stage, Decimal],
    equity_usdt: Decimal,
    settings: LifecycleSettings,
) -> Decimal:
    """Margin still available to the stage under its total cap (never negative)."""
    cap = Decimal(repr(stage_cap(stage, settings))) * equity_usdt
    return max(cap - margin_by_stage.get(stage, Decimal(0)), Decimal(0))


def next_stage(stage: Stage, record: LifecycleRecord, settings: LifecycleSettings) -> Stage:
    """The stage a record earns from `stage`: at most one step per evaluation."""
    s = settings
    promotable = record.sharpe >= s.promote_min_sharpe and record.win_rate >= s.promote_min_win_rate
    decaying = record.trades >= s.paper_trades_to_discovery and (
        record.sharpe < s.decay_below_sharpe or record.win_rate < s.decay_below_win_rate
    )
    if stage is Stage.PAPER:
        ready = record.trades >= s.paper_trades_to_discovery
        return Stage.DISCOVERY if ready and promotable else stage
    if stage is Stage.DECAY:
        if record.sharpe < s.paper_below_sharpe:
            return Stage.PAPER
        recovered = record.sharpe >= s.recover_min_sharpe and not decaying
        return Stage.VALIDATION if recovered and promotable else stage
    if decaying:
        return Stage.PAPER if stage is Stage.DISCOVERY else Stage.DECAY
    return _promote(stage, record, promotable, s)


def _promote(
    stage: Stage, record: LifecycleRecord, promotable: bool, s: LifecycleSettings
) -> Stage:
    if (
        stage is Stage.DISCOVERY
        and promotable
        and record.trades >= s.discovery_trades_to_validation
    ):
        return Stage.VALIDATION
    mature_ready = record.trades >= s.validation_trades_to_mature
    if stage is Stage.VALIDATION and promotable and mature_ready:
        return Stage.MATURE if record.sharpe >= s.mature_min_sharpe else stage
    return stage


@record
class LifecycleBook:
    """Stages by key (e.g. "BTC/USDT:USDT|ensemble-v3"); unknown keys start in PAPER."""

    stages: Mapping[str, Stage]

    def stage(self, key: str) -> Stage:
        return self.stages.get(key, Stage.PAPER)

    def advance(
        self, key: str, record: LifecycleRecord, settings: LifecycleSettings
    ) -> LifecycleBook:
        """A new book with `key` moved to the stage its record earns."""
        moved = next_stage(self.stage(key), record, settings)
        return LifecycleBook({**self.stages, key: moved})

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "stages": {k: str(v) for k, v in self.stages.items()}}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> LifecycleBook:
        """Restore a book; an unknown stage name falls back to PAPER (fail closed)."""
        raw = payload.get("stages", {})
        known = {str(s) for s in Stage}
        return cls({str(k): Stage(v) if v in known else Stage.PAPER for k, v in raw.items()})
