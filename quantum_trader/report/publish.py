"""Write a report's files into the (partial) output directory: report.json, charts/*.png and
report.html, one self-contained page (styles inline, charts as inline PNG data; it fetches
nothing)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2

from quantum_trader.report import charts
from quantum_trader.report.halts import halt_periods
from quantum_trader.report.load import RunData
from quantum_trader.report.model import BacktestReport, RunContext

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
CHARTS_DIR = "charts"
STAMP_CLASS = {"IN-SAMPLE": "in-sample", "OUT-OF-SAMPLE": "out-of-sample"}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("quantum_trader.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def write_outputs(report: BacktestReport, data: RunData, context: RunContext, out: Path) -> None:
    """Render the charts and the page and write every file of the report into `out`."""
    pngs = _charts(report, data, context)
    (out / CHARTS_DIR).mkdir(exist_ok=True)
    for name, png in pngs.items():
        (out / CHARTS_DIR / f"{name}.png").write_bytes(png)
    report.outputs = {
        "json": REPORT_JSON,
        "html": REPORT_HTML,
        **{name: f"{CHARTS_DIR}/{name}.png" for name in pngs},
    }
    _write_text(out / REPORT_HTML, render_page(report, pngs))
    report.write(out / REPORT_JSON)


def _charts(report: BacktestReport, data: RunData, context: RunContext) -> dict[str, bytes]:
    periods = halt_periods(data.governor_events)
    figures = {
        "equity": charts.equity_chart(
            data.equity, context.benchmark, periods, context.end, report.sample
        ),
        "pnl_by_symbol": charts.pnl_by_symbol_chart(report.by_symbol, report.sample),
        "decisions_by_gate": charts.decisions_chart(data.decisions_by_day, report.sample),
    }
    return {name: charts.to_png(figure) for name, figure in figures.items()}


def render_page(report: BacktestReport, pngs: dict[str, bytes]) -> str:
    """The report page as one HTML document."""
    return _templates.get_template("report.html.j2").render(
        r=report,
        stamp_class=STAMP_CLASS.get(report.sample, "untrained"),
        charts={name: base64.b64encode(png).decode("ascii") for name, png in pngs.items()},
        cards=_cards(report),
        pct=_pct,
        share=_share,
        money=_money,
        tone=_tone,
    )


def _cards(r: BacktestReport) -> list[tuple[str, str, str]]:
    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    return [
        ("return", _pct(r.return_pct), _tone(r.return_pct)),
        ("buy and hold", _pct(float(r.benchmark["return_pct"])), _tone(r.benchmark["return_pct"])),
        ("final equity (USDT)", _money(r.final_equity_usdt), ""),
        ("max drawdown", f"{r.max_drawdown_pct:.2f} %", ""),
        ("Sharpe / Sortino", f"{ratio(r.sharpe)} / {ratio(r.sortino)}", ""),
        ("Calmar", ratio(r.calmar), ""),
        ("trades (win rate)", f"{r.trades} ({r.win_rate:.0%})", ""),
        ("profit factor", ratio(r.profit_factor), ""),
        ("expectancy", f"{r.expectancy_r:+.3f} R", _tone(r.expectancy_r)),
        ("fees + funding (USDT)", _money(r.fees_usdt + r.funding_usdt), ""),
        ("time not traded", _share(float(r.halts["share_not_traded"])), ""),
        ("open at end", str(r.open_positions), ""),
    ]


def _pct(value: float) -> str:
    return f"{value:+.2f} %" if value else "0.00 %"


def _share(fraction: float) -> str:
    return f"{fraction * 100:.2f} %"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _tone(value: object) -> str:
    number = float(str(value))
    return "pos" if number > 0 else "neg" if number < 0 else ""


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
