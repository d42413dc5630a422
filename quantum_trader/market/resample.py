"""Aggregate execution bars (5 m) into closed hourly bars, and map hourly rows back onto the
execution rows without look-ahead. Signals, ATR and regimes live on the hour; fills and stop
triggers on the execution bars."""

from __future__ import annotations

import numpy as np

from quantum_trader.domain import Bars, FloatArray, IntArray

HOUR_MS = 3_600_000


def resample_hourly(bars: Bars) -> Bars:
    """Aggregate bars of a sub-hour timeframe into hourly bars, keeping only closed hours.

    An hour is closed when the input holds a bar ending at or after the hour's end; a leading
    hour that starts before the first input bar is dropped as incomplete. Hourly input is
    returned as it is.
    """
    if bars.timeframe_ms == HOUR_MS or len(bars) == 0:
        return bars
    hours = bars.time_ms // HOUR_MS * HOUR_MS
    starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
    first = 0 if bars.time_ms[0] == hours[0] else 1
    last_close = int(bars.time_ms[-1]) + bars.timeframe_ms
    stop = len(starts) if last_close >= int(hours[-1]) + HOUR_MS else len(starts) - 1
    if stop <= first:
        return _empty(bars.symbol)
    ends = np.r_[starts[1:], len(bars)]
    keep = slice(first, stop)
    s, e = starts[keep], ends[keep]
    return Bars(
        bars.symbol,
        HOUR_MS,
        hours[s],
        bars.open[s],
        np.maximum.reduceat(bars.high, starts)[keep],
        np.minimum.reduceat(bars.low, starts)[keep],
        bars.close[e - 1],
        np.add.reduceat(bars.volume, starts)[keep],
    )


def _empty(symbol: str) -> Bars:
    none = np.empty(0, dtype=np.float64)
    return Bars(symbol, HOUR_MS, np.empty(0, dtype=np.int64), none, none, none, none, none)


def hourly_row_for(bars: Bars, hourly: Bars) -> IntArray:
    """For each input bar, the index of the latest hourly bar closed at or before its close.

    -1 where no hour has closed yet. This is how an hourly signal is forward-filled onto the
    execution bars without look-ahead.
    """
    hour_close = hourly.time_ms + HOUR_MS
    bar_close = bars.time_ms + bars.timeframe_ms
    return np.searchsorted(hour_close, bar_close, side="right").astype(np.int64) - 1


def on_rows(hourly_values: FloatArray, rows: IntArray) -> FloatArray:
    """Hourly values forward-filled onto execution rows (`rows` from `hourly_row_for`);
    NaN where no hour has closed yet."""
    out = np.full(rows.shape, np.nan)
    known = rows >= 0
    out[known] = hourly_values[rows[known]]
    return out
