"""Health monitor (SPEC §8): measurements → HEALTHY / DEGRADED / CRITICAL with the failing checks.

DEGRADED is logged and trading goes on; CRITICAL stops new entries (the governor's breaker);
`critical_checks_to_shutdown` consecutive CRITICAL samples stop the daemon gracefully, with
every position still protected by its stop on the exchange. `assess` is pure; the daemon's
heartbeat takes the measurements.

A balance read that failed, or answered slower than `latency_acceptable_ms` (its time counts
the exchange adapter's retries: a blip answered on a retry is slow), is DEGRADED on its own: a
blip of seconds would otherwise refuse entries for a whole heartbeat and page someone. From
`BAD_READS_CRITICAL` such reads in a row it is CRITICAL, so an outage still stops new entries
at the second sample and the daemon after the shutdown rule's count of CRITICAL samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from quantum_trader.config import HealthSettings
from quantum_trader.record import record

BAD_READS_CRITICAL = 2  # failed or too slow exchange reads in a row that make it CRITICAL


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    CRITICAL = "CRITICAL"


_RANK = {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1, HealthStatus.CRITICAL: 2}


@record
class HealthSample:
    """One round of measurements. `exchange_latency_ms` None: the exchange did not answer
    (and `balance_usdt` is then None: not read, not 0); `cpu_pct` None: not measured this
    round (too soon after the previous one)."""

    exchange_latency_ms: float | None
    balance_usdt: Decimal | None
    models_status: str
    steps: int
    failed_steps: int
    overruns: int
    cpu_pct: float | None
    memory_pct: float


@record
class HealthReport:
    status: HealthStatus
    problems: tuple[str, ...]


def assess(
    sample: HealthSample,
    settings: HealthSettings,
    min_balance_usdt: float,
    bad_reads_in_a_row: int = 1,
) -> HealthReport:
    """The worst status of all checks, with one line per failing check.
    `bad_reads_in_a_row`: this sample's failed or too slow read and those right before it
    (the monitor counts them; a sample assessed on its own is its first)."""
    checks = [
        _latency(sample.exchange_latency_ms, bad_reads_in_a_row, settings),
        _balance(sample.balance_usdt, min_balance_usdt),
        _models(sample.models_status),
        _rate(sample.failed_steps, sample.steps, settings.max_error_rate, "error rate"),
        _rate(sample.overruns, sample.steps, settings.max_error_rate, "loops off schedule"),
        _cpu(sample.cpu_pct, settings.max_cpu_pct),
        _at_most(sample.memory_pct, settings.max_memory_pct, "memory %", HealthStatus.CRITICAL),
    ]
    failing = [c for c in checks if c is not None]
    status = max((s for s, _ in failing), key=_RANK.__getitem__, default=HealthStatus.HEALTHY)
    return HealthReport(status, tuple(text for _, text in failing))


Check = tuple[HealthStatus, str] | None


def _latency(latency_ms: float | None, bad_reads: int, s: HealthSettings) -> Check:
    if latency_ms is not None and latency_ms < s.latency_acceptable_ms:
        return _good_or_slow(latency_ms, s)
    what = "exchange unreachable" if latency_ms is None else f"exchange latency {latency_ms:.0f} ms"
    if bad_reads >= BAD_READS_CRITICAL:
        return HealthStatus.CRITICAL, f"{what}: {bad_reads} failed or slow reads in a row"
    return HealthStatus.DEGRADED, f"{what} (CRITICAL if the next read fails or is slow too)"


def _good_or_slow(latency_ms: float, s: HealthSettings) -> Check:
    if latency_ms >= s.latency_good_ms:
        return HealthStatus.DEGRADED, f"exchange latency {latency_ms:.0f} ms"
    return None


def _models(status: str) -> Check:
    if status in (HealthStatus.DEGRADED, HealthStatus.CRITICAL):
        return HealthStatus(status), f"models {status.lower()}"
    return None


def _balance(balance_usdt: Decimal | None, min_balance_usdt: float) -> Check:
    if balance_usdt is None:  # not read: the exchange check says so
        return None
    return _at_least(float(balance_usdt), min_balance_usdt, "balance", HealthStatus.CRITICAL)


def _rate(count: int, total: int, limit: float, name: str) -> Check:
    if total and count / total >= limit:
        return HealthStatus.DEGRADED, f"{name} {count}/{total}"
    return None


def _at_least(value: float, limit: float, name: str, status: HealthStatus) -> Check:
    return (status, f"{name} {value:.2f} < {limit:.2f}") if value < limit else None


def _cpu(cpu_pct: float | None, limit: float) -> Check:
    return None if cpu_pct is None else _at_most(cpu_pct, limit, "cpu %", HealthStatus.DEGRADED)


def _at_most(value: float, limit: float, name: str, status: HealthStatus) -> Check:
    return (status, f"{name} {value:.1f} > {limit:.1f}") if value > limit else None


HEALTHY = HealthReport(HealthStatus.HEALTHY, ())


@dataclass(slots=True)
class HealthMonitor:
    """Keeps the latest report and counts consecutive CRITICAL samples.

    `missing_inputs` are optional inputs found missing at start (market.setup); `checks`
    name the inputs missing now (asked at every sample, so an input that arrives clears its
    line: the BTC closes of the global regime, symbols without rules, brackets or candles).
    Each line is a DEGRADED problem — trading goes on, the report says what is missing."""

    settings: HealthSettings
    min_balance_usdt: float
    latest: HealthReport = HEALTHY
    critical_in_a_row: int = 0
    bad_reads_in_a_row: int = 0
    missing_inputs: list[str] = field(default_factory=list)
    checks: list[Callable[[], Sequence[str]]] = field(default_factory=list)

    def record(self, sample: HealthSample) -> HealthReport:
        latency = sample.exchange_latency_ms
        bad = latency is None or latency >= self.settings.latency_acceptable_ms
        self.bad_reads_in_a_row = self.bad_reads_in_a_row + 1 if bad else 0
        report = assess(sample, self.settings, self.min_balance_usdt, self.bad_reads_in_a_row)
        missing = [*self.missing_inputs, *(line for check in self.checks for line in check())]
        if missing:
            status = max(report.status, HealthStatus.DEGRADED, key=_RANK.__getitem__)
            report = HealthReport(status, (*report.problems, *missing))
        self.latest = report
        critical = self.latest.status is HealthStatus.CRITICAL
        self.critical_in_a_row = self.critical_in_a_row + 1 if critical else 0
        return self.latest

    @property
    def should_shut_down(self) -> bool:
        return self.critical_in_a_row >= self.settings.critical_checks_to_shutdown
