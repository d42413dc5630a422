"""The report's charts (matplotlib, no GUI): equity and drawdown against the benchmark with the
halts shaded, PnL by symbol, and the gates' denials over time. Each is a PNG; the page inlines
the same bytes. Every chart carries the run's sample stamp in its title."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime

import matplotlib as mpl
import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from quantum_trader.report.chart_inputs import CHART_NAMES, ChartInputs
from quantum_trader.report.curve import Curve, drawdown
from quantum_trader.report.halts import HaltPeriod
from quantum_trader.report.load import DecisionsOfDay

DPI = 110
HALT_COLOURS = {"HALTED": "#d62728", "REDUCING": "#ff7f0e"}
GATE_COLOURS = {
    "signal_filter": "#c7c7c7",
    "orchestrator": "#9467bd",
    "balancer": "#1f77b4",
    "governor": "#d62728",
    "sizer": "#8c564b",
    "risk_guard": "#e377c2",
    "execution": "#7f7f7f",
}
WEEKLY_AFTER_DAYS = 120

mpl.rcParams["svg.hashsalt"] = "quantum-trader"  # reproducible output


def to_png(figure: Figure) -> bytes:
    """The PNG savefig(dpi=DPI) writes, byte for byte, drawn once: for a figure with a layout
    engine, savefig draws it twice (a dry run that lays it out, then the picture); drawn
    straight onto an Agg canvas, the figure lays itself out in the one draw."""
    figure.dpi = DPI
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": None})  # type: ignore[no-untyped-call]
    return buffer.getvalue()


def _date_axis(axes: Axes) -> None:
    locator = mdates.AutoDateLocator(maxticks=10)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _title(figure: Figure, text: str, stamp: str) -> None:
    colour = "#b00020" if stamp == "IN-SAMPLE" else "#333333"
    figure.suptitle(f"{text}  [{stamp}]", color=colour, fontsize=12, fontweight="bold")


def _shade(axes: Axes, periods: Sequence[HaltPeriod], bands: Sequence[tuple[float, float]]) -> None:
    """Each halt as a full-height band: one collection for all of them (a year with a daily
    operator reset has hundreds, and a patch each made this most of the chart's time)."""
    if not periods:
        return
    axes.add_collection(
        PolyCollection(
            [[(x0, 0), (x0, 1), (x1, 1), (x1, 0)] for x0, x1 in bands],
            facecolors=[HALT_COLOURS.get(p.worst_state, "#ff7f0e") for p in periods],
            alpha=0.15,
            linewidths=0,
            transform=axes.get_xaxis_transform(),  # x in dates, y across the whole axes
        ),
        autolim=False,
    )


def _bands(periods: Sequence[HaltPeriod], end: datetime) -> list[tuple[float, float]]:
    """The halts' (start, end) as chart dates, converted in one call rather than one per
    date: the same numbers, as the times are all UTC (a period's hours subtract them)."""
    edges = [p.start for p in periods] + [p.end or end for p in periods]
    numbers = [float(x) for x in mdates.date2num(edges)] if edges else []  # type: ignore[no-untyped-call]
    return list(zip(numbers[: len(periods)], numbers[len(periods) :], strict=True))


def equity_chart(
    equity: Curve,
    benchmark: Curve,
    periods: Sequence[HaltPeriod],
    end: datetime,
    stamp: str,
) -> Figure:
    """Equity and the benchmark (USDT) above, drawdowns (%) below; halts shaded in both. The
    times are given as matplotlib turns times into chart dates (UTC without a zone, to the
    microsecond); zoned times it converts one by one, at every call."""
    figure = Figure(figsize=(11, 6.2), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    times, benchmark_times = equity.times, benchmark.times
    top.plot(times, equity.values, color="#1f77b4", linewidth=1.4, label="strategy")
    top.plot(
        benchmark_times,
        benchmark.values,
        color="#7f7f7f",
        linewidth=1.0,
        linestyle="--",
        label="buy and hold (same symbols, equal weight)",
    )
    top.set_ylabel("equity (USDT)")
    handles, _ = top.get_legend_handles_labels()
    handles += [
        Patch(color=colour, alpha=0.3, label=f"{state}: no new trades")
        for state, colour in HALT_COLOURS.items()
        if any(p.worst_state == state for p in periods)
    ]
    top.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    top.grid(alpha=0.3)
    dd = drawdown(equity.values) * 100
    bottom.fill_between(times, dd, 0, color="#d62728", alpha=0.35, linewidth=0)
    bottom.plot(
        benchmark_times,
        drawdown(benchmark.values) * 100,
        color="#7f7f7f",
        linewidth=0.8,
        linestyle="--",
    )
    bottom.set_ylabel("drawdown (%)")
    bottom.grid(alpha=0.3)
    bands = _bands(periods, end)
    for axes in (top, bottom):
        _shade(axes, periods, bands)
    _date_axis(bottom)
    _title(figure, "Equity and drawdown", stamp)
    return figure


def pnl_by_symbol_chart(by_symbol: Sequence[dict[str, object]], stamp: str) -> Figure:
    """Net PnL per symbol (fees and funding included), with its number of trades."""
    rows = sorted(by_symbol, key=lambda r: float(str(r["pnl_usdt"])))
    figure = Figure(figsize=(11, 0.45 * max(len(rows), 3) + 1.4), layout="constrained")
    axes = figure.subplots()
    names = [str(r["symbol"]).split(":")[0] for r in rows]
    values = [float(str(r["pnl_usdt"])) for r in rows]
    bars = axes.barh(names, values, color=["#2ca02c" if v >= 0 else "#d62728" for v in values])
    labels = [f"{v:,.0f} ({r['trades']} trades)" for v, r in zip(values, rows, strict=True)]
    axes.bar_label(bars, labels=labels, fontsize=8, padding=3)
    axes.axvline(0, color="#333333", linewidth=0.8)
    axes.set_xlabel("net PnL (USDT)")
    axes.margins(x=0.25)
    axes.grid(axis="x", alpha=0.3)
    _title(figure, "PnL by symbol", stamp)
    return figure


def decisions_chart(by_day: Sequence[DecisionsOfDay], stamp: str) -> Figure:
    """Candidates denied per gate (stacked bars) and orders placed (line), per day or week."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    axes = figure.subplots()
    table = pd.DataFrame(by_day, columns=["day", "gate", "approved", "decisions"])
    table = table.assign(day=pd.to_datetime(table["day"], utc=True))
    denied = table[table["approved"] == 0].pivot_table(
        index="day", columns="gate", values="decisions", aggfunc="sum", fill_value=0
    )
    placed = (
        table[(table["approved"] == 1) & (table["gate"] == "execution")]
        .groupby("day")["decisions"]
        .sum()
    )
    days = (table["day"].max() - table["day"].min()).days if len(table) else 0
    rule = "W-MON" if days > WEEKLY_AFTER_DAYS else "D"
    denied, placed = denied.resample(rule).sum(), placed.resample(rule).sum()
    width = 6.0 if rule == "W-MON" else 0.85
    bottom = pd.Series(0.0, index=denied.index)
    for gate in [g for g in GATE_COLOURS if g in denied.columns]:
        axes.bar(
            denied.index,
            denied[gate],
            width,
            bottom=bottom,
            label=f"denied by {gate}",
            color=GATE_COLOURS[gate],
            align="edge",
        )
        bottom += denied[gate]
    axes.set_ylabel(f"candidates denied per {'week' if rule == 'W-MON' else 'day'}")
    _date_axis(axes)
    right = axes.twinx()
    right.plot(
        placed.index,
        placed.to_numpy(),
        color="#000000",
        marker=".",
        linewidth=1.0,
        label="orders placed",
    )
    right.set_ylabel("orders placed")
    right.set_ylim(bottom=0)
    lines, labels = axes.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    axes.legend(
        lines + more,
        labels + more_labels,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    _title(figure, "Decisions by gate over time", stamp)
    return figure


def draw(inputs: ChartInputs, names: Sequence[str] = CHART_NAMES) -> dict[str, bytes]:
    """The report's charts named in `names` as PNG bytes, by name, in that order."""
    drawers: dict[str, Callable[[], Figure]] = {
        "equity": lambda: equity_chart(
            inputs.equity, inputs.benchmark, inputs.halts, inputs.end, inputs.stamp
        ),
        "pnl_by_symbol": lambda: pnl_by_symbol_chart(inputs.by_symbol, inputs.stamp),
        "decisions_by_gate": lambda: decisions_chart(inputs.decisions_by_day, inputs.stamp),
    }
    return {name: to_png(drawers[name]()) for name in names}
