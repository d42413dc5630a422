"""The report's risk-adjusted ratios (report/statistics.py, NumPy) against values worked out by
hand for return series built so that their mean, deviation and growth are known exactly.

A series of k periods of +x and k of y (y < 0) has mean (x + y) / 2, sample standard deviation
|x - y| / 2 · √(2k / (2k - 1)), downside deviation |y| / √2 (the root mean square of the
losses, gains counted as 0) and growth ((1 + x)(1 + y))^k. Bound: 1e-12 relative, a few
floating-point roundings of sums over at most a few hundred terms.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from quantum_trader.domain import ClosedTrade, ExitReason, Side
from quantum_trader.report.curve import Curve
from quantum_trader.report.statistics import (
    annual_return,
    annual_volatility,
    daily_returns,
    durations,
    equity_statistics,
    monthly_returns,
    sharpe_ratio,
    sortino_ratio,
    trade_statistics,
    trade_table,
)

YEAR = 365
X, Y = 0.02, -0.01


def alternating(k: int) -> np.ndarray:
    return np.array([X, Y] * k)


@pytest.mark.parametrize("k", [1, 3, 50, 182])
def test_sharpe_is_the_mean_over_the_sample_deviation_times_root_periods(k: int) -> None:
    deviation = abs(X - Y) / 2 * math.sqrt(2 * k / (2 * k - 1))
    expected = (X + Y) / 2 / deviation * math.sqrt(YEAR)
    assert sharpe_ratio(alternating(k), YEAR) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3, 50, 182])
def test_sortino_divides_by_the_root_mean_square_of_the_losses(k: int) -> None:
    downside = abs(Y) / math.sqrt(2) * math.sqrt(YEAR)
    expected = (X + Y) / 2 * YEAR / downside
    assert sortino_ratio(alternating(k), YEAR) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3, 50, 182])
def test_annual_return_compounds_the_growth_over_the_years_covered(k: int) -> None:
    growth = ((1 + X) * (1 + Y)) ** k
    expected = growth ** (YEAR / (2 * k)) - 1
    assert annual_return(alternating(k), YEAR) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3, 50, 182])
def test_volatility_is_the_sample_deviation_times_root_periods(k: int) -> None:
    expected = abs(X - Y) / 2 * math.sqrt(2 * k / (2 * k - 1)) * math.sqrt(YEAR)
    assert annual_volatility(alternating(k), YEAR) == pytest.approx(expected, rel=1e-12)


def test_a_year_of_daily_returns_that_doubles_the_account_is_a_100_pct_annual_return() -> None:
    daily = np.full(YEAR, 2 ** (1 / YEAR) - 1)
    assert annual_return(daily, YEAR) == pytest.approx(1.0, rel=1e-12)


def test_ratios_are_undefined_without_two_returns_or_without_dispersion_or_losses() -> None:
    one = np.array([0.01])
    assert all(math.isnan(f(one, YEAR)) for f in (sharpe_ratio, sortino_ratio, annual_volatility))
    assert math.isnan(annual_return(np.array([]), YEAR))
    constant = np.full(10, 0.01)
    assert sharpe_ratio(constant, YEAR) == math.inf  # no dispersion: not a number near 1e15
    assert sortino_ratio(constant, YEAR) == math.inf  # nothing lost
    assert annual_volatility(constant, YEAR) == pytest.approx(0.0, abs=1e-12)  # rounding residue


def test_the_report_states_undefined_ratios_as_none() -> None:
    hours = np.datetime64("2025-01-01T00", "us") + np.arange(5 * 24) * np.timedelta64(1, "h")
    rising = Curve(hours, np.asarray(10_000 * 1.001 ** np.arange(len(hours)), dtype=np.float64))
    stats = equity_statistics(rising, 10_000 / 1.001)
    assert stats["sortino"] is None  # nothing lost: undefined, not infinite
    assert stats["max_drawdown_pct"] == 0.0
    assert stats["sharpe"] is not None
    assert stats["annual_return_pct"] is not None
    assert stats["annual_return_pct"] > 0


def closed(pnl: str, hours: int) -> ClosedTrade:
    opened = datetime(2025, 10, 1, tzinfo=UTC)
    reason = ExitReason.TP_HIT if Decimal(pnl) > 0 else ExitReason.SL_HIT
    return ClosedTrade(
        "BTC/USDT:USDT", Side.LONG, Decimal("0.01"), Decimal(100_000), Decimal(100_000), opened,
        opened + timedelta(hours=hours), reason, Decimal(pnl), Decimal("0.5"), Decimal(0),
        float(Decimal(pnl) / 20), "qt-e-1",
    )  # fmt: skip


def strict(figures: Mapping[str, object]) -> dict[str, object]:
    """The figures as a strict reader takes them (jq, a browser: no NaN, no Infinity)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in report.json")

    parsed: dict[str, object] = json.loads(json.dumps(figures), parse_constant=refuse)
    return parsed


