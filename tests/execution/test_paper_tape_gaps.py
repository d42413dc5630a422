"""The paper exchange's slippage volatility (PriceTape.atr_pct_at) after a gap in the
recorded bars: restarted as at the tape's start, never a true range spanning the gap."""

from __future__ import annotations

import numpy as np

from quantum_trader.domain import Bars
from quantum_trader.execution.paper_markets import ATR_PERIOD, PriceTape
from quantum_trader.market.layout import TIMEFRAME_MS
from quantum_trader.ta import talib

STEP = TIMEFRAME_MS["5m"]
BEFORE, AFTER = 300, 300  # bars each side of the gap
GAP_BARS = 3 * 24 * 12  # three days missing


def tape() -> Bars:
    """A calm market at 100 whose recording stops for three days and resumes at 130: bars
    of 0.2 % range on either side, the jump only across the gap."""
    rng = np.random.default_rng(7)
    level = np.r_[np.full(BEFORE, 100.0), np.full(AFTER, 130.0)]
    close = level * (1 + rng.normal(0, 0.0005, BEFORE + AFTER))
    time_ms = np.r_[np.arange(BEFORE), np.arange(AFTER) + BEFORE + GAP_BARS] * STEP
    volume = np.ones(BEFORE + AFTER)
    high, low = close * 1.001, close * 0.999
    return Bars("BTC/USDT:USDT", STEP, time_ms.astype(np.int64), close, high, low, close, volume)


def closed_after(bars: Bars, row: int) -> int:
    """An instant at which `row` is the last closed bar."""
    return int(bars.time_ms[row]) + STEP


def test_the_first_bars_after_a_gap_hold_the_volatility_of_before_it() -> None:
    bars = tape()
    prices = PriceTape(bars, None)
    last_before = prices.atr_pct_at(closed_after(bars, BEFORE - 1))
    assert 0 < last_before < 0.005  # ≈ the bars' 0.2 % range
    for row in range(BEFORE, BEFORE + ATR_PERIOD):  # the restarted ATR still warming up
        assert prices.atr_pct_at(closed_after(bars, row)) == last_before


def test_after_its_warm_up_the_volatility_is_that_of_the_bars_after_the_gap_alone() -> None:
    bars = tape()
    prices = PriceTape(bars, None)
    after = slice(BEFORE, BEFORE + AFTER)
    alone = talib.ATR(bars.high[after], bars.low[after], bars.close[after], ATR_PERIOD)
    for k in (ATR_PERIOD, ATR_PERIOD + 5, AFTER - 1):
        expected = alone[k] / bars.close[BEFORE + k]
        assert prices.atr_pct_at(closed_after(bars, BEFORE + k)) == expected
    # Across the gap the first true range would be the 30 % jump: ATR ≈ 1.6 % of the price
    # the bar after it, decaying by 13/14 a bar (hours at 5 m).
    assert prices.atr_pct_at(closed_after(bars, BEFORE + ATR_PERIOD)) < 0.005


def test_a_tape_without_a_gap_has_the_atr_of_all_its_bars() -> None:
    bars = tape()
    whole = Bars(
        bars.symbol,
        STEP,
        np.arange(BEFORE + AFTER, dtype=np.int64) * STEP,
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
    )
    prices = PriceTape(whole, None)
    atr = talib.ATR(whole.high, whole.low, whole.close, ATR_PERIOD) / whole.close
    assert prices.atr_pct_at(closed_after(whole, ATR_PERIOD - 1)) == 0.0  # warming up
    for row in (ATR_PERIOD, BEFORE, BEFORE + ATR_PERIOD, BEFORE + AFTER - 1):
        assert prices.atr_pct_at(closed_after(whole, row)) == atr[row]
