"""Regime detection (SPEC §3.2, §3.3): classification, thresholds, no look-ahead, caching."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import Bars, FloatArray, GlobalRegime, Regime
from quantum_trader.gates.settings import RegimeSettings
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.regime import (
    REGIMES,
    atr_ratio,
    daily_closes,
    global_regime,
    latest_regime,
    regime_series,
    trailing_mean,
)

HOUR_MS = 3_600_000
REGIME = RegimeSettings()
T0 = datetime(2025, 10, 1, tzinfo=UTC)
SAMPLE = CandleStore(bundled_sample_dir()).load_bars("BTC/USDT:USDT", "1h").slice(0, 800)


def bars_from_close(close: FloatArray, spread: float = 0.002, symbol: str = "X/USDT:USDT") -> Bars:
    n = close.shape[0]
    return Bars(
        symbol,
        HOUR_MS,
        np.arange(n, dtype=np.int64) * HOUR_MS,
        close.copy(),
        close * (1 + spread),
        close * (1 - spread),
        close,
        np.ones(n),
    )


def trend(n: int = 400, symbol: str = "T/USDT:USDT") -> Bars:
    wiggle = 0.001 * np.sin(np.arange(n))
    return bars_from_close(100 * np.exp(np.arange(n) * 0.004 + wiggle), symbol=symbol)


def calm_range(n: int = 400, symbol: str = "R/USDT:USDT") -> Bars:
    """A tight oscillation whose swings slowly shrink (volatility below its own mean)."""
    amplitude = np.linspace(0.4, 0.2, n)
    return bars_from_close(100 + np.sin(np.arange(n) * 0.7) * amplitude, 0.001, symbol)


def test_a_steady_rise_is_trending() -> None:
    assert latest_regime(trend(), REGIME) is Regime.TRENDING


def test_a_tight_oscillation_is_ranging() -> None:
    assert latest_regime(calm_range(), REGIME) is Regime.RANGING


def breakout() -> Bars:
    """A calm range, then five wide bars that close above the range."""
    calm = calm_range(400)
    jump = bars_from_close(np.array([100.5, 99.0, 101.5, 98.0, 104.0]), spread=0.02)
    n = len(calm) + len(jump)
    return Bars(
        "K/USDT:USDT",
        HOUR_MS,
        np.arange(n, dtype=np.int64) * HOUR_MS,
        np.concatenate((calm.open, jump.open)),
        np.concatenate((calm.high, jump.high)),
        np.concatenate((calm.low, jump.low)),
        np.concatenate((calm.close, jump.close)),
        np.ones(n),
    )


def test_a_volatile_break_out_of_a_calm_range_is_breakout() -> None:
    assert latest_regime(breakout(), REGIME) is Regime.BREAKOUT


def test_warm_up_rows_are_choppy() -> None:
    codes = regime_series(trend(30), REGIME)
    assert {REGIMES[c] for c in codes} == {Regime.CHOPPY}
    assert latest_regime(trend(0), REGIME) is Regime.CHOPPY


def test_trending_threshold_on_adx() -> None:
    bars = trend()
    adx = float(talib.ADX(bars.high, bars.low, bars.close, timeperiod=14)[-1])
    below = RegimeSettings(trending_min_adx=adx - 1e-6)
    above = RegimeSettings(trending_min_adx=adx + 1e-6)
    assert latest_regime(bars, below) is Regime.TRENDING
    assert latest_regime(bars, above) is not Regime.TRENDING


def test_ranging_thresholds_on_adx_and_atr_ratio() -> None:
    bars = calm_range()
    adx = float(talib.ADX(bars.high, bars.low, bars.close, timeperiod=14)[-1])
    ratio = float(atr_ratio(bars, RegimeSettings())[-1])
    assert latest_regime(bars, RegimeSettings(ranging_max_adx=adx + 1e-6)) is Regime.RANGING
    assert latest_regime(bars, RegimeSettings(ranging_max_adx=adx - 1e-6)) is Regime.CHOPPY
    loose = RegimeSettings(ranging_max_atr_ratio=ratio + 1e-9)
    tight = RegimeSettings(ranging_max_atr_ratio=ratio - 1e-9)
    assert latest_regime(bars, loose) is Regime.RANGING
    assert latest_regime(bars, tight) is Regime.CHOPPY


def test_breakout_threshold_on_atr_ratio() -> None:
    bars = breakout()
    ratio = float(atr_ratio(bars, RegimeSettings())[-1])
    at = RegimeSettings(breakout_min_atr_ratio=ratio)
    over = RegimeSettings(breakout_min_atr_ratio=ratio + 1e-6)
    assert latest_regime(bars, at) is Regime.BREAKOUT
    assert latest_regime(bars, over) is Regime.CHOPPY


@settings(max_examples=25, deadline=None)
@given(stop=st.integers(1, len(SAMPLE)))
def test_no_look_ahead(stop: int) -> None:
    full = regime_series(SAMPLE, REGIME)
    assert np.array_equal(regime_series(SAMPLE.slice(0, stop), REGIME), full[:stop])


def test_trailing_mean_uses_only_the_past() -> None:
    values = np.array([np.nan, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(trailing_mean(values, 2), [np.nan, 1.0, 1.5, 2.5, 3.5])


def test_daily_closes_keep_only_complete_utc_days() -> None:
    close = np.arange(1.0, 52.0)
    bars = bars_from_close(close)
    assert list(daily_closes(bars)) == [24.0, 48.0]
    assert list(daily_closes(bars.slice(0, 48))) == [24.0, 48.0]


def test_global_regime_band() -> None:
    flat = np.full(250, 100.0)
    assert global_regime(flat, REGIME, price=110.001) is GlobalRegime.UPTREND
    assert global_regime(flat, REGIME, price=109.999) is GlobalRegime.SIDEWAYS
    assert global_regime(flat, REGIME, price=89.999) is GlobalRegime.DOWNTREND
    assert global_regime(flat, REGIME, price=90.001) is GlobalRegime.SIDEWAYS
    assert global_regime(np.append(flat, 150.0), REGIME) is GlobalRegime.UPTREND
    assert global_regime(np.full(199, 100.0), REGIME, price=200.0) is GlobalRegime.SIDEWAYS
