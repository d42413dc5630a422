"""Features: resampling to closed hours, causal alignment, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_trader.domain import Bars
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.replay import FundingSeries
from quantum_trader.market.resample import HOUR_MS, hourly_row_for, resample_hourly
from quantum_trader.signals.features import (
    FEATURE_NAMES,
    compute_features,
    usable_rows,
)

BTC = "BTC/USDT:USDT"
STORE = CandleStore(bundled_sample_dir())
HOURLY = STORE.load_bars(BTC, "1h").slice(0, 420)
FUNDING = FundingSeries.from_rates(*STORE.load_funding(BTC))
FIVE_MIN = STORE.load_bars(BTC, "5m").slice(0, 12 * 30)


def perturbed_after(bars: Bars, t: int, factor: float) -> Bars:
    """Same bars up to row t, every later price and volume scaled."""
    scale = np.ones(len(bars))
    scale[t + 1 :] = factor
    wider = np.where(np.arange(len(bars)) > t, 1.01, 1.0)
    return Bars(
        bars.symbol,
        bars.timeframe_ms,
        bars.time_ms,
        bars.open * scale,
        bars.high * scale * wider,
        bars.low * scale,
        bars.close * scale,
        bars.volume * scale,
    )


def test_about_forty_named_features() -> None:
    features = compute_features(HOURLY, FUNDING)
    assert features.shape == (len(HOURLY), len(FEATURE_NAMES))
    assert 38 <= len(FEATURE_NAMES) <= 48
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    usable = usable_rows(features)
    assert not usable[:168].any()
    assert usable[200:].all()


@settings(max_examples=25, deadline=None)
@given(t=st.integers(min_value=150, max_value=410), factor=st.floats(0.5, 2.0))
def test_perturbing_later_bars_changes_no_feature_at_or_before_t(t: int, factor: float) -> None:
    before = compute_features(HOURLY, FUNDING)
    after = compute_features(perturbed_after(HOURLY, t, factor), FUNDING)
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])


def test_resampled_5m_matches_the_recorded_hourly_bars() -> None:
    five = STORE.load_bars(BTC, "5m")
    hourly = resample_hourly(five)
    recorded = STORE.load_bars(BTC, "1h")
    start = int(np.searchsorted(recorded.time_ms, hourly.time_ms[0]))
    same = recorded.slice(start, start + len(hourly))
    np.testing.assert_array_equal(hourly.time_ms, same.time_ms)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_allclose(getattr(hourly, column), getattr(same, column))
    np.testing.assert_allclose(hourly.volume, same.volume, rtol=1e-9)


def test_an_hour_still_forming_is_left_out() -> None:
    assert len(resample_hourly(FIVE_MIN)) == 30
    assert len(resample_hourly(FIVE_MIN.slice(0, 12 * 30 - 1))) == 29


def test_an_hour_that_started_before_the_first_bar_is_left_out() -> None:
    hourly = resample_hourly(FIVE_MIN.slice(3, 12 * 30))
    assert len(hourly) == 29
    assert hourly.time_ms[0] == FIVE_MIN.time_ms[12]


def test_each_5m_row_sees_only_hours_closed_by_its_own_close() -> None:
    hourly = resample_hourly(FIVE_MIN)
    index = hourly_row_for(FIVE_MIN, hourly)
    closes = FIVE_MIN.time_ms + FIVE_MIN.timeframe_ms
    assert (index[:11] == -1).all()
    assert index[11] == 0
    known = index >= 0
    assert (hourly.time_ms[index[known]] + HOUR_MS <= closes[known]).all()
    assert (closes[known] - (hourly.time_ms[index[known]] + HOUR_MS) < HOUR_MS).all()


def test_missing_funding_is_neutral() -> None:
    column = FEATURE_NAMES.index("funding_bps_8h")
    assert (compute_features(HOURLY, None)[:, column] == 0).all()
    assert np.abs(compute_features(HOURLY, FUNDING)[200:, column]).max() > 0


@pytest.mark.parametrize("funding", [None, FUNDING])
def test_feature_rows_ignore_funding_settled_after_the_bar_closes(
    funding: FundingSeries | None,
) -> None:
    full = compute_features(HOURLY, funding)
    shorter = compute_features(HOURLY.slice(0, 300), funding)
    np.testing.assert_array_equal(full[:300], shorter)
