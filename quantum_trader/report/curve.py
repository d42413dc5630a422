"""A time series for the report, in NumPy: the equity curve and the benchmark line.

The backtest's process builds its report without pandas (the chart process, which draws,
imports it anyway): pandas' import was ≈ 0.3 s of the command's. `last_per` is
`Series.resample(unit).last().dropna()` for these series (finite values) with a value at a
period's first instant counted in the period before: pandas sorts by time, stably, and keeps
the last value in each period that has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import FloatArray
from quantum_trader.record import record

Times = npt.NDArray[np.datetime64]  # UTC without a zone, to the microsecond


@record
class Curve:
    """`values[i]` at `times[i]`."""

    times: Times
    values: FloatArray

    @classmethod
    def of(cls, times: Sequence[datetime], values: Sequence[float]) -> Curve:
        return cls(utc_times(times), np.asarray(values, dtype=np.float64))

    @property
    def empty(self) -> bool:
        return len(self.values) == 0

    def last_per(self, unit: str) -> tuple[Times, FloatArray]:
        """Each period (a NumPy datetime unit: "D" a day, "M" a calendar month) that has a
        value, in order, with its last value. A value at a period's first instant closes the
        period before (the equity at 00:00 is the previous day's end; was: a day, or a month,
        of its own, e.g. a "2025-12" row for a backtest ending at 2025-12-01 00:00), except at
        the curve's first instant, which opens its period (the start)."""
        order = np.argsort(self.times, kind="stable")
        times = self.times[order]
        closing = np.where(times == times[:1], times, times - np.timedelta64(1, "us"))
        periods = closing.astype(f"datetime64[{unit}]")
        last = np.flatnonzero(np.append(periods[1:] != periods[:-1], True)) if len(order) else order
        return periods[last], self.values[order][last]


def utc_times(times: Sequence[datetime]) -> Times:
    """Aware or UTC-naive datetimes as UTC without a zone, to the microsecond."""
    naive = [t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t for t in times]
    return np.array(naive, dtype="datetime64[us]")


def drawdown(values: FloatArray) -> FloatArray:
    """Fall from the running peak, as a fraction (≤ 0)."""
    result: FloatArray = values / np.maximum.accumulate(values) - 1
    return result
