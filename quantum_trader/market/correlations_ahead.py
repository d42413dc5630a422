"""A recorded market's correlation matrices, computed a day of refresh periods at a time.

A backtest asks for one matrix per refresh period (hourly), each from the returns visible at
the first instant it asks in that period. Computed one at a time between a year's steps, a
matrix took ≈ 54 µs; in a tight loop over the periods ahead, ≈ 26 µs (the same NumPy calls,
with their code and data warm). Each matrix ahead is computed at its period's start and kept
with the rows it was computed from; it is used only when the instant asked shows the same
rows, so its returns, and so the matrix, are the ones `correlation_matrix` would give there.
Once a correlation process has answered (correlations_aside.py), its matrices are taken the
same way, a day of periods made into objects at a time. Only a model over a recording looks
ahead: a live model sees no rows ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from quantum_trader.domain import FloatArray
from quantum_trader.domain.correlation import CorrelationMatrix, correlation_matrix

if TYPE_CHECKING:
    from quantum_trader.market.correlations_aside import Matrices

Rows = tuple[tuple[str, int], ...]  # each symbol shown, with its visible row
ReturnsAt = Callable[[int], tuple[Rows, Mapping[str, FloatArray]]]


class CorrelationsAhead:
    """The matrices of the next `periods` refresh periods, computed (or taken from the
    correlation process's answer) when one is missing."""

    def __init__(self, periods: int, refresh_ms: int, lookback: int, returns_at: ReturnsAt) -> None:
        self._periods = max(1, periods)  # the period asked for, at least
        self._refresh_ms = refresh_ms
        self._lookback = lookback
        self._returns_at = returns_at  # the rows and their returns at an instant
        self._ahead: dict[int, tuple[Rows, CorrelationMatrix]] = {}
        # Every period's, once a correlation process answers (correlations_aside.py).
        self.computed: Callable[[], Matrices | None] = lambda: None

    def at(self, period: int, rows: Rows) -> CorrelationMatrix | None:
        """The matrix of `period` when it was computed from `rows`; None otherwise (the
        caller computes it from its own returns)."""
        if period not in self._ahead:
            computed = self.computed()
            if computed is not None:
                self._take_from(computed, period)
            else:
                self._compute_from(period)
        ahead = self._ahead.pop(period, None)
        return ahead[1] if ahead is not None and ahead[0] == rows else None

    def _take_from(self, computed: Matrices, period: int) -> None:
        """The process's matrices of the periods ahead, made into objects in one loop: one at
        a time between a year's steps, each took ≈ 17 µs of CPU (NumPy's code gone cold)."""
        self._ahead.clear()
        for ahead in range(period, period + self._periods):
            taken = computed.computed_at(ahead)
            if taken is not None:
                self._ahead[ahead] = taken

    def _compute_from(self, period: int) -> None:
        self._ahead.clear()
        for ahead in range(period, period + self._periods):
            rows, returns = self._returns_at(ahead * self._refresh_ms)
            self._ahead[ahead] = rows, correlation_matrix(returns, None, self._lookback)
