"""The fault campaign's signals: BUY, SELL or HOLD drawn per (seed, symbol, bar), confident, so
the daemon enters and exits often (campaign.py, kill.py, daemon_process.py)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import Bars, SignalSeries


class SeededSignals:
    """BUY, SELL or HOLD per (seed, symbol, bar), confident: many entries and exits.

    A bar's draw is keyed on its open time, not its place in the window: the daemon's window
    slides at a fixed length, so a draw by place gave a symbol the same action on every bar of
    a run and every symbol HOLD in 0.4⁴ ≈ 2.6 % of seeds (no entry). On each bar one symbol,
    drawn, buys or sells: every cycle has a candidate."""

    warmup_hours = 1
    history_hours = 1

    def __init__(self, seed: int) -> None:
        self._seed = seed

    @property
    def name(self) -> str:
        return f"seeded-{self._seed}"

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        symbols = sorted(bars)
        series = {}
        for symbol, b in bars.items():
            bar = b.time_ms // b.timeframe_ms
            draws = _draws(self._seed, symbol, bar) % 10
            leads = _draws(self._seed, "", bar) % len(symbols) == symbols.index(symbol)
            buy = np.where(leads, draws < 5, draws < 3)
            sell = ~buy & np.where(leads, True, draws < 6)
            action = np.where(buy, 1, np.where(sell, -1, 0)).astype(np.int8)
            confidence = np.full(len(b), 0.9)
            series[symbol] = SignalSeries(action, confidence, {self.name: (action, confidence)})
        return series


def _draws(seed: int, stream: str, bar: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """A 64-bit draw per bar number, from (seed, stream): splitmix64's finaliser."""
    key = np.random.SeedSequence([seed, zlib.crc32(stream.encode())]).generate_state(1, np.uint64)
    x = bar.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key[0]
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return mixed
