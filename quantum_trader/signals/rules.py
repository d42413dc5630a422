"""The rule-based technical agent: trend plus momentum, confidence from trend strength.

It is the fallback when no trained ensemble exists and the baseline the ensemble must beat.

- Trend: fast EMA above the slow EMA with the close above the slow EMA is up (mirror for down).
- Momentum: RSI between 50 and 70 confirms an up trend, between 30 and 50 a down trend; outside
  those bands (stretched or against the trend) the agent holds.
- Confidence: half from ADX (trend strength, 0 at ADX 15, full at ADX 45), half from the EMA
  spread measured in ATRs (full at 2 ATR); clipped to [0, 1].

It works on closed hourly bars aggregated from the execution bars, and each execution row gets
the signal of the latest hour closed by then (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from quantum_trader.domain import Bars, SignalSeries
from quantum_trader.market import indicators
from quantum_trader.market.resample import hourly_row_for, on_rows, resample_hourly
from quantum_trader.signals.settings import SignalsSettings

RSI_CEILING = 70.0
RSI_FLOOR = 30.0
RSI_MIDLINE = 50.0


class RuleAgent:
    """SignalSource over any timeframe; vectorized, no look-ahead."""

    def __init__(self, settings: SignalsSettings) -> None:
        self._settings = settings

    @property
    def name(self) -> str:
        return "rules"

    @property
    def warmup_hours(self) -> int:
        """Three slow-EMA spans of hours: the EMA seeds no longer matter after that."""
        s = self._settings
        return 3 * max(s.rules_slow_ema, 2 * s.rules_adx_period, s.rules_rsi_period)

    @property
    def history_hours(self) -> int:
        """The warm-up: the EMAs and ADX seeded before a gap matter until then."""
        return self.warmup_hours

    def evaluate(
        self, bars: Mapping[str, Bars], tail: int | None = None
    ) -> dict[str, SignalSeries]:
        return {symbol: self._on_execution_rows(b) for symbol, b in bars.items()}

    def hourly_actions(self, hourly: Bars) -> npt.NDArray[np.int8]:
        """The agent's action (+1 BUY, −1 SELL, 0 HOLD) at each closed hourly bar."""
        return self._series(hourly).action

    def _on_execution_rows(self, bars: Bars) -> SignalSeries:
        hourly = resample_hourly(bars)
        rows = hourly_row_for(bars, hourly)
        signals = self._series(hourly)
        known = rows >= 0
        action = np.zeros(len(bars), dtype=np.int8)
        action[known] = signals.action[rows[known]]
        confidence = np.nan_to_num(on_rows(signals.confidence, rows), nan=0.0)
        return SignalSeries(action, confidence, {self.name: (action, confidence)})

    def _series(self, bars: Bars) -> SignalSeries:
        s = self._settings
        close = bars.close
        fast = indicators.ema(close, s.rules_fast_ema)
        slow = indicators.ema(close, s.rules_slow_ema)
        momentum = indicators.rsi(close, s.rules_rsi_period)
        strength = indicators.adx(bars, s.rules_adx_period)
        atr = indicators.atr(bars, s.rules_adx_period)
        with np.errstate(divide="ignore", invalid="ignore"):  # an ATR of 0: flat prices
            up = (
                (fast > slow) & (close > slow) & (momentum > RSI_MIDLINE) & (momentum < RSI_CEILING)
            )
            down = (
                (fast < slow) & (close < slow) & (momentum < RSI_MIDLINE) & (momentum > RSI_FLOOR)
            )
            adx_part = np.clip((strength - 15.0) / 30.0, 0.0, 1.0)
            spread_part = np.clip(np.abs(fast - slow) / (2.0 * atr), 0.0, 1.0)
        confidence = np.nan_to_num(0.5 * adx_part + 0.5 * spread_part, nan=0.0)
        action = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
        confidence = np.where(action != 0, confidence, 0.0)
        return SignalSeries(action, confidence, {self.name: (action, confidence)})
