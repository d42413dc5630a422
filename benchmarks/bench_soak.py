"""Soak: the real daemon over 24 simulated hours in accelerated time, watched through its own
status server the way an operator's page and Prometheus would (one /status and one /metrics
read per sample).

    .venv/bin/python -m benchmarks.bench_soak [--hours 24] [--speed 60] [--warmup-hours 2]

Reports the process's RSS (psutil) at the end of the warm-up and at the end, the growth
between them, and per loop the largest lag and how many steps started more than one interval
after they were due, counted after the warm-up from the `qt_loop_lag_seconds` histogram
(its buckets include both intervals, 5 s and 30 s; the heartbeat keeps real time). A lag
above one interval is a missed tick. The speed must leave each loop's interval, in real time,
longer than the longest step of the other loop (at 60× the monitor's 5 s is 83 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.scratch import scratch_dir

LOOPS = {"executor": 30.0, "monitor": 5.0, "heartbeat": 60.0}


@dataclass(frozen=True, slots=True)
class Sample:
    wall_s: float
    sim_time: datetime
    rss_mb: float


def read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def late_steps(metrics: str) -> dict[str, tuple[float, float, float]]:
    """Per loop: (steps, steps with lag > its interval, largest lag), from /metrics."""
    result: dict[str, tuple[float, float, float]] = {}
    buckets: dict[tuple[str, float], float] = {}
    counts: dict[str, float] = {}
    largest: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            loop = s.labels.get("loop", "")
            if s.name == "qt_loop_lag_seconds_bucket":
                buckets[(loop, float(s.labels["le"]))] = s.value
            elif s.name == "qt_loop_lag_seconds_count":
                counts[loop] = s.value
            elif s.name == "qt_loop_lag_max_seconds":
                largest[loop] = s.value
    for loop, interval in LOOPS.items():
        total = counts.get(loop, 0.0)
        within = buckets.get((loop, interval), total)
        result[loop] = (total, total - within, largest.get(loop, 0.0))
    return result


def start(data_dir: str, speed: float) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env |= {
        "QT_DATA_DIR": data_dir,
        "QT_LOG__FORMAT": "json",
        "QT_MARKET__REPLAY_SPEED": str(speed),
        "QT_SIGNALS__SOURCE": "rules",
        "QT_SERVER__PORT": "0",
    }
    log = Path(data_dir) / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "quantum_trader", "run"], env=env, stdout=out, cwd=data_dir
        )
    return process, log


def server_url(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if '"status_server_started"' in line:
                return str(json.loads(line)["url"])
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode}")
        time.sleep(0.2)
    raise SystemExit("no status server after 120 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--warmup-hours", type=float, default=2.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    options = parser.parse_args()
    data_dir = str(scratch_dir("qt-soak-"))
    process, log = start(data_dir, options.speed)
    url = server_url(log, process)
    child = psutil.Process(process.pid)
    samples: list[Sample] = []
    began = time.monotonic()
    first_sim: datetime | None = None
    warm_metrics = ""
    while True:
        status = json.loads(read(f"{url}/status"))
        metrics = read(f"{url}/metrics").decode()
        now = datetime.fromisoformat(status["time"])
        first_sim = first_sim or now
        samples.append(Sample(time.monotonic() - began, now, child.memory_info().rss / 2**20))
        if not warm_metrics and now - first_sim >= timedelta(hours=options.warmup_hours):
            warm_metrics = metrics
        if now - first_sim >= timedelta(hours=options.hours):
            break
        time.sleep(options.sample_s)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    report(options, samples, warm_metrics, metrics, process.returncode, Path(data_dir))


def report(
    options: argparse.Namespace,
    samples: list[Sample],
    warm_metrics: str,
    end_metrics: str,
    exit_code: int,
    data_dir: Path,
) -> None:
    start_sim = samples[0].sim_time
    warm = [s for s in samples if s.sim_time - start_sim >= timedelta(hours=options.warmup_hours)]
    at_warm = statistics.median(s.rss_mb for s in warm[:3])
    at_end = statistics.median(s.rss_mb for s in samples[-3:])
    peak = max(s.rss_mb for s in warm)
    print(
        f"{options.hours:g} simulated hours at {options.speed:g}x in "
        f"{samples[-1].wall_s / 60:.1f} min, {len(samples)} samples (one /status and one "
        f"/metrics read each); exit {exit_code}"
    )
    print(
        f"RSS after {options.warmup_hours:g} h warm-up {at_warm:.1f} MB, at the end "
        f"{at_end:.1f} MB ({(at_end / at_warm - 1) * 100:+.2f} %), peak after warm-up "
        f"{peak:.1f} MB"
    )
    before, after = late_steps(warm_metrics), late_steps(end_metrics)
    for loop, interval in LOOPS.items():
        steps = after[loop][0] - before[loop][0]
        late = after[loop][1] - before[loop][1]
        print(
            f"{loop:9s} interval {interval:g} s: {steps:,.0f} steps after warm-up, "
            f"{late:,.0f} with lag > 1 interval; largest lag since start {after[loop][2]:.3f} s"
        )
    series = data_dir / "rss.csv"
    series.write_text(
        "wall_s,sim_time,rss_mb\n"
        + "".join(f"{s.wall_s:.1f},{s.sim_time.isoformat()},{s.rss_mb:.2f}\n" for s in samples)
    )
    print(f"RSS series: {series}")


if __name__ == "__main__":
    main()
