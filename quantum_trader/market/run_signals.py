"""The signal of a run of equal signal rows: built once, the same object for every row of it."""

from __future__ import annotations

from quantum_trader.domain import Action, Signal, SignalSeries, Vote

_ACTIONS = {1: Action.BUY, -1: Action.SELL, 0: Action.HOLD}


class RunSignals:
    """Each symbol's signal of the run of rows it was last asked for (the market model's
    slow fields), from the signal series of the source named `source_name`."""

    def __init__(self, source_name: str) -> None:
        self._source = source_name
        self._signals: dict[str, tuple[int, Signal]] = {}  # symbol → (run, its signal)

    def of_run(self, symbol: str, series: SignalSeries, run: int) -> Signal:
        """The signal of the run starting at row `run`, the same object for every row of it."""
        cached = self._signals.get(symbol)
        if cached is not None and cached[0] == run:
            return cached[1]
        signal = self._signal(symbol, series, run)
        self._signals[symbol] = (run, signal)
        return signal

    def _signal(self, symbol: str, series: SignalSeries, row: int) -> Signal:
        # .item(): the Python int or float without a NumPy scalar in between; a list, not a
        # generator (each run of each symbol, ≈ 1,800 times in two weeks).
        votes = [
            Vote(model, _ACTIONS[actions.item(row)], confidences.item(row))
            for model, (actions, confidences) in series.votes.items()
        ]
        return Signal(
            symbol,
            _ACTIONS[series.action.item(row)],
            series.confidence.item(row),
            self._source,
            tuple(votes),
        )
