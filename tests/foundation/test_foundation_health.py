"""Health monitor (SPEC §8): each check at its threshold, and the shutdown rule."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from quantum_trader.config import HealthSettings
from quantum_trader.ops.health import HealthMonitor, HealthSample, HealthStatus, assess

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
        (1000.0, HealthStatus.CRITICAL),
        (None, HealthStatus.CRITICAL),
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
    assert report.problems == ("exchange unreachable", "cpu % 99.0 > 80.0")


def test_three_critical_samples_in_a_row_ask_for_a_shutdown() -> None:
    monitor = HealthMonitor(SETTINGS, 100.0)
    bad = replace(GOOD, exchange_latency_ms=None)
    monitor.record(bad)
    monitor.record(bad)
    monitor.record(GOOD)  # a good sample resets the count
    monitor.record(bad)
    monitor.record(bad)
    assert not monitor.should_shut_down
    monitor.record(bad)
    assert monitor.should_shut_down
