"""The report's statistics, in NumPy: the backtest's process builds the report without pandas.

Trades: net PnL (fees and funding included), R multiples, durations, grouped by symbol, side
and exit reason. A trade whose R is unknown (its initial risk was) is NaN in the R column: the
R figures are over the trades of known R and count those left out (`unknown_r_trades`).
Equity: day-end closes (the last hourly snapshot of each UTC day; the first day's return is
measured from the initial equity), annualized over 365 days because crypto trades every day.
Max drawdown is measured on the hourly curve; Calmar is the annualized (compounded) return
over that drawdown.

The trade tables were pandas', and keep its conventions: sums and means skip NaN (NumPy's
`nan*` functions sum the same pairwise way, a NaN counted as 0, as pandas does without
bottleneck), groups sorted by key with their rows in order (tests/report/
test_report_statistics_numpy.py holds them against the pandas formulation).

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

from quantum_trader.domain import ClosedTrade, FloatArray
from quantum_trader.median import median
from quantum_trader.record import record
from quantum_trader.report.curve import Curve, drawdown

DAYS_PER_YEAR = 365


@record
class TradeTable:
    """One row per closed trade, as columns, with floats for the statistics (the ledger keeps
    Decimals)."""

    symbol: tuple[str, ...]
    side: tuple[str, ...]
    exit_reason: tuple[str, ...]
    pnl: FloatArray
    fees: FloatArray
    funding: FloatArray
    r: FloatArray
    hours: FloatArray

    def __len__(self) -> int:
        return len(self.symbol)

    def rows(self, where: np.ndarray[Any, np.dtype[np.bool_]]) -> TradeTable:
        """The rows where `where` holds, in order."""
        chosen = np.flatnonzero(where).tolist()

        def keys(column: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(column[i] for i in chosen)

        return TradeTable(
            keys(self.symbol),
            keys(self.side),
            keys(self.exit_reason),
            self.pnl[where],
            self.fees[where],
            self.funding[where],
            self.r[where],
            self.hours[where],
        )


def trade_table(trades: Sequence[ClosedTrade]) -> TradeTable:
    def floats(values: list[float]) -> FloatArray:
        return np.array(values, dtype=np.float64)

    return TradeTable(
        symbol=tuple(t.symbol for t in trades),
        side=tuple(str(t.side) for t in trades),
        exit_reason=tuple(str(t.exit_reason) for t in trades),
        pnl=floats([float(t.pnl_usdt) for t in trades]),
        fees=floats([float(t.fees_usdt) for t in trades]),
        funding=floats([float(t.funding_usdt) for t in trades]),
        r=floats([math.nan if t.r_multiple is None else t.r_multiple for t in trades]),
        hours=floats([(t.closed_at - t.opened_at).total_seconds() / 3600 for t in trades]),
    )


def profit_factor(pnl: FloatArray) -> float | None:
    """Gross profit over gross loss; None when nothing was lost (undefined, not infinite)."""
    loss = float(-pnl[pnl < 0].sum())
    return round(float(pnl[pnl > 0].sum()) / loss, 4) if loss > 0 else None


def group_table(trades: TradeTable, by: str) -> list[dict[str, Any]]:
    """Per group (symbol, side or exit reason): trades, win rate, PnL, costs, PF, R, hours."""
    keys: tuple[str, ...] = getattr(trades, by)
    column = np.array(keys, dtype=object)
    return [{by: key, **_trade_summary(trades.rows(column == key))} for key in sorted(set(keys))]


def _mean(values: FloatArray, places: int) -> float:
    """pandas' mean, rounded: NaN skipped (summed as 0, not counted), NaN when all are; 0.0
    for no rows. np.nanmean's own arithmetic, without its warning for all NaN."""
    if not len(values):
        return 0.0
    numbers = ~np.isnan(values)
    count = int(numbers.sum())
    return round(float(np.where(numbers, values, 0.0).sum()) / count, places) if count else math.nan


def _sum(values: FloatArray, places: int) -> float:
    return round(float(np.nansum(values)), places)


def _trade_summary(trades: TradeTable) -> dict[str, Any]:
    count = len(trades)
    wins = int((trades.pnl > 0).sum())
    return {
        "trades": count,
        "wins": wins,
        "win_rate": round(wins / count, 4) if count else 0.0,
        "pnl_usdt": _sum(trades.pnl, 2),
        "fees_usdt": _sum(trades.fees, 2),
        "funding_usdt": _sum(trades.funding, 2),
        "profit_factor": profit_factor(trades.pnl),
        "expectancy_r": _mean_r(trades.r),
        "unknown_r_trades": _unknown(trades.r),
        "average_hours": _mean(trades.hours, 2),
    }


