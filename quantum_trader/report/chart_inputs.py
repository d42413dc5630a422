"""What the report's charts are drawn from, gathered where the chart library is not loaded: the
backtest's process builds it from the run's records as soon as the replay ends, before the
ledger is saved and the report built, and draws it there or hands it to a chart process
(chart_process.py), which must draw the same PNGs from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from quantum_trader.record import record
from quantum_trader.report.curve import Curve
from quantum_trader.report.halts import HaltPeriod, halt_periods
from quantum_trader.report.load import ChartRecords, DecisionsOfDay, RunData
from quantum_trader.report.model import RunContext
from quantum_trader.report.statistics import group_table, trade_table

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


def chart_inputs(data: RunData | ChartRecords, context: RunContext) -> ChartInputs:
    """The charts' inputs; `by_symbol` is the report's table of the same name."""
    return ChartInputs(
        equity=data.equity,
        benchmark=context.benchmark,
        halts=tuple(halt_periods(data.governor_events)),
        end=context.end,
        by_symbol=group_table(trade_table(data.trades), "symbol"),
        decisions_by_day=data.decisions_by_day,
        stamp=context.provenance.sample.value,
    )
