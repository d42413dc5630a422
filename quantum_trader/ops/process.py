"""The process's own CPU and memory, for the health monitor (SPEC §8): not the host's.

CPU is this process's use as a percentage of the CPU it may use: the cores in its affinity
mask, or its cgroup quota (a container's `--cpus`) when that is smaller. Memory is its
resident set as a percentage of the memory it may use: the machine's, or its cgroup limit
(a container's `--memory`) when that is smaller. cgroup v2 files; absent ones mean no limit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from quantum_trader.record import record

CGROUP_ROOT = Path("/sys/fs/cgroup")


MIN_CPU_WINDOW_S = 1.0


@record
class ProcessUsage:
    """`cpu_pct` None: too little time since the previous sample to say (the first one)."""

    cpu_pct: float | None
    memory_pct: float
    rss_bytes: int


def cpu_quota_cores(cpu_max: str | None) -> float | None:
    """Cores allowed by a cgroup v2 `cpu.max` ("quota period" or "max period"); None: no cap."""
    if not cpu_max:
        return None
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def memory_limit_bytes(memory_max: str | None, physical_bytes: int) -> int:
    """The smaller of the machine's memory and a cgroup v2 `memory.max` ("max": no limit)."""
    text = (memory_max or "").strip()
    if text.isdigit() and int(text) > 0:
        return min(int(text), physical_bytes)
    return physical_bytes


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class ProcessSampler:
    """Samples one process; CPU is averaged over the time since the previous sample, and not
    reported for a window shorter than MIN_CPU_WINDOW_S (a few busy milliseconds at start-up
    would read as several hundred percent)."""

    def __init__(
        self,
        process: psutil.Process | None = None,
        cgroup: Path = CGROUP_ROOT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._process = process or psutil.Process()
        self._monotonic = monotonic
        self._process.cpu_percent(interval=None)  # the first call only starts the measurement
        self._measured_at = monotonic()
        cores = float(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 1.0
        quota = cpu_quota_cores(_read(cgroup / "cpu.max"))
        self.cores = min(cores, quota) if quota else cores
        physical = int(psutil.virtual_memory().total)
        self.memory_limit_bytes = memory_limit_bytes(_read(cgroup / "memory.max"), physical)

    def sample(self) -> ProcessUsage:
        now_s = self._monotonic()
        cpu = None
        if now_s - self._measured_at >= MIN_CPU_WINDOW_S:
            cpu = self._process.cpu_percent(interval=None) / self.cores
            self._measured_at = now_s
        rss = int(self._process.memory_info().rss)
        return ProcessUsage(cpu, 100.0 * rss / self.memory_limit_bytes, rss)
