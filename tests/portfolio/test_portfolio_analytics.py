"""Portfolio analytics (SPEC §7): exposure, heat, drawdown, VaR, ES, correlation, 1/Σw²."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import cli
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.app import DATABASE_FILE
from quantum_trader.daemon import ANALYTICS_FILE
from quantum_trader.domain import FloatArray, MarketView, PortfolioView, Position, Side
from quantum_trader.gates.settings import AnalyticsSettings
from quantum_trader.portfolio.analytics import (
    effective_positions,
    pnl_series,
    portfolio_report,
    value_at_risk,
)
from quantum_trader.storage.sqlite import SqliteRepository

BTC, ETH, DOGE = "BTC/USDT:USDT", "ETH/USDT:USDT", "DOGE/USDT:USDT"
SECTORS = {BTC: "Layer1", ETH: "Layer1", DOGE: "Meme"}
NOW = datetime(2025, 10, 1, tzinfo=UTC)
D = Decimal
ANALYTICS = AnalyticsSettings()


def position(symbol: str, side: Side, quantity: str, entry: str, stop: str) -> Position:
    q, e, st_ = D(quantity), D(entry), D(stop)
    return Position(symbol, side, q, e, 3, st_, e, NOW, "e", st_, q)


def portfolio(
    equity: str = "10000",
    day_start: str = "10000",
    peak: str = "10000",
    positions: tuple[Position, ...] = (),
) -> PortfolioView:
    eq = D(equity)
    held = {p.symbol: p for p in positions}
    return PortfolioView(eq, eq, eq, D(0), held, D(10000), D(day_start), D(peak))


def market(
    symbols: tuple[str, ...] = (), returns: dict[str, FloatArray] | None = None
) -> MarketView:
    return MarketView(NOW, dict.fromkeys(symbols, D(100)), {}, {}, returns=returns or {})


def account() -> PortfolioView:
    return portfolio(
        equity="9000",
        day_start="10000",
        peak="12000",
        positions=(
            position(BTC, Side.LONG, quantity="20", entry="100", stop="97"),
            position(ETH, Side.SHORT, quantity="10", entry="100", stop="104"),
            position(DOGE, Side.LONG, quantity="10", entry="100", stop="101"),
        ),
    )


def view() -> MarketView:
    rng = np.random.default_rng(5)
    return market((BTC, ETH, DOGE), returns={s: rng.normal(0, 0.01, 300) for s in (BTC, ETH)})


def test_exposures_heat_and_drawdowns() -> None:
    report = portfolio_report(account(), view(), SECTORS, ANALYTICS)
    assert report.gross_exposure_usdt == pytest.approx(4000)
    assert report.net_exposure_usdt == pytest.approx(2000)
    assert report.exposure_by_symbol_usdt == {BTC: 2000.0, ETH: -1000.0, DOGE: 1000.0}
    assert report.exposure_by_sector_usdt == {"Layer1": 1000.0, "Meme": 1000.0}
    assert report.heat == pytest.approx((60 + 40) / 9000)
    assert report.daily_drawdown == pytest.approx(0.10)
    assert report.drawdown_from_peak == pytest.approx(0.25)
    assert report.effective_positions == pytest.approx(1 / (0.25 + 0.0625 + 0.0625))
    assert report.correlation.symbols == (BTC, ETH)
    assert report.risk.samples == 288


def test_heat_has_no_value_without_equity() -> None:
    """Risk at the stops against an equity ≤ 0 is not 0 heat: it is unknown (null)."""
    held = (position(BTC, Side.LONG, quantity="20", entry="100", stop="97"),)
    report = portfolio_report(portfolio(equity="-1", positions=held), view(), SECTORS, ANALYTICS)
    assert report.heat is None
    assert json.loads(json.dumps(report.to_dict()))["heat"] is None
    assert portfolio_report(portfolio(equity="0"), view(), SECTORS, ANALYTICS).heat == 0.0


async def _empty_database(path: Path) -> None:
    await (await SqliteRepository.open(path)).close()


def test_status_shows_heat_without_equity_as_unknown(tmp_path: Path) -> None:
    held = (position(BTC, Side.LONG, quantity="20", entry="100", stop="97"),)
    report = portfolio_report(portfolio(equity="-1", positions=held), view(), SECTORS, ANALYTICS)
    (tmp_path / ANALYTICS_FILE).write_text(json.dumps(report.to_dict()))
    asyncio.run(_empty_database(tmp_path / DATABASE_FILE))
    done = cli(tmp_path, "status")
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if "heat (risk at stops" in line]
    assert "— (equity ≤ 0)" in row


def test_effective_number_of_positions() -> None:
    assert effective_positions({}) == 0.0
    assert effective_positions({"a": 5.0}) == 1.0
    assert effective_positions({"a": 1.0, "b": -1.0, "c": 1.0, "d": 1.0}) == pytest.approx(4.0)


@given(st.lists(st.floats(-1e6, 1e6).filter(lambda x: abs(x) > 1e-3), min_size=1, max_size=30))
def test_effective_positions_between_one_and_n(values: list[float]) -> None:
    n = effective_positions({str(i): v for i, v in enumerate(values)})
    assert 1.0 - 1e-9 <= n <= len(values) + 1e-9


def test_historical_var_and_expected_shortfall() -> None:
    pnl = np.arange(-50.0, 50.0)
    risk = value_at_risk(pnl, 0.95)
    assert risk.var_historical_usdt == pytest.approx(45.05)
    assert risk.expected_shortfall_usdt == pytest.approx(48.0)


def test_parametric_var_matches_the_normal_quantile() -> None:
    pnl = np.random.default_rng(0).normal(0.0, 10.0, 20_000)
    risk = value_at_risk(pnl, 0.95)
    assert risk.var_parametric_usdt == pytest.approx(16.45, rel=0.03)
    assert risk.var_historical_usdt == pytest.approx(16.45, rel=0.05)
    assert value_at_risk(np.zeros(1), 0.95).var_historical_usdt == 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=200))
def test_expected_shortfall_is_at_least_var(values: list[float]) -> None:
    risk = value_at_risk(np.array(values), 0.95)
    assert risk.expected_shortfall_usdt >= risk.var_historical_usdt - 1e-6


def test_pnl_series_weights_returns_by_exposure() -> None:
    returns = {BTC: np.array([0.01, -0.02]), ETH: np.array([0.5, 0.01, 0.03])}
    pnl = pnl_series({BTC: 1000.0, ETH: -500.0, DOGE: 10.0}, returns, 10)
    np.testing.assert_allclose(pnl, [10 - 5, -20 - 15])


def test_report_is_json() -> None:
    report = portfolio_report(account(), view(), SECTORS, ANALYTICS)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["var_historical_usdt"] >= 0
    assert data["correlation"][BTC][BTC] == 1.0


def test_an_empty_account() -> None:
    empty = portfolio_report(portfolio(), market(), SECTORS, ANALYTICS)
    assert empty.gross_exposure_usdt == 0
    assert empty.effective_positions == 0
    assert empty.risk.var_historical_usdt == 0