def test_figures_over_no_trades_are_none_not_a_misleading_number() -> None:
    winners = trade_table([closed("40.00", 8), closed("46.00", 9)])
    stats, held = strict(trade_statistics(winners)), strict(durations(winners))
    # Nothing lost: no largest loss (was 40.0, a win) and no average loss (was 0.0).
    assert (stats["largest_win_usdt"], stats["average_win_usdt"]) == (46.0, 43.0)
    assert stats["largest_loss_usdt"] is None
    assert stats["average_loss_usdt"] is None
    assert (held["winners_mean_hours"], held["losers_mean_hours"]) == (8.5, None)
    losers = trade_table([closed("-26.60", 2), closed("-56.06", 12)])
    stats, held = strict(trade_statistics(losers)), strict(durations(losers))
    assert stats["largest_loss_usdt"] == -56.06
    assert stats["largest_win_usdt"] is None  # was -26.6: a loss named the largest win
    assert stats["average_win_usdt"] is None
    assert (held["winners_mean_hours"], held["losers_mean_hours"]) == (None, 7.0)
    nothing = trade_table([])
    figures = strict(trade_statistics(nothing))
    assert figures.pop("unknown_r_trades") == 0  # a count, not a figure over the trades
    assert set(figures.values()) == {None}  # was 0.0: "+0.000 R"
    assert set(strict(durations(nothing)).values()) == {None}  # was 0.0 hours


def test_the_equity_at_midnight_closes_the_day_and_the_month_before() -> None:
    """A backtest from 2025-11-30 00:00 to 2025-12-01 00:00, one hourly snapshot at each end:
    one day of November (was: a day and an hour, and a "2025-12" month of one hour)."""
    hours = np.datetime64("2025-11-30T00", "us") + np.arange(25) * np.timedelta64(1, "h")
    curve = Curve(hours, np.asarray(10_000.0 + np.arange(25), dtype=np.float64))
    assert [m["month"] for m in monthly_returns(curve, 10_000)] == ["2025-11"]
    assert daily_returns(curve, 10_000).tolist() == pytest.approx([24 / 10_000])
    stats = equity_statistics(curve, 10_000)
    assert stats["sharpe"] is None  # one day's return: undefined (was: 2 "days", a Sharpe)
    assert stats["volatility_pct"] is None
    two_days = Curve(
        np.append(hours, hours[-1] + np.timedelta64(24, "h")), np.append(curve.values, 10_030.0)
    )
    assert daily_returns(two_days, 10_000).tolist() == pytest.approx([24 / 10_000, 6 / 10_024])


@pytest.mark.filterwarnings("error")  # NumPy's divide warnings were printed by the command
def test_a_return_on_zero_or_negative_equity_is_none_and_a_flat_run_has_no_negative_zero() -> None:
    hours = np.datetime64("2025-10-01T00", "us") + np.arange(40 * 24) * np.timedelta64(1, "h")
    wiped = Curve(hours, np.where(hours >= np.datetime64("2025-10-31T23", "us"), 0.0, 10_000.0))
    months = strict({"months": monthly_returns(wiped, 10_000)})["months"]
    assert months == [  # was: ZeroDivisionError, no report
        {"month": "2025-10", "return_pct": -100.0, "pnl_usdt": -10_000.0},
        {"month": "2025-11", "return_pct": None, "pnl_usdt": 0.0},
    ]
    stats = strict(equity_statistics(wiped, 10_000))
    assert stats["sharpe"] is None  # returns on nothing in November: undefined
    assert stats["max_drawdown_pct"] == 100.0
    below = Curve(hours, np.linspace(10_000, -500, len(hours)))
    assert monthly_returns(below, 10_000)[1]["return_pct"] is not None  # from a positive end
    assert monthly_returns(Curve(hours, -np.ones(len(hours))), 10_000)[1]["return_pct"] is None
    flat = equity_statistics(Curve(hours, np.full(len(hours), 10_000.0)), 10_000)
    assert json.dumps(flat["max_drawdown_pct"]) == "0.0"  # was "-0.0"
