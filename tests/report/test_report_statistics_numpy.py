"""The report's statistics in NumPy (report/statistics.py, report/curve.py) give exactly what
their pandas formulation gave before, held here as the reference: the same floats, not close
ones. Both sum the same values in the same pairwise order (pandas without bottleneck, which
the project does not install, sums with NumPy), so equality is by construction; a drawn
counterexample would mean the NumPy code reads the values in another order or set.

Drawn: trades over a few symbols, sides and exits (R multiples with NaN, which pandas skips),
and equity curves with unsorted and repeated times, empty days and months.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from quantum_trader.report import statistics
from quantum_trader.report.curve import Curve
from quantum_trader.report.statistics import TradeTable

START = datetime(2025, 1, 30, tzinfo=UTC)
INITIAL = 10_000.0
FINITE = st.floats(-5_000, 5_000, allow_nan=False)


# The reference: the report's statistics as they were written with pandas.


def pandas_frame(t: TradeTable) -> pd.DataFrame:
    rows = list(
        zip(t.symbol, t.side, t.exit_reason, t.pnl, t.fees, t.funding, t.r, t.hours, strict=True)
    )
    columns = ["symbol", "side", "exit_reason", "pnl", "fees", "funding", "r", "hours"]
    return pd.DataFrame([tuple(map(_plain, row)) for row in rows], columns=columns)


def _plain(value: object) -> object:
    return float(value) if isinstance(value, np.floating) else value


def pandas_profit_factor(pnl: pd.Series) -> float | None:
    loss = float(-pnl[pnl < 0].sum())
    return round(float(pnl[pnl > 0].sum()) / loss, 4) if loss > 0 else None


def pandas_summary(trades: pd.DataFrame) -> dict[str, Any]:
    count = len(trades)
    wins = int((trades["pnl"] > 0).sum())
    return {
        "trades": count,
        "wins": wins,
        "win_rate": round(wins / count, 4) if count else 0.0,
        "pnl_usdt": round(float(trades["pnl"].sum()), 2),
        "fees_usdt": round(float(trades["fees"].sum()), 2),
        "funding_usdt": round(float(trades["funding"].sum()), 2),
        "profit_factor": pandas_profit_factor(trades["pnl"]),
        **pandas_r(trades["r"]),
        "average_hours": round(float(trades["hours"].mean()), 2) if count else 0.0,
    }


def pandas_r(r: pd.Series) -> dict[str, Any]:
    """The mean R over the known ones (NaN: an unknown R), None when none is known (no longer
    pandas' NaN, which report.json cannot hold), and how many were unknown."""
    mean = round(float(r.mean()), 4) if r.count() else None
    return {"expectancy_r": mean, "unknown_r_trades": int(r.isna().sum())}


def pandas_groups(trades: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    return [{by: str(key), **pandas_summary(g)} for key, g in trades.groupby(by, sort=True)]


def pandas_trade_statistics(trades: pd.DataFrame) -> dict[str, Any]:
    pnl = trades["pnl"]
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return {
        "profit_factor": pandas_profit_factor(pnl),
        **pandas_r(trades["r"]),
        "expectancy_usdt": round(float(pnl.mean()), 2) if len(trades) else None,
        "average_win_usdt": round(float(wins.mean()), 2) if len(wins) else None,
        "average_loss_usdt": round(float(losses.mean()), 2) if len(losses) else None,
        "largest_win_usdt": round(float(wins.max()), 2) if len(wins) else None,
        "largest_loss_usdt": round(float(losses.min()), 2) if len(losses) else None,
    }


def pandas_durations(trades: pd.DataFrame) -> dict[str, float | None]:
    hours, pnl = trades["hours"], trades["pnl"]

    def mean(values: pd.Series) -> float | None:
        return round(float(values.mean()), 2) if len(values) else None

    return {
        "mean_hours": mean(hours),
        "median_hours": round(float(hours.median()), 2) if len(hours) else None,
        "max_hours": round(float(hours.max()), 2) if len(hours) else None,
        "winners_mean_hours": mean(hours[pnl > 0]),
        "losers_mean_hours": mean(hours[pnl <= 0]),
    }


def pandas_series(curve: Curve) -> pd.Series:
    return pd.Series(curve.values, index=pd.DatetimeIndex(curve.times).tz_localize("UTC"))


def closing(equity: pd.Series) -> pd.Series:
    """A value at a period's first instant (midnight) counted in the period before, but for the
    first instant of the series, which opens its period."""
    index = pd.DatetimeIndex(equity.index)
    shifted = index.where(index == index.min(), index - pd.Timedelta(1, "us"))
    return pd.Series(equity.to_numpy(), index=shifted)


def pandas_daily_returns(equity: pd.Series, initial: float) -> np.ndarray:
    closes = closing(equity).resample("1D").last().dropna()
    starts = closes.shift(1, fill_value=initial)
    returns: pd.Series = (closes / starts - 1).where(starts > 0)
    return returns.to_numpy(dtype=float)


def pandas_monthly(equity: pd.Series, initial: float) -> list[dict[str, Any]]:
    closes = closing(equity).resample("MS").last().dropna()
    opens = closes.shift(1, fill_value=initial)
    return [
        {
            "month": month.strftime("%Y-%m"),
            "return_pct": round((close / start - 1) * 100, 4) if start > 0 else None,
            "pnl_usdt": round(close - start, 2),
        }
        for month, close, start in zip(closes.index, closes, opens, strict=True)
    ]


def pandas_drawdown(values: pd.Series) -> pd.Series:
    return values / values.cummax() - 1


# What is drawn.


@st.composite
def trade_tables(draw: st.DrawFn) -> TradeTable:
    n = draw(st.integers(0, 40))

    def keys(choices: list[str]) -> tuple[str, ...]:
        return tuple(draw(st.lists(st.sampled_from(choices), min_size=n, max_size=n)))

    def floats(elements: st.SearchStrategy[float]) -> np.ndarray:
        return np.array(draw(st.lists(elements, min_size=n, max_size=n)), dtype=np.float64)

    return TradeTable(
        symbol=keys(["SOL/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"]),
        side=keys(["long", "short"]),
        exit_reason=keys(["stop_loss", "take_profit", "trailing_stop", "time"]),
        pnl=floats(FINITE | st.just(0.0)),
        fees=floats(st.floats(0, 50)),
        funding=floats(st.floats(-20, 20)),
        r=floats(st.floats(-3, 6) | st.just(math.nan)),
        hours=floats(st.floats(0.08, 400)),
    )


@st.composite
def curves(draw: st.DrawFn) -> Curve:
    # Hours over ~3 months, or a few hours repeated many times (ties, which only a stable sort
    # keeps in their order, matter in arrays longer than NumPy's insertion-sort cutoff).
    hours = st.integers(0, 100 * 24) | st.sampled_from([7, 7 * 24, 31 * 24, 31 * 24 + 1])
    offsets = draw(st.lists(hours, max_size=120))
    values = draw(st.lists(st.floats(100, 50_000), min_size=len(offsets), max_size=len(offsets)))
    times = [START + timedelta(hours=h, minutes=h % 7) for h in offsets]
    return Curve.of(times, values)


def same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN (an all-NaN mean is NaN in both)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@given(trade_tables())
def test_the_trade_tables_are_pandas_tables(trades: TradeTable) -> None:
    frame = pandas_frame(trades)
    assert same(statistics.trade_statistics(trades), pandas_trade_statistics(frame))
    assert same(statistics.durations(trades), pandas_durations(frame))
    for by in ("symbol", "side", "exit_reason"):
        assert same(statistics.group_table(trades, by), pandas_groups(frame, by))


@given(curves())
def test_day_and_month_ends_are_pandas_resampled_lasts(equity: Curve) -> None:
    series = pandas_series(equity)
    daily = statistics.daily_returns(equity, INITIAL)
    assert daily.tobytes() == pandas_daily_returns(series, INITIAL).tobytes()
    assert same(statistics.monthly_returns(equity, INITIAL), pandas_monthly(series, INITIAL))


@given(curves())
def test_the_deepest_drawdown_is_that_of_the_pandas_series(equity: Curve) -> None:
    with_start = pd.Series([INITIAL, *pandas_series(equity).to_numpy()])
    expected = (
        round(float(-pandas_drawdown(with_start).min()) * 100, 4) if len(equity.values) else 0.0
    )
    assert statistics.equity_statistics(equity, INITIAL)["max_drawdown_pct"] == expected
