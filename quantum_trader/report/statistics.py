"""The report's statistics: pandas for the tables, NumPy for the risk-adjusted ratios.

Trades: net PnL (fees and funding included), R multiples, durations, grouped by symbol, side
and exit reason. Equity: day-end closes (the last hourly snapshot of each UTC day; the first
day's return is measured from the initial equity), annualized over 365 days because crypto
trades every day. Max drawdown is measured on the hourly curve; Calmar is the annualized
(compounded) return over that drawdown.

The ratios follow empyrical's definitions (risk-free and required return 0; sample standard
deviation, ddof=1; Sortino's downside deviation over every period, gains counted as 0), in a
few lines of NumPy rather than through empyrical: it imports SciPy's statistics, ≈ 65 MB of
the backtest command's peak memory for four formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from quantum_trader.domain import ClosedTrade

DAYS_PER_YEAR = 365
TRADE_COLUMNS = ["symbol", "side", "exit_reason", "pnl", "fees", "funding", "r", "hours"]


def trades_frame(trades: Sequence[ClosedTrade]) -> pd.DataFrame:
    """One row per closed trade with floats for the statistics (the ledger keeps Decimals)."""
    rows = [
        (
            t.symbol,
            str(t.side),
            str(t.exit_reason),
            float(t.pnl_usdt),
            float(t.fees_usdt),
            float(t.funding_usdt),
            float(t.r_multiple),
            (t.closed_at - t.opened_at).total_seconds() / 3600,
        )
        for t in trades
    ]
    return pd.DataFrame(rows, columns=TRADE_COLUMNS)


def profit_factor(pnl: pd.Series) -> float | None:
    """Gross profit over gross loss; None when nothing was lost (undefined, not infinite)."""
    loss = float(-pnl[pnl < 0].sum())
    return round(float(pnl[pnl > 0].sum()) / loss, 4) if loss > 0 else None


def group_table(trades: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    """Per group (symbol, side or exit reason): trades, win rate, PnL, costs, PF, R, hours."""
    rows = []
    for key, group in trades.groupby(by, sort=True):
        rows.append({by: str(key), **_trade_summary(group)})
    return rows


def _trade_summary(trades: pd.DataFrame) -> dict[str, Any]:
    count = len(trades)
    wins = int((trades["pnl"] > 0).sum())
    return {
        "trades": count,
        "wins": wins,
        "win_rate": round(wins / count, 4) if count else 0.0,
        "pnl_usdt": round(float(trades["pnl"].sum()), 2),
        "fees_usdt": round(float(trades["fees"].sum()), 2),
        "funding_usdt": round(float(trades["funding"].sum()), 2),
        "profit_factor": profit_factor(trades["pnl"]),
        "expectancy_r": round(float(trades["r"].mean()), 4) if count else 0.0,
        "average_hours": round(float(trades["hours"].mean()), 2) if count else 0.0,
    }


def trade_statistics(trades: pd.DataFrame) -> dict[str, Any]:
    """Whole-run trade statistics: PF, expectancy in R and in USDT, average win and loss."""
    pnl = trades["pnl"]
    return {
        "profit_factor": profit_factor(pnl),
        "expectancy_r": round(float(trades["r"].mean()), 4) if len(trades) else 0.0,
        "expectancy_usdt": round(float(pnl.mean()), 2) if len(trades) else 0.0,
        "average_win_usdt": round(float(pnl[pnl > 0].mean()), 2) if (pnl > 0).any() else 0.0,
        "average_loss_usdt": round(float(pnl[pnl < 0].mean()), 2) if (pnl < 0).any() else 0.0,
        "largest_win_usdt": round(float(pnl.max()), 2) if len(trades) else 0.0,
        "largest_loss_usdt": round(float(pnl.min()), 2) if len(trades) else 0.0,
    }


def durations(trades: pd.DataFrame) -> dict[str, float]:
    """Hours held: mean, median and longest; mean of winners and of losers."""
    hours, pnl = trades["hours"], trades["pnl"]

    def mean(values: pd.Series) -> float:
        return round(float(values.mean()), 2) if len(values) else 0.0

    return {
        "mean_hours": mean(hours),
        "median_hours": round(float(hours.median()), 2) if len(hours) else 0.0,
        "max_hours": round(float(hours.max()), 2) if len(hours) else 0.0,
        "winners_mean_hours": mean(hours[pnl > 0]),
        "losers_mean_hours": mean(hours[pnl <= 0]),
    }


def daily_returns(equity: pd.Series, initial: float) -> pd.Series:
    """Returns of day-end equity; the first from the initial equity."""
    closes = equity.resample("1D").last().dropna()
    return closes / closes.shift(1, fill_value=initial) - 1


def drawdown(equity: pd.Series) -> pd.Series:
    """Fall from the running peak, as a fraction (≤ 0)."""
    return equity / equity.cummax() - 1


def equity_statistics(equity: pd.Series, initial: float) -> dict[str, float | None]:
    """Sharpe, Sortino, Calmar, annualized return and volatility, max drawdown (hourly)."""
    if equity.empty:
        return dict.fromkeys(
            ("sharpe", "sortino", "calmar", "annual_return_pct", "volatility_pct"), None
        ) | {"max_drawdown_pct": 0.0}
    returns = daily_returns(equity, initial)
    worst = float(-drawdown(pd.Series([initial, *equity.to_numpy()])).min())
    daily = returns.to_numpy(dtype=float)
    annual = _finite(annual_return(daily, DAYS_PER_YEAR))
    return {
        "sharpe": _ratio(sharpe_ratio(daily, DAYS_PER_YEAR)),
        "sortino": _ratio(sortino_ratio(daily, DAYS_PER_YEAR)),
        "calmar": round(annual / worst, 4) if annual is not None and worst > 0 else None,
        "annual_return_pct": round(annual * 100, 4) if annual is not None else None,
        "volatility_pct": _ratio(annual_volatility(daily, DAYS_PER_YEAR), 100),
        "max_drawdown_pct": round(worst * 100, 4),
    }


def annual_return(returns: np.ndarray, periods_per_year: int) -> float:
    """Compound annual growth rate of simple per-period `returns`; NaN when there are none."""
    if len(returns) < 1:
        return math.nan
    years = len(returns) / periods_per_year
    with np.errstate(invalid="ignore"):  # a total loss beyond 100 %: NaN, as empyrical
        return float(np.prod(returns + 1) ** (1 / years) - 1)


def sharpe_ratio(returns: np.ndarray, periods_per_year: int) -> float:
    """Mean over sample standard deviation, annualized by √periods; NaN under two periods,
    ±inf or NaN when every return is the same (no dispersion: the ratio is undefined)."""
    if len(returns) < 2:
        return math.nan
    deviation = 0.0 if returns.max() == returns.min() else float(np.std(returns, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(returns) / np.float64(deviation) * np.sqrt(periods_per_year))


def sortino_ratio(returns: np.ndarray, periods_per_year: int) -> float:
    """Annualized mean over annualized downside deviation (root mean square of the losses,
    gains counted as 0); NaN under two periods, ±inf or NaN when nothing was lost."""
    if len(returns) < 2:
        return math.nan
    downside = np.sqrt(np.mean(np.square(np.minimum(returns, 0.0)))) * np.sqrt(periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(returns) * periods_per_year / downside)


def annual_volatility(returns: np.ndarray, periods_per_year: int) -> float:
    """Sample standard deviation annualized by √periods (a fraction); NaN under two periods."""
    if len(returns) < 2:
        return math.nan
    return float(np.std(returns, ddof=1) * periods_per_year ** (1.0 / 2.0))


def monthly_returns(equity: pd.Series, initial: float) -> list[dict[str, Any]]:
    """Per calendar month (UTC): return from the previous month's end (or the start) in %."""
    closes = equity.resample("MS").last().dropna()
    opens = closes.shift(1, fill_value=initial)
    return [
        {
            "month": month.strftime("%Y-%m"),
            "return_pct": round((close / start - 1) * 100, 4),
            "pnl_usdt": round(close - start, 2),
        }
        for month, close, start in zip(closes.index, closes, opens, strict=True)
    ]


def _finite(value: object) -> float | None:
    number = float(np.asarray(value))
    return number if math.isfinite(number) else None


def _ratio(value: object, scale: float = 1.0) -> float | None:
    number = _finite(value)
    return round(number * scale, 4) if number is not None else None
