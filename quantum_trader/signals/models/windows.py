"""Forecaster inputs and targets from hourly bars (numpy only; no torch needed).

A window ending at hour t holds the last `lookback` hours, oldest first, in two channels:
0. log price relative to the close at t, divided by σ (the std of the window's hourly log
   returns) — instance normalisation in the spirit of RevIN, so one model fits every symbol;
1. log volume, standardised within the window.
Targets are the next `horizon` hours in the same units (price channel: log(close[t+h]/close[t])
/ σ). A forecast converts back to a log return by multiplying by σ. Row t uses bars ≤ t only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from quantum_trader.domain import FloatArray, IntArray

CHANNELS = 2
EPSILON = 1e-8
Float32Array = npt.NDArray[np.float32]


def window_rows_ok(n_bars: int, rows: IntArray, lookback: int) -> npt.NDArray[np.bool_]:
    """Rows with a full window behind them (t ≥ lookback, so σ has lookback returns)."""
    return np.asarray((rows >= lookback) & (rows < n_bars))


def build_windows(
    close: FloatArray, volume: FloatArray, rows: IntArray, lookback: int
) -> tuple[Float32Array, FloatArray]:
    """Return (len(rows), 2, lookback) float32 windows and σ per row; incomplete rows are 0/1."""
    n = rows.shape[0]
    out = np.zeros((n, CHANNELS, lookback), dtype=np.float32)
    scale = np.ones(n)
    ok = window_rows_ok(close.shape[0], rows, lookback)
    if not ok.any():
        return out, scale
    t = rows[ok]
    log_close = np.log(close)
    log_volume = np.log1p(volume)
    price = sliding_window_view(log_close, lookback)[t - lookback + 1]
    previous = sliding_window_view(log_close, lookback)[t - lookback]
    sigma = np.std(price - previous, axis=1) + EPSILON
    vol = sliding_window_view(log_volume, lookback)[t - lookback + 1]
    vol_z = (vol - vol.mean(axis=1, keepdims=True)) / (vol.std(axis=1, keepdims=True) + 1e-6)
    out[ok, 0] = (price - log_close[t][:, None]) / sigma[:, None]
    out[ok, 1] = vol_z
    scale[ok] = sigma
    return out, scale


def build_targets(
    close: FloatArray, volume: FloatArray, rows: IntArray, lookback: int, horizon: int
) -> Float32Array:
    """(len(rows), 2, horizon) float32 targets for windows ending at `rows` (t + horizon < n).

    The volume channel's targets use the window's own mean and std, as its inputs do. No row
    (a symbol that gave none, e.g. fewer bars than the horizon) is an empty array.
    """
    if rows.shape[0] == 0:
        return np.empty((0, CHANNELS, horizon), dtype=np.float32)
    log_close = np.log(close)
    log_volume = np.log1p(volume)
    t = rows
    _, sigma = build_windows(close, volume, rows, lookback)
    future_price = sliding_window_view(log_close, horizon)[t + 1]
    future_volume = sliding_window_view(log_volume, horizon)[t + 1]
    past_volume = sliding_window_view(log_volume, lookback)[t - lookback + 1]
    mean = past_volume.mean(axis=1, keepdims=True)
    std = past_volume.std(axis=1, keepdims=True) + 1e-6
    out = np.empty((t.shape[0], CHANNELS, horizon), dtype=np.float32)
    out[:, 0] = (future_price - log_close[t][:, None]) / sigma[:, None]
    out[:, 1] = (future_volume - mean) / std
    return out
