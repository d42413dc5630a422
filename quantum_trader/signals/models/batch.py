"""Assemble one model batch from many symbols' hourly bars (used by inference and training)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quantum_trader.domain import Bars, FloatArray, IntArray
from quantum_trader.record import record
from quantum_trader.signals.features import usable_rows
from quantum_trader.signals.models.base import Batch
from quantum_trader.signals.models.windows import CHANNELS, build_windows, window_rows_ok


@record
class SymbolFrame:
    """One symbol's closed hourly bars, their features, and the hourly rows to predict."""

    symbol: str
    hourly: Bars
    features: FloatArray
    rows: IntArray


def build_batch(frames: Sequence[SymbolFrame], lookback: int, with_windows: bool) -> Batch:
    """Stack the selected rows of every frame, in frame order, into one batch.

    A row whose hour traded nothing (volume 0: a halted or delisted market, a recording that
    stands still) is incomplete for every model: no model votes on a market no one trades in.
    """
    n_features = frames[0].features.shape[1] if frames else 0
    parts = [f.features[f.rows] for f in frames]
    features = np.concatenate(parts) if parts else np.zeros((0, n_features))
    n = features.shape[0]
    traded = (
        np.concatenate([f.hourly.volume[f.rows] > 0 for f in frames])
        if frames
        else np.zeros(0, dtype=np.bool_)
    )
    features_ok = usable_rows(features) & traded
    if not with_windows:
        return Batch(features, features_ok, None, np.zeros(n, dtype=np.bool_), np.ones(n))
    built = [build_windows(f.hourly.close, f.hourly.volume, f.rows, lookback) for f in frames]
    oks = [window_rows_ok(len(f.hourly), f.rows, lookback) for f in frames]
    windows = (
        np.concatenate([w for w, _ in built])
        if built
        else np.zeros((0, CHANNELS, lookback), dtype=np.float32)
    )
    scale = np.concatenate([s for _, s in built]) if built else np.ones(0)
    windows_ok = (np.concatenate(oks) if oks else np.zeros(0, dtype=np.bool_)) & traded
    return Batch(features, features_ok, windows, windows_ok, scale)
