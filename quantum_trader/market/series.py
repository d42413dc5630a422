"""The per-symbol columns the market model reads row by row (market/model.py): prices,
returns, ATR %, regimes and signals on the execution bars, and the runs of rows whose slower
fields stay equal, which let a reader build objects once per run instead of once per bar.

A gap in the candles (market/gaps.py) is folded into the columns once, here: the hourly
indicators restart after it, and the rows of its warm-up hold the ATR % and regime from before
it with no signal and no z-score, so reading a row costs the same with gaps as without."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import Bars, FloatArray, Regime, SignalSeries
from quantum_trader.market import gaps, indicators
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import hourly_row_for, on_rows, resample_hourly
from quantum_trader.record import record, replace

RegimeFn = Callable[[Bars], npt.NDArray[np.object_]]


def _filled(size: int, regime: Regime) -> npt.NDArray[np.object_]:
    """`size` times the member itself: np.full turns a str enum into a plain str first (so
    `is Regime.X` failed on it), and took 4 ms for a year of 5-minute rows where this takes
    0.1."""
    out = np.empty(size, dtype=object)
    out.fill(regime)
    return out


def constant_regime(bars: Bars) -> npt.NDArray[np.object_]:
    """No regime detection: every bar RANGING (the neutral choice)."""
    return _filled(len(bars), Regime.RANGING)


@record
class StatisticsWindows:
    """Windows of the market statistics: returns for correlation in execution bars, the
    volatility baseline in hourly bars; correlations refresh hourly."""

    returns_bars: int = 288
    volatility_bars: int = 168
    volatility_min_bars: int = 30
    correlation_refresh_ms: int = 3_600_000


@record
class SymbolSeries:
    bars: Bars
    atr_pct: FloatArray
    returns: FloatArray
    return_zscore: FloatArray
    regime: npt.NDArray[np.object_]
    signals: SignalSeries
    funding_8h: FloatArray | None = None
    warmups: tuple[gaps.Warmup, ...] = ()
    """The warm-ups after the gaps in its bars (market/gaps.py), oldest first."""


def trailing_sigma(returns: FloatArray, window: int, min_count: int) -> FloatArray:
    """Row t: the standard deviation of the `window` returns before t (t excluded), NaN when
    fewer than `min_count` of them are known. Vectorized with cumulative sums."""
    known = np.isfinite(returns)
    x = np.where(known, returns, 0.0)
    sums = [np.concatenate(([0.0], np.cumsum(v))) for v in (x, x * x, known.astype(float))]
    end = np.arange(len(returns))
    start = np.maximum(end - window, 0)
    total, squares, count = (c[end] - c[start] for c in sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sigma = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    sigma[count < min_count] = np.nan
    result: FloatArray = sigma
    return result


def symbol_series(
    bars: Bars,
    signals: SignalSeries,
    regime: RegimeFn,
    windows: StatisticsWindows,
    warmup_h: int,
) -> SymbolSeries:
    """ATR and regime on closed hourly bars, forward-filled onto the execution rows.

    The hourly indicators restart after each gap (market/gaps.py), as at a recording's start:
    none reads bars across one. The rows of the `warmup_h` hours after a gap show no signal,
    the last ATR and regime from before it and no z-score (`_warming_up`)."""
    hourly = resample_hourly(bars)
    rows = hourly_row_for(bars, hourly)
    runs = gaps.stretches(hourly.time_ms)
    hourly_regime = _by_stretch(regime, hourly, runs)
    regimes = _filled(len(bars), Regime.CHOPPY)
    known = rows >= 0
    regimes[known] = hourly_regime[rows[known]]
    zscore = _by_stretch(functools.partial(_return_zscore, windows=windows), hourly, runs)
    series = SymbolSeries(
        bars,
        on_rows(_by_stretch(indicators.atr_pct, hourly, runs), rows),
        indicators.simple_returns(bars.close),
        on_rows(zscore, rows),
        regimes,
        signals,
    )
    return _warming_up(series, gaps.warmups(bars.time_ms, warmup_h))


def _return_zscore(hourly: Bars, windows: StatisticsWindows) -> FloatArray:
    """Each hourly return over the trailing σ of the returns before it (NaN while unknown)."""
    hourly_returns = indicators.simple_returns(hourly.close)
    sigma = trailing_sigma(hourly_returns, windows.volatility_bars, windows.volatility_min_bars)
    with np.errstate(invalid="ignore", divide="ignore"):
        zscore: FloatArray = np.where(sigma > 0, hourly_returns / sigma, np.nan)
    return zscore


_Column = TypeVar("_Column", bound=np.generic)


def _by_stretch(
    compute: Callable[[Bars], npt.NDArray[_Column]], hourly: Bars, runs: list[tuple[int, int]]
) -> npt.NDArray[_Column]:
    """`compute` over each run of hourly bars between gaps, as if each were a recording of its
    own, joined; over the bars as they are when there is no gap."""
    if len(runs) == 1:
        return compute(hourly)
    return np.concatenate([compute(hourly.slice(start, stop)) for start, stop in runs])


def _warming_up(series: SymbolSeries, warmups: tuple[gaps.Warmup, ...]) -> SymbolSeries:
    """`series` with the rows inside a warm-up after a gap showing HOLD, the ATR % and regime
    of the last row before it, and no z-score. Without an ATR there (bars that begin less than
    ATR_PERIOD + 1 hours before the gap: a daemon's window late in a warm-up) the ATR restarted
    after the gap is shown once defined; without either the row is left out of the view, as at
    a recording's start. Unchanged without a gap."""
    bars = series.bars
    warming = gaps.warming_rows(bars.time_ms, bars.timeframe_ms, warmups)
    if not warming.any():
        return series
    trusted = np.maximum.accumulate(np.where(warming, -1, np.arange(len(bars))))
    before = np.maximum(trusted, 0)
    held = np.where(trusted >= 0, series.atr_pct[before], np.nan)
    atr_pct = np.where(np.isfinite(held), held, series.atr_pct)
    regimes = series.regime[before]
    regimes[trusted < 0] = Regime.CHOPPY
    signals = series.signals
    votes = {name: _hold(pair, warming) for name, pair in signals.votes.items()}
    action, confidence = _hold((signals.action, signals.confidence), warming)
    return replace(
        series,
        atr_pct=atr_pct,
        return_zscore=np.where(warming, np.nan, series.return_zscore),
        regime=regimes,
        signals=SignalSeries(action, confidence, votes),
        warmups=warmups,
    )


def _hold(
    pair: tuple[npt.NDArray[np.int8], FloatArray], rows: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """An (action, confidence) pair with `rows` HOLD at confidence 0."""
    action, confidence = pair
    return np.where(rows, 0, action).astype(np.int8), np.where(rows, 0.0, confidence)


def with_funding(series: SymbolSeries, funding: FundingSeries | None) -> SymbolSeries:
    """Attach the 8 h funding rate in force at each bar's close (0 before the first one)."""
    if funding is None or funding.time_ms.size == 0:
        return series
    bars = series.bars
    index = np.searchsorted(funding.time_ms, bars.time_ms + bars.timeframe_ms, side="right") - 1
    rates = np.where(index >= 0, funding.rate_8h[np.clip(index, 0, None)], 0.0)
    return replace(series, funding_8h=rates) if funding.time_ms.size else series


def grid_origin(bars: Bars) -> int | None:
    """The first bar's open time when the bars are a gap-free grid (recorded data is), so a
    row is found by arithmetic instead of a binary search; None otherwise."""
    span = int(bars.time_ms[-1]) - int(bars.time_ms[0])
    return int(bars.time_ms[0]) if span == (len(bars) - 1) * bars.timeframe_ms else None


def close_price(s: SymbolSeries, row: int) -> Decimal:
    """The view's price of a symbol shown at `row`: its close."""
    return Decimal(repr(s.bars.close.item(row)))


def last_closed_row(bars: Bars, origin: int | None, last_row: int, now_ms: int) -> int:
    """The newest row closed by `now_ms` (-1: none); `last_row` is len(bars) - 1."""
    if origin is None:
        return bars.closed_before(now_ms) - 1
    # Comparisons, not min() and max(): in Python 3.11 these parse their keywords at each call
    # (≈ 1,400 instructions each; the view asks for each symbol's row at each step).
    row = (now_ms - origin) // bars.timeframe_ms - 1
    return last_row if row > last_row else -1 if row < -1 else row


def _run_starts(n: int, columns: list[npt.NDArray[Any]]) -> npt.NDArray[np.intp]:
    """Row t: the first row of the run of rows that equal row t in every column (NaN != NaN:
    a NaN row starts a run of its own)."""
    changed = np.zeros(n, dtype=bool)
    if n:
        changed[0] = True
    for column in columns:
        changed[1:] |= np.asarray(column[1:] != column[:-1], dtype=bool)
    runs: npt.NDArray[np.intp] = np.maximum.accumulate(np.where(changed, np.arange(n), 0))
    return runs


def signal_runs(series: SignalSeries) -> npt.NDArray[np.intp]:
    """Row t: the first row of the run of identical signals (action, confidence, votes) that
    row t belongs to, so a signal object is built once per run, not once per bar."""
    columns: list[npt.NDArray[Any]] = [series.action, series.confidence]
    columns += [column for pair in series.votes.values() for column in pair]
    return _run_starts(len(series.action), columns)


def slow_runs(series: SymbolSeries, signal_rows: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Row t: the first row of the run of rows whose ATR, regime, z-score and signal equal
    row t's (they move on the hourly bars)."""
    columns = [signal_rows, series.regime, series.atr_pct, series.return_zscore]
    return _run_starts(len(series.atr_pct), columns)


def quiet_runs(series: SymbolSeries, slow: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Row t: the first row of the run of rows whose slow fields (`slow_runs`) and funding
    rate equal row t's: everything of a row but its price and return."""
    funding = [series.funding_8h] if series.funding_8h is not None else []
    return _run_starts(len(slow), [slow, *funding])
