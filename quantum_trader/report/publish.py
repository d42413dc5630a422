"""Write a report's files into the (partial) output directory: report.json, charts/*.png and
report.html, one self-contained page (styles inline, charts as inline PNG data; it fetches
nothing). The chart library is loaded only where charts are drawn."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2

from quantum_trader.report.chart_inputs import CHART_NAMES, ChartInputs, chart_inputs
from quantum_trader.report.chart_process import ASIDE, ChartProcess
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


async def send_charts(
    data: RunData, context: RunContext, aside: ChartProcess | None = None
) -> ChartInputs:
    """The charts' inputs, handed to `aside` (when given) at once: it draws them (ASIDE: all
    of them) while this process builds the report around them."""
    inputs = chart_inputs(data, context)
    if aside is not None:
        await aside.send(inputs)
    return inputs


async def write_outputs(
    report: BacktestReport,
    inputs: ChartInputs,
    out: Path,
    aside: ChartProcess | None = None,
) -> None:
    """Render the charts and the page and write every file of the report into `out`. With
    `aside`, already sent `inputs` (send_charts), its charts are taken from there, the page
    rendered meanwhile around a token for each chart, replaced by its PNG once drawn; any it
    does not give are drawn here."""
    report.outputs = {
        "json": REPORT_JSON,
        "html": REPORT_HTML,
        **{name: f"{CHARTS_DIR}/{name}.png" for name in CHART_NAMES},
    }
    tokens = {name: f"chart-{name}-{secrets.token_hex(8)}" for name in CHART_NAMES}
    page = await asyncio.to_thread(_page, report, tokens)
    await asyncio.to_thread(report.write, out / REPORT_JSON)
    here = [name for name in CHART_NAMES if aside is None or name not in ASIDE]
    pngs = await asyncio.to_thread(_draw_here, inputs, here)
    pngs |= (await aside.answer() if aside is not None else None) or {}
    pngs |= await asyncio.to_thread(_draw_here, inputs, [n for n in CHART_NAMES if n not in pngs])
    (out / CHARTS_DIR).mkdir(exist_ok=True)
    for name in CHART_NAMES:
        (out / CHARTS_DIR / f"{name}.png").write_bytes(pngs[name])
        page = page.replace(tokens[name], base64.b64encode(pngs[name]).decode("ascii"), 1)
    _write_text(out / REPORT_HTML, page)


def _draw_here(inputs: ChartInputs, names: Sequence[str]) -> dict[str, bytes]:
    if not names:
        return {}
    from quantum_trader.report import charts  # the chart library, only where it draws

    return charts.draw(inputs, names)


def _page(report: BacktestReport, charts: Mapping[str, str]) -> str:
    """The page with each chart's base64 PNG as given (or a token standing for it)."""
    return _templates.get_template("report.html.j2").render(
        r=report,
        stamp_class=STAMP_CLASS.get(report.sample, "untrained"),
        charts=charts,
        cards=_cards(report),
        pct=_pct,
        share=_share,
        money=_money,
        tone=_tone,
    )


def _cards(r: BacktestReport) -> list[tuple[str, str, str]]:
    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    expectancy = "—" if r.expectancy_r is None else f"{r.expectancy_r:+.3f} R"
    left_out = r.unknown_r_left_out
    expectancy_label = f"expectancy ({left_out})" if left_out else "expectancy"

    return [
        ("return", _pct(r.return_pct), _tone(r.return_pct)),
        ("buy and hold", _pct(float(r.benchmark["return_pct"])), _tone(r.benchmark["return_pct"])),
        ("final equity (USDT)", _money(r.final_equity_usdt), ""),
        ("max drawdown", f"{r.max_drawdown_pct:.2f} %", ""),
        ("Sharpe / Sortino", f"{ratio(r.sharpe)} / {ratio(r.sortino)}", ""),
        ("Calmar", ratio(r.calmar), ""),
        ("trades (win rate)", f"{r.trades} ({r.win_rate:.0%})", ""),
        ("profit factor", ratio(r.profit_factor), ""),
        (expectancy_label, expectancy, _tone(r.expectancy_r or 0)),
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
