"""The benchmark line: buy-and-hold of the backtest's own symbols, equal weight, no leverage.

At the start the initial equity is split equally and each part buys its symbol at the last
close known then; the line is the value of those holdings at each later instant (last close
known at that instant). No fees, no funding, no rebalancing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import Bars

NAME = "buy and hold, equal weight, same symbols"


def buy_and_hold(
    bars: Mapping[str, Bars], start: datetime, end: datetime, step: timedelta, initial: float
) -> pd.Series:
    """The benchmark's value in USDT at `start`, every `step`, and at `end`."""
    times = list(pd.date_range(start, end, freq=step, inclusive="left").to_pydatetime())
    times.append(end)
    moments = np.array([ms_from_utc(t) for t in times], dtype=np.int64)
    value = np.zeros(moments.shape[0])
    share = initial / len(bars)
    for series in bars.values():
        # The last bar closed at each moment: close time = open + timeframe ≤ moment.
        rows = np.searchsorted(series.time_ms, moments - series.timeframe_ms, side="right") - 1
        closes = series.close[np.maximum(rows, 0)]
        value += share * closes / closes[0]
    return pd.Series(value, index=pd.DatetimeIndex(times), dtype="float64")
