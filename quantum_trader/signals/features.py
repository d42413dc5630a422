"""Features for the ML models: 5m bars → closed 1h bars → ~40 scale-free features per hour.

Every feature is causal: row t depends on hourly bars 0..t only (TA-Lib indicators, trailing
returns, the last funding settlement at or before the bar's close). Warm-up rows are NaN; a row
is usable when all its features are finite. Everything is a ratio, an oscillator or a z-score,
so one model serves every symbol.

Incremental use (the live cycle): recurrent indicators (EMA, RSI, ADX, ATR) depend slightly on
where the series starts; the live path computes them over the last FEATURE_WINDOW_H hours,
which is at least three times the longest recurrent period, so the seed's influence is
negligible (< 1e-3 relative for EMA100 after 300 bars).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import Bars, FloatArray
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS
from quantum_trader.ta import talib

RETURN_HORIZONS_H = (1, 2, 4, 8, 12, 24, 48, 72, 168)
EMA_PERIODS = (9, 21, 50, 100)
WARMUP_H = 181
"""Hourly bars before every feature is defined: the 168-hour mean of the 14-hour ATR."""
FEATURE_WINDOW_H = 320
"""Hourly bars the live path computes features over (≥ 168 + the indicators' warm-up)."""

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{h}h" for h in RETURN_HORIZONS_H),
    "rsi_7",
    "rsi_14",
    "rsi_28",
    "macd",
    "macd_signal",
    "macd_hist",
    *(f"close_ema_{p}" for p in EMA_PERIODS),
    "ema_9_21",
    "ema_21_50",
    "atr_pct_14",
    "atr_ratio_168",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "bb_width_20",
    "bb_pos_20",
    "volume_z_24",
    "volume_ratio_24_168",
    "obv_slope_24",
    "mfi_14",
    "adosc",
    "stoch_k",
    "stoch_d",
    "willr_14",
    "cci_20",
    "realized_vol_24",
    "realized_vol_168",
    "range_pct",
    "close_in_range",
    "funding_bps_8h",
    "hour_sin",
    "hour_cos",
)
MODEL_INPUTS: tuple[str, ...] = (*FEATURE_NAMES, "side")
"""What the tree models read: the features, then the side of the trade (+1 long, −1 short)."""


