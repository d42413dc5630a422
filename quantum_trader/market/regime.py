"""Regime detection: bars → per-bar regime (SPEC §3.2); BTC daily closes → global regime (§3.3).

`regime_series` is vectorized over a whole bar range with no look-ahead: row t reads bars 0..t
only. Rows still inside the indicators' warm-up are CHOPPY, the most cautious regime.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import Bars, FloatArray, GlobalRegime, Regime
from quantum_trader.gates.settings import RegimeSettings
from quantum_trader.ta import talib

RegimeCodes = npt.NDArray[np.int8]

#: Code i in a regime series stands for REGIMES[i].
REGIMES: tuple[Regime, ...] = (Regime.TRENDING, Regime.RANGING, Regime.CHOPPY, Regime.BREAKOUT)
TRENDING, RANGING, CHOPPY, BREAKOUT = (np.int8(i) for i in range(4))
DAY_MS = 86_400_000


def trailing_mean(values: FloatArray, window: int) -> FloatArray:
    """Mean of the last `window` non-NaN values up to and including each row (fewer at the
    start); NaN where none exist yet."""
    valid = ~np.isnan(values)
    sums = np.concatenate(([0.0], np.cumsum(np.where(valid, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(valid)))
    stop = np.arange(1, values.shape[0] + 1)
    start = np.maximum(stop - window, 0)
    count = counts[stop] - counts[start]
    total = sums[stop] - sums[start]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _prior_extreme(values: FloatArray, window: int, *, highest: bool) -> FloatArray:
    """Max (or min) of the `window` bars before each row, excluding the row; NaN if too early."""
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] <= window:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(values, window)
    extreme = windows.max(axis=1) if highest else windows.min(axis=1)
    out[window:] = extreme[:-1]
    return out


def atr_ratio(bars: Bars, settings: RegimeSettings) -> FloatArray:
    """Current ATR over its trailing `atr_mean_days` mean (in this timeframe's bars)."""
    atr = talib.ATR(bars.high, bars.low, bars.close, timeperiod=settings.atr_period)
    window = max(1, int(settings.atr_mean_days * DAY_MS // bars.timeframe_ms))
    mean = trailing_mean(atr, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio: FloatArray = atr / mean
    return ratio


def regime_series(bars: Bars, settings: RegimeSettings) -> RegimeCodes:
    """Classify every bar (codes index REGIMES), in the SPEC's order of precedence:

    TRENDING: ADX > trending_min_adx and close, fast EMA and slow EMA aligned;
    RANGING: ADX < ranging_max_adx and ATR ratio ≤ ranging_max_atr_ratio;
    BREAKOUT: ATR ratio ≥ breakout_min_atr_ratio and the close outside the prior range;
    CHOPPY: everything else, including warm-up rows.
    """
    s = settings
    close = bars.close
    adx = talib.ADX(bars.high, bars.low, close, timeperiod=s.adx_period)
    fast = talib.EMA(close, timeperiod=s.ema_fast_period)
    slow = talib.EMA(close, timeperiod=s.ema_slow_period)
    ratio = atr_ratio(bars, s)
    aligned = ((close > fast) & (fast > slow)) | ((close < fast) & (fast < slow))
    prior_high = _prior_extreme(bars.high, s.range_break_bars, highest=True)
    prior_low = _prior_extreme(bars.low, s.range_break_bars, highest=False)
    broke = (close > prior_high) | (close < prior_low)
    with np.errstate(invalid="ignore"):
        trending = (adx > s.trending_min_adx) & aligned
        ranging = (adx < s.ranging_max_adx) & (ratio <= s.ranging_max_atr_ratio)
        breakout = (ratio >= s.breakout_min_atr_ratio) & broke
    codes = np.full(len(bars), CHOPPY, dtype=np.int8)
    codes[breakout] = BREAKOUT
    codes[ranging] = RANGING
    codes[trending] = TRENDING
    return codes


def latest_regime(bars: Bars, settings: RegimeSettings) -> Regime:
    """The regime of the newest bar (CHOPPY when there are no bars)."""
    if len(bars) == 0:
        return Regime.CHOPPY
    return REGIMES[int(regime_series(bars, settings)[-1])]


def daily_closes(bars: Bars) -> FloatArray:
    """The close of each complete UTC day in `bars` (the day still forming is left out)."""
    if len(bars) == 0:
        return np.empty(0)
    close_ms = bars.time_ms + bars.timeframe_ms
    day = (close_ms - 1) // DAY_MS
    last_of_day = np.flatnonzero(np.diff(day)) if day.shape[0] > 1 else np.empty(0, np.int64)
    ends_day = close_ms[-1] % DAY_MS == 0
    indices = np.append(last_of_day, len(bars) - 1) if ends_day else last_of_day
    return bars.close[indices.astype(np.int64)]


def global_regime(
    daily_close: FloatArray, settings: RegimeSettings, price: float | None = None
) -> GlobalRegime:
    """BTC's price (default: the last daily close) against the EMA of its daily closes:
    above by more than `global_band` → UPTREND, below by more → DOWNTREND, else SIDEWAYS
    (also when there is not enough history for the EMA)."""
    s = settings
    if daily_close.shape[0] < s.global_ema_days:
        return GlobalRegime.SIDEWAYS
    ema = float(talib.EMA(daily_close, timeperiod=s.global_ema_days)[-1])
    last = float(daily_close[-1]) if price is None else price
    deviation = last / ema - 1.0
    if deviation > s.global_band:
        return GlobalRegime.UPTREND
    if deviation < -s.global_band:
        return GlobalRegime.DOWNTREND
    return GlobalRegime.SIDEWAYS
