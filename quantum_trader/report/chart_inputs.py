"""What the report's charts are drawn from, gathered where the chart library is not loaded: the
backtest's process builds it, and draws it there or hands it to a chart process
(chart_process.py), which must draw the same PNGs from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from quantum_trader.record import record
from quantum_trader.report.curve import Curve
from quantum_trader.report.halts import HaltPeriod, halt_periods
from quantum_trader.report.load import DecisionsOfDay, RunData
from quantum_trader.report.model import BacktestReport, RunContext

CHART_NAMES = ("equity", "pnl_by_symbol", "decisions_by_gate")


@record
class ChartInputs:
    equity: Curve
    benchmark: Curve
    halts: tuple[HaltPeriod, ...]
    end: datetime
    by_symbol: Sequence[dict[str, object]]
    decisions_by_day: Sequence[DecisionsOfDay]
    stamp: str  # the run's sample, carried by every chart's title


def chart_inputs(report: BacktestReport, data: RunData, context: RunContext) -> ChartInputs:
    return ChartInputs(
        equity=data.equity,
        benchmark=context.benchmark,
        halts=tuple(halt_periods(data.governor_events)),
        end=context.end,
        by_symbol=report.by_symbol,
        decisions_by_day=data.decisions_by_day,
        stamp=report.sample,
    )
