"""The backtest's summary on the terminal: the stamp, the signal source and its training
window, the key numbers, the halts with their times and reasons, and where the files are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from quantum_trader.report.model import BacktestReport

MAX_HALT_LINES = 30


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_backtest_summary(console: Console, report: BacktestReport, out: Path) -> None:
    """Print the summary of `report`, whose files are in `out`."""
    stamp_style = "bold white on red" if report.in_sample else "bold"
    console.print(f"[{stamp_style}] {report.sample} [/{stamp_style}]")
    table = Table(title=f"Backtest {report.start[:10]} → {report.end[:10]}", show_header=False)
    for name, value in _rows(report, out):
        table.add_row(name, value)
    console.print(table)
    _print_halts(console, report)


def _in_r(value: float | None, left_out: str = "") -> str:
    shown = "—" if value is None else f"{value:+.3f} R"
    return shown + (f" ({left_out})" if left_out else "")


def _rows(r: BacktestReport, out: Path) -> list[tuple[str, str]]:
    halts = r.halts
    return [
        ("sample", r.sample),
        ("signals", str(r.provenance["summary"])),
        ("sizing", r.sizing_method),
        *(("missing input", line) for line in r.missing_inputs),
        ("symbols", ", ".join(r.symbols)),
        ("equity", f"{r.initial_equity_usdt:,.2f} → {r.final_equity_usdt:,.2f} USDT"),
        ("return (buy and hold)", f"{r.return_pct:.2f} % ({r.benchmark['return_pct']:.2f} %)"),
        ("trades (win rate)", f"{r.trades} ({r.win_rate:.1%}), {r.open_positions} open at end"),
        ("PnL / fees / funding", f"{r.pnl_usdt:,.2f} / {r.fees_usdt:,.2f} / {r.funding_usdt:,.2f}"),
        (
            "profit factor / expectancy",
            f"{_ratio(r.profit_factor)} / {_in_r(r.expectancy_r, r.unknown_r_left_out)}",
        ),
        (
            "Sharpe / Sortino / Calmar",
            f"{_ratio(r.sharpe)} / {_ratio(r.sortino)} / {_ratio(r.calmar)}",
        ),
        ("max drawdown", f"{r.max_drawdown_pct:.2f} %"),
        (
            "time not traded (halts)",
            f"{halts['share_not_traded']:.1%} in {len(halts['periods'])} halt period(s)",
        ),
        ("exits", ", ".join(f"{k} {v}" for k, v in sorted(r.exits_by_reason.items()))),
        ("reconciled with fills", "yes" if r.reconciled else f"NO: {r.reconciliation_errors[:3]}"),
        ("speed", f"{r.candles:,} candles in {r.elapsed_s:.2f} s ({r.candles_per_s:,.0f}/s)"),
        ("report", f"{out / 'report.html'} (and report.json, charts/, backtest.db)"),
    ]


def _print_halts(console: Console, report: BacktestReport) -> None:
    """Every halt period on one line (time, length, state, cause, how it ended); past
    MAX_HALT_LINES, the breakers' totals and the operator-level halts, the rest in the page."""
    halts = report.halts
    periods = halts["periods"]
    if not halts["events"]:
        console.print("Halts: none (no breaker tripped).")
        return
    console.print(
        f"Halts: {halts['share_not_traded']:.1%} of the time not traded, "
        f"{len(periods)} period(s) without new trades"
    )
    for row in halts["by_breaker"]:
        console.print(
            f"  {row['breaker']}: {row['decision']}, {row['trips']} trip(s), "
            f"{row['hours']:.1f} h in force",
            soft_wrap=True,
        )
    shown = periods if len(periods) <= MAX_HALT_LINES else _operator_level(periods)
    for period in shown:
        console.print(_period_line(period), soft_wrap=True, markup=False)
    for reset in halts["operator_resets"]:
        console.print(f"  reset {reset['time'][:16]} by {reset['by']}", soft_wrap=True)
    if len(shown) < len(periods):
        console.print(
            f"  {len(periods) - len(shown)} shorter halt(s) with times and reasons: "
            "report.html and report.json (halts)"
        )


def _operator_level(periods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Halts an operator had to end, and the longest others, in time order."""
    longest = sorted(periods, key=lambda p: -float(p["hours"]))[: MAX_HALT_LINES // 2]
    chosen = {id(p) for p in longest} | {
        id(p) for p in periods if "reset" in p["ended_by"] or p["end"] is None
    }
    return [p for p in periods if id(p) in chosen]


def _period_line(period: dict[str, Any]) -> str:
    end = (period["end"] or "end of backtest")[:16].replace("T", " ")
    return (
        f"  {period['start'][:16].replace('T', ' ')} → {end} ({period['hours']:.1f} h) "
        f"{period['worst_state']}: {_causes(period['causes'])} — {period['ended_by']}"
    )


def _causes(causes: list[str]) -> str:
    """Each breaker's first trip, and how many more there were: a long halt gathers every
    trip while it lasts (one that ran to the end of a year, dozens of volatility spikes),
    which the page and report.json list in full."""
    first: dict[str, str] = {}
    for cause in causes:
        first.setdefault(cause.split(" (", 1)[0], cause)
    shown = "; ".join(first.values())
    more = len(causes) - len(first)
    return f"{shown}; {more} more trip(s) of these (report.html)" if more else shown
