"""The daemon under accelerated replay: cycles per minute and RSS after 1,000 cycles.

    .venv/bin/python -m benchmarks.bench_daemon [--speed 600] [--cycles 1000]

Starts `quantum-trader run` in paper mode on the bundled market, counts `cycle_completed` log
lines, and reads the process's RSS (psutil) once the count is reached; then SIGTERM and times
the stop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil

from benchmarks.scratch import scratch_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=600.0)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--models", type=str, default=None, help="trained models to load")
    options = parser.parse_args()
    data_dir = str(scratch_dir("qt-daemon-"))
    if options.models:
        shutil.copytree(options.models, f"{data_dir}/models")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    env |= {
        "QT_DATA_DIR": data_dir,
        "QT_LOG__FORMAT": "json",
        "QT_MARKET__REPLAY_SPEED": str(options.speed),
        "QT_SIGNALS__SOURCE": "ensemble" if options.models else "rules",
    }
    started = time.perf_counter()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "quantum_trader", "run"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert daemon.stdout is not None
    cycles, first_cycle_s, opened = 0, None, 0
    for line in daemon.stdout:
        event = json.loads(line).get("event") if line.startswith("{") else None
        if event == "cycle_completed":
            cycles += 1
            first_cycle_s = first_cycle_s or time.perf_counter() - started
        opened += event == "position_opened"
        if cycles >= options.cycles:
            break
    elapsed = time.perf_counter() - started
    rss_mb = psutil.Process(daemon.pid).memory_info().rss / 2**20
    stop_started = time.perf_counter()
    daemon.send_signal(signal.SIGTERM)
    daemon.communicate(timeout=60)
    stop_s = time.perf_counter() - stop_started
    print(
        f"{cycles} cycles at {options.speed:g}x in {elapsed:.1f} s ({cycles / elapsed * 60:,.0f} "
        f"cycles/min); start to first cycle {first_cycle_s:.2f} s; RSS after {cycles} cycles "
        f"{rss_mb:.0f} MB; {opened} positions opened; SIGTERM to exit {stop_s:.2f} s "
        f"(exit {daemon.returncode})"
    )


if __name__ == "__main__":
    main()
