"""Health monitor (SPEC §8): each check at its threshold, and the shutdown rule."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from quantum_trader.config import HealthSettings
from quantum_trader.ops.health import (
    HealthMonitor,
    HealthReport,
    HealthSample,
    HealthStatus,
    assess,
)

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
SETTINGS = HealthSettings()


def status_of(**change: object) -> HealthStatus:
    return assess(replace(GOOD, **change), SETTINGS, 100.0).status  # type: ignore[arg-type]


def test_a_healthy_process_is_healthy() -> None:
    assert assess(GOOD, SETTINGS, 100.0) == assess(GOOD, SETTINGS, 100.0)
    assert status_of() is HealthStatus.HEALTHY


@pytest.mark.parametrize(
    ("latency_ms", "expected"),
    [
        (499.9, HealthStatus.HEALTHY),
        (500.0, HealthStatus.DEGRADED),
        (999.9, HealthStatus.DEGRADED),
        (1000.0, HealthStatus.DEGRADED),  # too slow, but on its own: a blip (retried, say)
        (None, HealthStatus.DEGRADED),  # one failed read on its own: a blip
    ],
)
def test_exchange_latency(latency_ms: float | None, expected: HealthStatus) -> None:
    assert status_of(exchange_latency_ms=latency_ms) is expected


def test_a_balance_below_the_minimum_is_critical() -> None:
    assert status_of(balance_usdt=Decimal("100")) is HealthStatus.HEALTHY
    assert status_of(balance_usdt=Decimal("99.99")) is HealthStatus.CRITICAL


def test_the_error_rate_and_overruns_degrade_at_five_percent() -> None:
    assert status_of(failed_steps=4) is HealthStatus.HEALTHY
    assert status_of(failed_steps=5) is HealthStatus.DEGRADED
    assert status_of(overruns=5) is HealthStatus.DEGRADED


def test_cpu_degrades_and_memory_is_critical() -> None:
    assert status_of(cpu_pct=80.0) is HealthStatus.HEALTHY
    assert status_of(cpu_pct=80.1) is HealthStatus.DEGRADED
    assert status_of(memory_pct=90.1) is HealthStatus.CRITICAL


def test_models_pass_their_status_through() -> None:
    assert status_of(models_status="DEGRADED") is HealthStatus.DEGRADED
    assert status_of(models_status="CRITICAL") is HealthStatus.CRITICAL


def test_every_failing_check_is_named() -> None:
    report = assess(replace(GOOD, exchange_latency_ms=None, cpu_pct=99.0), SETTINGS, 100.0)
    assert report.problems == (
        "exchange unreachable (CRITICAL if the next read fails or is slow too)",
        "cpu % 99.0 > 80.0",
    )


UNREACHABLE = replace(GOOD, exchange_latency_ms=None, balance_usdt=None)  # as the heartbeat samples


def test_one_failed_read_is_degraded_and_trading_goes_on() -> None:
    monitor = HealthMonitor(SETTINGS, 100.0)
    report = monitor.record(UNREACHABLE)
    # The balance was not read, not read as 0: no "balance 0.00 < 100.00" beside it.
    assert report == HealthReport(
        HealthStatus.DEGRADED,
        ("exchange unreachable (CRITICAL if the next read fails or is slow too)",),
    )
    assert monitor.critical_in_a_row == 0
    assert monitor.record(GOOD).status is HealthStatus.HEALTHY  # the blip is over


def test_the_second_failed_read_in_a_row_is_critical() -> None:
    monitor = HealthMonitor(SETTINGS, 100.0)
    monitor.record(UNREACHABLE)
    report = monitor.record(UNREACHABLE)
    assert report == HealthReport(
        HealthStatus.CRITICAL, ("exchange unreachable: 2 failed or slow reads in a row",)
    )
    monitor.record(GOOD)
    assert monitor.record(UNREACHABLE).status is HealthStatus.DEGRADED  # counted afresh


def test_a_slow_read_is_a_blip_too_and_counts_with_failed_ones() -> None:
    """A read that needed the adapter's retries (0.5 s, then 2 s) answers in seconds: one such
    sample is DEGRADED; a second bad one in a row, slow or failed, is CRITICAL."""
    slow = replace(GOOD, exchange_latency_ms=2600.0)
    monitor = HealthMonitor(SETTINGS, 100.0)
    assert monitor.record(slow) == HealthReport(
        HealthStatus.DEGRADED,
        ("exchange latency 2600 ms (CRITICAL if the next read fails or is slow too)",),
    )
    assert monitor.record(GOOD).status is HealthStatus.HEALTHY
    monitor.record(slow)
    assert monitor.record(UNREACHABLE) == HealthReport(
        HealthStatus.CRITICAL, ("exchange unreachable: 2 failed or slow reads in a row",)
    )
    assert monitor.record(slow).problems == (
        "exchange latency 2600 ms: 3 failed or slow reads in a row",
    )


def test_blips_between_good_reads_never_stop_the_daemon() -> None:
    monitor = HealthMonitor(SETTINGS, 100.0)
    for _ in range(10):
        assert monitor.record(UNREACHABLE).status is HealthStatus.DEGRADED
        monitor.record(GOOD)
    assert not monitor.should_shut_down


def test_an_outage_stops_the_daemon_after_three_critical_samples() -> None:
    """The first failed read is DEGRADED, the next three CRITICAL: the fourth stops it."""
    monitor = HealthMonitor(SETTINGS, 100.0)
    statuses = [monitor.record(UNREACHABLE).status for _ in range(3)]
    assert statuses == [HealthStatus.DEGRADED, HealthStatus.CRITICAL, HealthStatus.CRITICAL]
    assert not monitor.should_shut_down
    monitor.record(UNREACHABLE)
    assert monitor.should_shut_down


def test_three_critical_samples_in_a_row_ask_for_a_shutdown() -> None:
    monitor = HealthMonitor(SETTINGS, 100.0)
    bad = replace(GOOD, memory_pct=95.0)
    monitor.record(bad)
    monitor.record(bad)
    monitor.record(GOOD)  # a good sample resets the count
    monitor.record(bad)
    monitor.record(bad)
    assert not monitor.should_shut_down
    monitor.record(bad)
    assert monitor.should_shut_down
