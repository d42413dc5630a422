"""The benchmark line: buy-and-hold of the backtest's own symbols, equal weight, no leverage.

At the start the initial equity is split equally and each part buys its symbol at the last
close known then; the line is the value of those holdings at each later instant (last close
known at that instant). No fees, no funding, no rebalancing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np

from quantum_trader.domain import Bars
from quantum_trader.report.curve import Curve, utc_times

NAME = "buy and hold, equal weight, same symbols"


def buy_and_hold(
    bars: Mapping[str, Bars], start: datetime, end: datetime, step: timedelta, initial: float
) -> Curve:
    """The benchmark's value in USDT at `start`, every `step` before `end`, and at `end`."""
    first, last = utc_times([start, end])
    times = np.append(np.arange(first, last, np.timedelta64(step), dtype="datetime64[us]"), last)
    moments = (times.astype(np.int64) + 500) // 1000  # milliseconds since the epoch, nearest
    value = np.zeros(moments.shape[0])
    share = initial / len(bars)
    for series in bars.values():
        # The last bar closed at each moment: close time = open + timeframe ≤ moment.
        rows = np.searchsorted(series.time_ms, moments - series.timeframe_ms, side="right") - 1
        closes = series.close[np.maximum(rows, 0)]
        value += share * closes / closes[0]
    return Curve(times, value)
