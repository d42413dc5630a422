"""ExchangeFeed: closed bars only, incremental fetches, validation, funding cadence."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from test_exchange_feed_fakes import FIVE_MINUTES_MS, SampleSource, writable

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import FloatArray, IntArray
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.exchange_feed import ExchangeFeed, concat
from quantum_trader.market.replay import ReplayFeed

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
# 2 min 30 s into a 5m bar: the bar opened at 12:10 is still forming.
NOW = datetime(2025, 10, 1, 12, 12, 30, tzinfo=UTC)


def feed(source: SampleSource, history_bars: int = 300) -> ExchangeFeed:
    return ExchangeFeed(source, [BTC, ETH], "5m", history_bars)


async def test_first_snapshot_holds_closed_bars_only() -> None:
    source = SampleSource(ms_from_utc(NOW))
    snapshot = await feed(source).snapshot(NOW)
    bars = snapshot.bars[BTC]
    assert len(bars) == 300
    assert int(bars.time_ms[-1]) == ms_from_utc(datetime(2025, 10, 1, 12, 5, tzinfo=UTC))
    assert int(bars.time_ms[-1]) + FIVE_MINUTES_MS <= snapshot.time_ms
    assert np.all(np.diff(bars.time_ms) == FIVE_MINUTES_MS)


async def test_snapshot_matches_the_replay_of_the_same_recording() -> None:
    source = SampleSource(ms_from_utc(NOW))
    live = await feed(source).snapshot(NOW)
    replay = ReplayFeed(CandleStore(bundled_sample_dir()), [BTC, ETH], "5m", 300).snapshot_at(
        ms_from_utc(NOW)
    )
    for symbol in (BTC, ETH):
        assert np.array_equal(live.bars[symbol].time_ms, replay.bars[symbol].time_ms)
        assert np.array_equal(live.bars[symbol].close, replay.bars[symbol].close)
        assert live.funding_rate_8h[symbol] == pytest.approx(replay.funding_rate_8h[symbol])


async def test_no_candle_request_until_a_new_bar_has_closed() -> None:
    source = SampleSource(ms_from_utc(NOW))
    market = feed(source)
    await market.snapshot(NOW)
    first_calls = len(source.calls)
    for seconds in (30, 60, 120):  # still inside the same 5m bar
        later = NOW + timedelta(seconds=seconds)
        source.now_ms = ms_from_utc(later)
        await market.snapshot(later)
    assert len(source.calls) == first_calls


async def test_each_new_bar_is_fetched_once_and_the_window_slides() -> None:
    source = SampleSource(ms_from_utc(NOW))
    market = feed(source)
    before = (await market.snapshot(NOW)).bars[BTC]
    source.calls.clear()
    later = NOW + timedelta(minutes=5)
    source.now_ms = ms_from_utc(later)
    after = (await market.snapshot(later)).bars[BTC]
    assert [(c[2], c[3]) for c in source.calls if c[0] == BTC] == [
        (int(before.time_ms[-1]) + FIVE_MINUTES_MS, 1)
    ]
    assert len(after) == 300
    assert np.array_equal(after.time_ms[:-1], before.time_ms[1:])


@settings(max_examples=15, deadline=None)
@given(gap_bars=st.integers(min_value=1, max_value=4000))
async def test_a_gap_is_filled_in_pages_without_repeats(gap_bars: int) -> None:
    source = SampleSource(ms_from_utc(NOW), max_limit=1000)
    market = ExchangeFeed(source, [BTC], "5m", history_bars=5000)
    await market.snapshot(NOW)
    later = NOW + timedelta(minutes=5 * gap_bars)
    source.now_ms = ms_from_utc(later)
    bars = (await market.snapshot(later)).bars[BTC]
    assert np.all(np.diff(bars.time_ms) == FIVE_MINUTES_MS)
    assert int(bars.time_ms[-1]) == market.last_closed_open_ms(ms_from_utc(later))
    assert all(limit <= 1500 for *_, limit in source.calls)


async def test_funding_is_refreshed_at_most_hourly() -> None:
    source = SampleSource(ms_from_utc(NOW))
    market = feed(source)
    await market.snapshot(NOW)
    assert len(source.funding_calls) == 2
    for minutes in (5, 30, 59):
        moment = NOW + timedelta(minutes=minutes)
        source.now_ms = ms_from_utc(moment)
        await market.snapshot(moment)
    assert len(source.funding_calls) == 2
    moment = NOW + timedelta(minutes=60)
    source.now_ms = ms_from_utc(moment)
    await market.snapshot(moment)
    assert len(source.funding_calls) == 4


HOUR_MS = 3_600_000


@dataclass
class HourlyFundingSource(SampleSource):
    """The sample's candles; a settlement every hour, answered as Binance's GET
    /fapi/v1/fundingRate does: from startTime, oldest first, at most `page` (Binance: 1,000;
    another stand-in may hold fewer)."""

    page: int = 1000

    async def fetch_funding_rates(self, symbol: str, since_ms: int) -> tuple[IntArray, FloatArray]:
        self.funding_calls.append((symbol, since_ms))
        first = -(-since_ms // HOUR_MS) * HOUR_MS
        times = np.arange(first, self.now_ms + 1, HOUR_MS, dtype=np.int64)[: self.page]
        return times, 1e-4 * np.sin(times / HOUR_MS)


@pytest.mark.parametrize(("page", "requests"), [(1000, 2), (200, 7)])
async def test_funding_is_held_over_the_bars_window_in_pages_and_follows_the_clock(
    page: int, requests: int
) -> None:
    """What the signal source's funding feature reads for every bar of the window: hourly
    funding over 50 days of bars is 1,209 settlements, more than one request answers (pages
    are read until the newest is within 8 h of now, whatever a page holds); each refresh adds
    the new ones and lets go of those before the window."""
    source = HourlyFundingSource(ms_from_utc(NOW), page=page)
    days = 50
    market = ExchangeFeed(source, [BTC], "5m", history_bars=days * 288)
    window_ms = days * 24 * HOUR_MS + 8 * HOUR_MS  # the bars' and the longest interval

    def held() -> IntArray:
        return market.funding_series[BTC].time_ms

    def first_kept(now_ms: int) -> int:
        return -(-(now_ms - window_ms) // HOUR_MS) * HOUR_MS

    await market.snapshot(NOW)
    now_ms = ms_from_utc(NOW)
    assert len(source.funding_calls) == requests
    assert held()[0] == first_kept(now_ms)
    assert held()[-1] == now_ms // HOUR_MS * HOUR_MS
    assert set(np.diff(held()).tolist()) == {HOUR_MS}

    later = NOW + timedelta(days=2)
    source.now_ms = ms_from_utc(later)
    await market.snapshot(later)
    assert held()[0] == first_kept(source.now_ms)
    assert held()[-1] == source.now_ms // HOUR_MS * HOUR_MS
    assert set(np.diff(held()).tolist()) == {HOUR_MS}
    assert source.funding_calls[-1] == (BTC, now_ms // HOUR_MS * HOUR_MS + 1)  # the new only


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("close", float("nan"), "not a number"), ("low", 0.0, "non-positive low")],
)
async def test_bad_values_name_symbol_and_row_and_leave_only_that_symbol_out(
    column: str, value: float, message: str
) -> None:
    source = SampleSource(ms_from_utc(NOW))
    bars = writable(source.bars(ETH, "5m"))
    bad_row = int(np.searchsorted(bars.time_ms, ms_from_utc(NOW))) - 10
    getattr(bars, column)[bad_row] = value
    source.overrides[ETH] = bars
    with capture_logs() as logs:
        snapshot = await feed(source, history_bars=40).snapshot(NOW)
    assert ETH not in snapshot.bars  # untradeable this cycle
    assert BTC in snapshot.bars
    [rejected] = [e for e in logs if e["event"] == "market_data_rejected"]
    assert rejected["symbol"] == ETH
    assert re.search(rf"{ETH}: .*{message} at row 31", rejected["error"])


async def test_unsorted_times_are_refused() -> None:
    source = SampleSource(ms_from_utc(NOW))
    bars = writable(source.bars(BTC, "5m"))
    row = int(np.searchsorted(bars.time_ms, ms_from_utc(NOW))) - 5
    bars.time_ms[row], bars.time_ms[row - 1] = bars.time_ms[row - 1], bars.time_ms[row]
    source.overrides[BTC] = bars
    with capture_logs() as logs:
        snapshot = await feed(source, history_bars=40).snapshot(NOW)
    assert BTC not in snapshot.bars
    [rejected] = [e for e in logs if e["event"] == "market_data_rejected"]
    assert "not strictly increasing" in rejected["error"]


async def test_a_source_that_ignores_start_time_cannot_loop_the_feed() -> None:
    source = SampleSource(ms_from_utc(NOW), max_limit=500, ignores_start=True)
    market = feed(source, history_bars=300)
    with capture_logs() as logs:
        snapshot = await market.snapshot(NOW)
    assert snapshot.bars == {}
    rejected = [e for e in logs if e["event"] == "market_data_rejected"]
    assert rejected
    assert all("ignores startTime" in e["error"] for e in rejected)
    assert len(source.calls) <= 2 * len(rejected)  # per symbol: one page, then the refusal


@dataclass
class BadFundingSource(SampleSource):
    """The sample, then from `bad_from_ms` one more settlement of ETH at `rate`."""

    rate: float = 0.0
    bad_from_ms: int = 0

    async def fetch_funding_rates(self, symbol: str, since_ms: int) -> tuple[IntArray, FloatArray]:
        times, rates = await super().fetch_funding_rates(symbol, since_ms)
        if symbol != ETH or self.now_ms < self.bad_from_ms:
            return times, rates
        return np.append(times, self.bad_from_ms), np.append(rates, self.rate)


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), 0.5, -0.11])
async def test_an_implausible_funding_rate_from_the_exchange_keeps_the_rates_held(
    rate: float,
) -> None:
    later = NOW + timedelta(hours=1, minutes=1)
    source = BadFundingSource(ms_from_utc(NOW), rate=rate, bad_from_ms=ms_from_utc(later))
    market = feed(source)
    held = (await market.snapshot(NOW)).funding_rate_8h[ETH]
    source.now_ms = ms_from_utc(later)
    with capture_logs() as logs:
        snapshot = await market.snapshot(later)
    assert snapshot.funding_rate_8h[ETH] == held
    [rejected] = [e for e in logs if e["event"] == "market_data_rejected"]
    assert rejected["symbol"] == ETH
    assert rejected["error"].startswith(f"{ETH}: the exchange answered a funding rate of {rate:g}")
    assert "the rates held before are kept" in rejected["error"]


async def test_a_bad_candle_from_the_exchange_says_it_is_fetched_again() -> None:
    source = SampleSource(ms_from_utc(NOW))
    bars = writable(source.bars(ETH, "5m"))
    bars.close[int(np.searchsorted(bars.time_ms, ms_from_utc(NOW))) - 10] = float("nan")
    source.overrides[ETH] = bars
    with capture_logs() as logs:
        await feed(source, history_bars=40).snapshot(NOW)
    [rejected] = [e for e in logs if e["event"] == "market_data_rejected"]
    assert rejected["error"].endswith(
        "at row 31; the answer is not used: the symbol sits this cycle out and its bars are "
        "fetched again"
    )


async def test_a_gap_in_the_window_is_said_once_not_at_every_refresh() -> None:
    """The window is checked at every refresh and holds a gap for as long as it spans it
    (days at 5 m bars): said when it first appears, not every five minutes after."""
    source = SampleSource(ms_from_utc(NOW))
    bars = source.store.load_bars(BTC, "5m")
    cut = int(np.searchsorted(bars.time_ms, ms_from_utc(NOW - timedelta(hours=6))))
    source.overrides[BTC] = concat(bars.slice(0, cut), bars.slice(cut + 24, len(bars)))
    market = feed(source)
    with capture_logs() as logs:
        for minutes in range(0, 30, 5):  # six refreshes, each fetching one new bar
            later = NOW + timedelta(minutes=minutes)
            source.now_ms = ms_from_utc(later)
            snapshot = await market.snapshot(later)
            assert BTC in snapshot.bars
    said = [e for e in logs if e["event"] == "market_data_gaps"]
    assert [(e["source"], e["largest_missing_bars"]) for e in said] == [(BTC, 24)]
