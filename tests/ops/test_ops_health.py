"""Health is the process's own and its transitions act: CRITICAL turns /health to 503, is
announced, stops new entries through the governor, and three in a row stop the daemon cleanly.
The public /health names no absolute path.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
from daemon_harness import Daemon, eventually
from ops_builders import Answer, Receiver, get, status_url

from quantum_trader.config import HealthSettings, MarketSettings, Settings
from quantum_trader.market.candle_store import bundled_sample_dir
from quantum_trader.ops.health import HealthSample, HealthStatus, assess
from quantum_trader.ops.process import ProcessSampler, cpu_quota_cores, memory_limit_bytes
from quantum_trader.ops.public_paths import public_places, without_absolute_paths


@pytest.mark.slow
def test_critical_health_answers_503_is_announced_halts_entries_and_stops_the_daemon(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    try:
        daemon = Daemon.start(
            tmp_path,
            QT_MARKET__REPLAY_SPEED="600",
            QT_RISK__MIN_BALANCE_USDT="1000000",  # the paper account's 10,000 is far below
            QT_EXECUTOR__HEARTBEAT_INTERVAL_S="2",
            QT_NOTIFY__WEBHOOK_URL=f"{receiver.url}/hook",
        )
        url = status_url(daemon)

        def critical_health() -> Answer | None:
            answer = get(f"{url}/health")
            return answer if answer.status == 503 else None

        critical = eventually(critical_health, 10, "/health to answer 503")
        assert critical.json()["status"] == "CRITICAL"
        assert any("balance" in p for p in critical.json()["problems"])
        halted = eventually(
            lambda: [
                t
                for t in get(f"{url}/status").json()["governor"]["trips"]
                if t["breaker"] == "HEALTH_CRITICAL"
            ],
            10,
            "the governor's HEALTH_CRITICAL breaker",
        )
        assert halted[0]["decision"] == "NO_NEW_TRADES"
        assert daemon.process.wait(timeout=30) == 0  # three CRITICAL samples: a clean stop
        daemon.stop(signal.SIGTERM)
    finally:
        receiver.close()
    changes = daemon.named("health_changed")
    assert changes[0]["previous"] == "HEALTHY"
    assert changes[0]["health"] == "CRITICAL"
    assert daemon.named("health_critical_shutdown")
    assert daemon.events[-1]["event"] == "daemon_stopped"
    kinds = receiver.kinds()
    assert kinds[0] == "daemon_started"
    assert "health_critical" in kinds
    assert "governor_trip" in kinds
    assert kinds[-1] == "daemon_stopped"
    assert receiver.received[-1].body["reason"] == "health CRITICAL"


def test_cpu_is_the_process_own_not_the_machine() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        times = iter([0.0, 2.0])  # construction, then a sample two (fake) seconds later
        sampler = ProcessSampler(psutil.Process(idle.pid), monotonic=lambda: next(times))
        busy_until = time.monotonic() + 0.5
        while time.monotonic() < busy_until:  # this process works; the sampled one sleeps
            sum(range(10_000))
        usage = sampler.sample()
    finally:
        idle.kill()
        idle.wait()
    assert usage.cpu_pct is not None
    assert usage.cpu_pct < 10.0
    assert 0 < usage.rss_bytes < 200 * 2**20


def test_cpu_is_not_guessed_from_a_window_too_short_to_measure() -> None:
    sampler = ProcessSampler()
    assert sampler.sample().cpu_pct is None  # right after start-up: no figure, no alarm
    sample = HealthSample(120.0, Decimal(10_000), "HEALTHY", 100, 0, 0, None, 40.0)
    assert assess(sample, HealthSettings(), 100.0).status is HealthStatus.HEALTHY


def test_memory_is_the_process_resident_set_over_its_limit() -> None:
    sampler = ProcessSampler()
    usage = sampler.sample()
    rss = psutil.Process().memory_info().rss
    assert abs(usage.rss_bytes - rss) < 50 * 2**20
    assert usage.memory_pct == pytest.approx(100 * usage.rss_bytes / sampler.memory_limit_bytes)
    assert sampler.memory_limit_bytes <= psutil.virtual_memory().total


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [("max 100000", None), ("150000 100000", 1.5), ("", None), (None, None), ("x y", None)],
)
def test_a_cgroup_cpu_quota_caps_the_cores(cpu_max: str | None, cores: float | None) -> None:
    assert cpu_quota_cores(cpu_max) == cores


@pytest.mark.parametrize(
    ("memory_max", "expected"),
    [("max", 8 * 2**30), ("1073741824", 2**30), (None, 8 * 2**30), ("99999999999999", 8 * 2**30)],
)
def test_a_cgroup_memory_limit_caps_the_memory(memory_max: str | None, expected: int) -> None:
    assert memory_limit_bytes(memory_max, 8 * 2**30) == expected


def test_a_sampler_reads_a_container_limits(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    (tmp_path / "memory.max").write_text(f"{2**30}\n")
    sampler = ProcessSampler(cgroup=tmp_path)
    assert sampler.cores == 0.5
    assert sampler.memory_limit_bytes == 2**30


def test_public_health_text_names_files_relative_to_the_data_dir_or_by_role(
    tmp_path: Path,
) -> None:
    recorded = tmp_path / "recorded"
    places = public_places(
        Settings(data_dir=tmp_path / "data", market=MarketSettings(replay_dir=recorded))
    )

    def public(text: str) -> str:
        return without_absolute_paths(text, places)

    assert public(f"0 of 200 BTC daily closes in {tmp_path}/data/market; it stays") == (
        "0 of 200 BTC daily closes in data_dir/market; it stays"
    )
    assert public(f"{recorded}/X-1h-futures.feather: no 'date' column") == (
        "market.replay_dir/X-1h-futures.feather: no 'date' column"
    )
    assert (
        public(f"closes in {bundled_sample_dir()} before") == "closes in the bundled sample before"
    )
    # A sibling of the data directory is not inside it: any other path keeps its last part.
    assert public(f"{tmp_path}/data2/quantum_trader.db is locked") == "quantum_trader.db is locked"
    unchanged = "error rate 3/10; BTC/USDT:USDT; http://host/hook; `download-data --days 210`"
    assert public(unchanged) == unchanged
