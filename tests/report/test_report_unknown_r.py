"""A closed trade whose initial risk is unknown (its stop at the entry price) has no R: it is
null in the database and report.json, "—" on the page, and the R figures (expectancy, average
R) are over the trades of known R, saying how many they leave out (was: R 0.0, a break-even
trade in every R figure)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from position_builders import ENTRY, NOW, position
from report_builders import summary_text

from quantum_trader.domain import ClosedTrade, EquitySnapshot, ExitReason
from quantum_trader.keeper.booking import TradeDraft, finish_trade, reduced
from quantum_trader.report.build import build_report
from quantum_trader.report.chart_inputs import chart_inputs
from quantum_trader.report.curve import Curve
from quantum_trader.report.load import load_run
from quantum_trader.report.model import BacktestReport, RunContext
from quantum_trader.report.provenance import Provenance, Sample
from quantum_trader.report.publish import write_outputs
from quantum_trader.storage.sqlite import SqliteRepository

QUANTITY = Decimal("0.2")
RISK_PER_UNIT = ENTRY * Decimal("0.03")  # the builder's stop: 3 % below the entry


def closed(exit_price: Decimal, hours: int, stop: Decimal | None = None) -> ClosedTrade:
    """A long closed at `exit_price` by the keeper's booking, without fees or funding."""
    opened = NOW + timedelta(hours=hours)
    held = position(stop=stop, quantity=QUANTITY, opened_at=opened)
    draft = reduced(held, QUANTITY, exit_price, Decimal(0), ExitReason.TP_HIT, opened)
    assert isinstance(draft, TradeDraft)
    return finish_trade(draft, Decimal(0))


async def report_of(trades: list[ClosedTrade], out: Path) -> BacktestReport:
    """The backtest report of `trades`, written into `out` through a real database."""
    database = await SqliteRepository.open(out / "backtest.db")
    for trade in trades:
        await database.record_closed_trade(trade)
    for hour, equity in ((0, 10_000), (24, 10_000)):
        await database.record_equity(
            EquitySnapshot(
                NOW + timedelta(hours=hour), Decimal(equity), Decimal(equity), Decimal(0), 0
            )
        )
    await database.close()
    data = await load_run(out / "backtest.db")
    end = NOW + timedelta(hours=24)
    context = RunContext(
        NOW, end, ("BTC/USDT:USDT",), Provenance("rules", Sample.UNTRAINED), "fixed_fractional",
        10_000.0, Curve.of([NOW, end], [10_000.0, 10_000.0]), 288, 288, 1.0,
    )  # fmt: skip
    report = build_report(data, context)
    await write_outputs(report, chart_inputs(data, context), out)
    return report


async def test_a_trade_of_unknown_initial_risk_does_not_move_the_r_figures(
    tmp_path: Path,
) -> None:
    win = closed(ENTRY + 2 * RISK_PER_UNIT, 1)  # +2 R
    loss = closed(ENTRY - RISK_PER_UNIT, 2)  # -1 R
    unknown = closed(ENTRY + RISK_PER_UNIT, 3, stop=ENTRY)  # a gain; its risk is unknown
    assert (win.r_multiple, loss.r_multiple, unknown.r_multiple) == (2.0, -1.0, None)
    (tmp_path / "known").mkdir()
    (tmp_path / "all").mkdir()
    known = await report_of([win, loss], tmp_path / "known")
    report = await report_of([win, loss, unknown], tmp_path / "all")

    assert report.expectancy_r == report.average_r == known.expectancy_r == 0.5  # was 0.333
    assert report.trades == 3  # counted where R is not needed
    assert (report.unknown_r_trades, known.unknown_r_trades) == (1, 0)
    written = json.loads((tmp_path / "all" / "report.json").read_text(encoding="utf-8"))
    assert [t["r_multiple"] for t in written["trade_list"]] == [2.0, -1.0, None]
    assert written["expectancy_r"] == 0.5
    assert written["unknown_r_trades"] == 1
    assert written["trade_statistics"]["unknown_r_trades"] == 1
    (row,) = written["by_symbol"]
    assert (row["expectancy_r"], row["unknown_r_trades"]) == (0.5, 1)
    assert "+0.500 R (1 trade of unknown R left out)" in summary_text(report, tmp_path / "all")
    assert "left out" not in summary_text(known, tmp_path / "known")
    page = (tmp_path / "all" / "report.html").read_text(encoding="utf-8")
    assert "expectancy (1 trade of unknown R left out)" in page
    assert "<td>—</td></tr>" in page  # the trade list's R cell of the unknown trade


async def test_a_run_whose_trades_all_have_an_unknown_r_has_no_r_figures(tmp_path: Path) -> None:
    report = await report_of([closed(ENTRY + RISK_PER_UNIT, 1, stop=ENTRY)], tmp_path)
    written = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert (written["expectancy_r"], written["average_r"]) == (None, None)  # not NaN, not 0.0
    assert written["by_symbol"][0]["expectancy_r"] is None
    assert "— (1 trade of unknown R left out)" in summary_text(report, tmp_path)
