"""TA-Lib indicators over bar arrays. Every output is aligned with its input and causal: row t
uses rows 0..t only; warm-up rows are NaN."""

from __future__ import annotations

import numpy as np

from quantum_trader.domain import Bars, FloatArray
from quantum_trader.ta import talib

ATR_PERIOD = 14
"""Bars of the ATR the market model shows (`atr_pct`): its first value is at row ATR_PERIOD."""


def ema(values: FloatArray, period: int) -> FloatArray:
    return np.asarray(talib.EMA(values, timeperiod=period), dtype=np.float64)


def rsi(values: FloatArray, period: int = 14) -> FloatArray:
    return np.asarray(talib.RSI(values, timeperiod=period), dtype=np.float64)


def atr(bars: Bars, period: int = 14) -> FloatArray:
    return np.asarray(talib.ATR(bars.high, bars.low, bars.close, timeperiod=period))


def atr_pct(bars: Bars, period: int = ATR_PERIOD) -> FloatArray:
    """ATR as a fraction of the close (0.02 = 2 %)."""
    return atr(bars, period) / bars.close


def adx(bars: Bars, period: int = 14) -> FloatArray:
    return np.asarray(talib.ADX(bars.high, bars.low, bars.close, timeperiod=period))


def simple_returns(values: FloatArray) -> FloatArray:
    """Close-to-close returns; row 0 is NaN."""
    out = np.full(values.shape, np.nan)
    out[1:] = values[1:] / values[:-1] - 1.0
    return out