def compute_features(hourly: Bars, funding: FundingSeries | None = None) -> FloatArray:
    """Return an (n, len(FEATURE_NAMES)) float64 matrix aligned with `hourly`; NaN in warm-up.

    A ratio that is undefined (prices that do not move: an ATR or a volatility of 0) is NaN,
    not a warning: the row is not usable.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _features(hourly, funding)


def _features(hourly: Bars, funding: FundingSeries | None) -> FloatArray:
    o, h, low, c, v = hourly.open, hourly.high, hourly.low, hourly.close, hourly.volume
    columns: list[FloatArray] = []
    columns += _returns(c)
    columns += [_ta(talib.RSI(c, p)) / 100.0 - 0.5 for p in (7, 14, 28)]
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    columns += [_ta(macd) / c, _ta(signal) / c, _ta(hist) / c]
    emas = {p: _ta(talib.EMA(c, p)) for p in EMA_PERIODS}
    columns += [c / emas[p] - 1.0 for p in EMA_PERIODS]
    columns += [emas[9] / emas[21] - 1.0, emas[21] / emas[50] - 1.0]
    columns += _volatility(h, low, c)
    columns += [_ta(talib.ADX(h, low, c, 14)) / 100.0]
    columns += [_ta(talib.PLUS_DI(h, low, c, 14)) / 100.0]
    columns += [_ta(talib.MINUS_DI(h, low, c, 14)) / 100.0]
    columns += _bands(c)
    columns += _volume(h, low, c, v)
    columns += _oscillators(h, low, c)
    columns += _range(o, h, low, c)
    columns.append(_funding(hourly, funding))
    phase = 2.0 * np.pi * ((hourly.time_ms // HOUR_MS) % 24) / 24.0
    columns += [np.sin(phase), np.cos(phase)]
    matrix = np.column_stack(columns)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix


def usable_rows(features: FloatArray) -> npt.NDArray[np.bool_]:
    """Rows where every feature is finite (past the warm-up)."""
    return np.asarray(np.isfinite(features).all(axis=1))


def _ta(values: object) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _lagged_log_return(values: FloatArray, lag: int) -> FloatArray:
    """`values[t] - values[t - lag]` (a log return when given log prices); NaN before `lag`."""
    out = np.full(values.shape, np.nan)
    if lag < values.shape[0]:
        out[lag:] = values[lag:] - values[:-lag]
    return out


def _returns(c: FloatArray) -> list[FloatArray]:
    log_close = np.log(c)
    return [_lagged_log_return(log_close, lag) for lag in RETURN_HORIZONS_H]


def _volatility(h: FloatArray, low: FloatArray, c: FloatArray) -> list[FloatArray]:
    atr = _ta(talib.ATR(h, low, c, 14))
    atr_mean = _ta(talib.SMA(atr, 168))
    log_ret = _lagged_log_return(np.log(c), 1)
    vol_24 = _ta(talib.STDDEV(log_ret, 24))
    vol_168 = _ta(talib.STDDEV(log_ret, 168))
    return [atr / c, atr / atr_mean - 1.0, vol_24, vol_168]


def _bands(c: FloatArray) -> list[FloatArray]:
    upper, middle, lower = (_ta(x) for x in talib.BBANDS(c, 20, 2.0, 2.0))
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        return [width / middle, (c - lower) / width - 0.5]


def _volume(h: FloatArray, low: FloatArray, c: FloatArray, v: FloatArray) -> list[FloatArray]:
    log_v = np.log1p(v)
    mean_24, std_24 = _ta(talib.SMA(log_v, 24)), _ta(talib.STDDEV(log_v, 24))
    mean_168 = _ta(talib.SMA(log_v, 168))
    obv = _ta(talib.OBV(c, v))
    v_sum_24 = _ta(talib.SUM(v, 24))
    adosc = _ta(talib.ADOSC(h, low, c, v, 3, 10))
    with np.errstate(divide="ignore", invalid="ignore"):
        obv_slope = _lagged_log_return(obv, 24) / v_sum_24
        return [
            (log_v - mean_24) / std_24,
            mean_24 - mean_168,
            obv_slope,
            _ta(talib.MFI(h, low, c, v, 14)) / 100.0 - 0.5,
            adosc / (v_sum_24 / 24.0),
        ]


def _oscillators(h: FloatArray, low: FloatArray, c: FloatArray) -> list[FloatArray]:
    slow_k, slow_d = talib.STOCH(h, low, c, 14, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)
    return [
        _ta(slow_k) / 100.0 - 0.5,
        _ta(slow_d) / 100.0 - 0.5,
        _ta(talib.WILLR(h, low, c, 14)) / 100.0 + 0.5,
        _ta(talib.CCI(h, low, c, 20)) / 100.0,
    ]


def _range(o: FloatArray, h: FloatArray, low: FloatArray, c: FloatArray) -> list[FloatArray]:
    span = h - low
    with np.errstate(divide="ignore", invalid="ignore"):
        position = np.where(span > 0, (c - low) / span - 0.5, 0.0)
    return [span / o, position]


def _funding(hourly: Bars, funding: FundingSeries | None) -> FloatArray:
    """The last funding settlement at or before each bar's close, per 8 h, in basis points.

    0 where no settlement is known (no funding data counts as neutral funding)."""
    out = np.zeros(len(hourly))
    if funding is None or funding.time_ms.size == 0:
        return out
    close_ms = hourly.time_ms + HOUR_MS
    index = np.searchsorted(funding.time_ms, close_ms, side="right") - 1
    known = index >= 0
    out[known] = funding.rate_8h[index[known]] * 1e4
    return out
