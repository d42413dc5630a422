"""Signal sources for driving the daemon against the stand-in."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from quantum_trader.domain import Bars, SignalSeries


class AlwaysBuy:
    """A signal source that says BUY with high confidence on every bar: the executor enters
    whenever it may."""

    name = "always_buy"
    warmup_hours = 1
    history_hours = 1

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        series = {}
        for symbol, b in bars.items():
            action = np.ones(len(b), dtype=np.int8)
            confidence = np.full(len(b), 0.9)
            series[symbol] = SignalSeries(action, confidence, {self.name: (action, confidence)})
        return series