def trade_statistics(trades: TradeTable) -> dict[str, Any]:
    """Whole-run trade statistics: PF, expectancy in R (over the trades of known R; how many
    were not is `unknown_r_trades`) and in USDT, average and largest win and loss. A figure
    over no trades is None (undefined): no trades, no expectancy; no winner, no average or
    largest win (was 0.0, and the largest "win" of a run of losers its smallest loss); no
    loser, likewise."""
    pnl = trades.pnl
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    return {
        "profit_factor": profit_factor(pnl),
        "expectancy_r": _mean_r(trades.r),
        "unknown_r_trades": _unknown(trades.r),
        "expectancy_usdt": _mean_of_some(pnl, 2),
        "average_win_usdt": _mean_of_some(wins, 2),
        "average_loss_usdt": _mean_of_some(losses, 2),
        "largest_win_usdt": round(float(np.nanmax(wins)), 2) if len(wins) else None,
        "largest_loss_usdt": round(float(np.nanmin(losses)), 2) if len(losses) else None,
    }


def durations(trades: TradeTable) -> dict[str, float | None]:
    """Hours held: mean, median and longest; mean of winners and of losers (PnL ≤ 0). None
    over no trades (no trades at all, no winner, no loser), not 0 hours."""
    hours, pnl = trades.hours, trades.pnl
    return {
        "mean_hours": _mean_of_some(hours, 2),
        "median_hours": round(median(hours), 2) if len(hours) else None,
        "max_hours": round(float(np.nanmax(hours)), 2) if len(hours) else None,
        "winners_mean_hours": _mean_of_some(hours[pnl > 0], 2),
        "losers_mean_hours": _mean_of_some(hours[pnl <= 0], 2),
    }


def _mean_r(r: FloatArray) -> float | None:
    """The mean R of the trades whose R is known; None when none is (not NaN: no JSON)."""
    return _mean(r, 4) if (~np.isnan(r)).any() else None


def _unknown(r: FloatArray) -> int:
    """Trades whose R is unknown, left out of the R figures."""
    return int(np.isnan(r).sum())


def _mean_of_some(values: FloatArray, places: int) -> float | None:
    """`_mean` of at least one value; None for none (a mean over nothing is undefined)."""
    return _mean(values, places) if len(values) else None


def daily_returns(equity: Curve, initial: float) -> FloatArray:
    """Returns of day-end equity; the first from the initial equity. NaN from a day that began
    at or below zero equity (a return on nothing is undefined: the ratios are then None)."""
    _, closes = equity.last_per("D")
    starts = _after(initial, closes)
    with np.errstate(divide="ignore", invalid="ignore"):  # the undefined ones, NaN below
        returns: FloatArray = np.where(starts > 0, closes / starts - 1, np.nan)
    return returns


def equity_statistics(equity: Curve, initial: float) -> dict[str, float | None]:
    """Sharpe, Sortino, Calmar, annualized return and volatility, max drawdown (hourly)."""
    if equity.empty:
        return dict.fromkeys(
            ("sharpe", "sortino", "calmar", "annual_return_pct", "volatility_pct"), None
        ) | {"max_drawdown_pct": 0.0}
    daily = daily_returns(equity, initial)
    worst = float(-drawdown(np.append(initial, equity.values)).min()) + 0.0  # never -0.0
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


def monthly_returns(equity: Curve, initial: float) -> list[dict[str, Any]]:
    """Per calendar month (UTC): return from the previous month's end (or the start) in %;
    None for a month that began at or below zero equity (was: a division by zero, or a return
    of the wrong sign)."""
    months, closes = equity.last_per("M")
    return [
        {
            "month": str(month),
            "return_pct": round((close / start - 1) * 100, 4) if start > 0 else None,
            "pnl_usdt": round(close - start, 2),
        }
        for month, close, start in zip(
            months, closes.tolist(), _after(initial, closes).tolist(), strict=True
        )
    ]


def _after(first: float, values: FloatArray) -> FloatArray:
    """`values` shifted one later, `first` before them (pandas' shift with a fill value)."""
    return np.append(first, values[:-1])[: len(values)]


def _finite(value: object) -> float | None:
    number = float(np.asarray(value))
    return number if math.isfinite(number) else None


def _ratio(value: object, scale: float = 1.0) -> float | None:
    number = _finite(value)
    return round(number * scale, 4) if number is not None else None
