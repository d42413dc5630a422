"""Missing inputs are health items (DEGRADED, named) that clear when the input arrives: the BTC
daily closes of the global regime (recorded, and from the exchange), and symbols whose candles
were refused this cycle."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from structlog.testing import capture_logs
from test_exchange_feed_fakes import SampleSource, writable

from quantum_trader.app_exchange import DailyRegime
from quantum_trader.clock import ManualClock, ms_from_utc
from quantum_trader.config import HealthSettings, Settings
from quantum_trader.domain import Bars
from quantum_trader.gates.settings import RegimeSettings
from quantum_trader.market.candle_store import CandleStore, bundled_sample_dir
from quantum_trader.market.exchange_feed import ExchangeFeed
from quantum_trader.market.setup import missing_inputs, recorded_input_check
from quantum_trader.ops.health import HealthMonitor, HealthSample, HealthStatus

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
DAY_MS = 86_400_000
GOOD = HealthSample(
    exchange_latency_ms=120.0,
    balance_usdt=Decimal("10000"),
    models_status="HEALTHY",
    steps=100,
    failed_steps=0,
    overruns=0,
    cpu_pct=20.0,
    memory_pct=40.0,
)


def monitor() -> HealthMonitor:
    return HealthMonitor(HealthSettings(), 100.0)


def test_the_recorded_regime_item_clears_once_the_replay_has_200_btc_daily_closes(
    tmp_path: Path,
) -> None:
    # The sample's BTC hourly candles start on 2025-03-01: 200 daily closes by 2025-09-17.
    clock = ManualClock(datetime(2025, 9, 10, tzinfo=UTC))
    health = monitor()
    store = CandleStore(bundled_sample_dir())
    health.checks.append(recorded_input_check(store, Settings(data_dir=tmp_path), None, clock))
    report = health.record(GOOD)
    assert report.status is HealthStatus.DEGRADED
    (problem,) = report.problems
    assert problem.startswith("global regime: 193 of 200 BTC daily closes")
    assert "stays SIDEWAYS" in problem

    clock.advance(10 * 86_400)
    with capture_logs() as logs:
        report = health.record(GOOD)
    assert report.status is HealthStatus.HEALTHY
    assert report.problems == ()
    assert [e["daily_closes"] for e in logs if e["event"] == "global_regime_available"] == [203]


def test_without_btc_hourly_candles_the_regime_item_stays(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2025, 11, 1, tzinfo=UTC))
    health = monitor()
    store = CandleStore(tmp_path)  # no candles at all
    health.checks.append(recorded_input_check(store, Settings(data_dir=tmp_path), None, clock))
    (problem,) = health.record(GOOD).problems
    assert problem.startswith("global regime: 0 of 200 BTC daily closes")
    assert "download-data --symbols BTC/USDT:USDT --timeframe 1h" in problem


def test_an_unreadable_btc_hourly_file_is_named_as_such_not_as_missing(tmp_path: Path) -> None:
    name = "BTC_USDT_USDT-1h-futures.feather"
    (tmp_path / name).write_bytes((bundled_sample_dir() / name).read_bytes()[:500])  # cut short
    store, settings = CandleStore(tmp_path), Settings(data_dir=tmp_path)
    clock = ManualClock(datetime(2025, 11, 1, tzinfo=UTC))
    with capture_logs() as logs:
        (line,) = missing_inputs(store, settings, None, ms_from_utc(clock.now()))
    assert line.startswith(f"global regime: BTC's hourly candles cannot be used ({name}: ")
    assert "stays SIDEWAYS" in line
    assert "download-data --symbols BTC/USDT:USDT --timeframe 1h --days 210" in line
    assert [e["hint"] for e in logs if e["event"] == "global_regime_unavailable"] == [line]
    health = monitor()
    health.checks.append(recorded_input_check(store, settings, None, clock))
    assert health.record(GOOD).problems == (line,)
    clock.advance(300 * 86_400)  # time does not mend a file
    assert health.record(GOOD).problems == (line,)


def daily(count: int, end_ms: int) -> Bars:
    """`count` closed daily BTC candles ending at `end_ms` (a day boundary)."""
    times = end_ms - DAY_MS * np.arange(count, 0, -1, dtype=np.int64)
    close = np.linspace(60_000.0, 100_000.0, count)
    return Bars(BTC, DAY_MS, times, close, close * 1.01, close * 0.99, close, np.ones(count))


async def test_the_exchange_regime_item_clears_when_the_daily_closes_arrive() -> None:
    now = datetime(2025, 11, 1, tzinfo=UTC)
    source = SampleSource(ms_from_utc(now))
    regime = DailyRegime(source, RegimeSettings(), refresh_s=0.0)
    health = monitor()
    health.checks.append(regime.health_lines)
    assert health.record(GOOD).problems == ()  # nothing read yet: nothing to say
    await regime.refresh(now)  # the source has no daily BTC candles: the read fails
    (problem,) = health.record(GOOD).problems
    assert problem.startswith("global regime: 0 of 200 BTC daily closes in the exchange")
    source.overrides[BTC] = daily(150, ms_from_utc(now))  # a recent listing, say
    await regime.refresh(now)
    (problem,) = health.record(GOOD).problems
    assert problem.startswith("global regime: 150 of 200")

    source.overrides[BTC] = daily(210, ms_from_utc(now))
    await regime.refresh(now)
    assert health.record(GOOD).status is HealthStatus.HEALTHY


async def test_a_symbol_whose_candles_are_refused_is_an_item_until_they_are_good() -> None:
    now = datetime(2025, 11, 1, tzinfo=UTC)
    source = SampleSource(ms_from_utc(now))
    good = source.bars(ETH, "5m")
    broken = writable(good)
    broken.close[int(np.searchsorted(broken.time_ms, ms_from_utc(now))) - 3] = np.nan
    source.overrides[ETH] = broken
    feed = ExchangeFeed(source, (BTC, ETH), "5m", 40)
    health = monitor()
    health.checks.append(feed.health_lines)
    await feed.snapshot(now)
    report = health.record(GOOD)
    assert report.status is HealthStatus.DEGRADED
    (problem,) = report.problems
    assert problem.startswith(f"{ETH}: no usable market data ({ETH}: ")

    source.overrides.pop(ETH)
    await feed.snapshot(now)
    assert health.record(GOOD).problems == ()
