"""RSS of the daemon (`quantum-trader run`, paper mode on the bundled replay) with the trained
ensemble loaded vs the rule agent, after it has run for a while.

Run: .venv/bin/python -m benchmarks.bench_ml_daemon_rss --models DIR [--seconds 60]
DIR holds trained artifacts (`quantum-trader train` writes them to data_dir/models). Each run
gets a fresh data directory (the models copied in for the ensemble run), replay speed 600
(one 30 s cycle every 50 ms), and is stopped with SIGTERM after the RSS sample.
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
from pathlib import Path

import psutil

from benchmarks.scratch import scratch_dir

PROGRAM = Path(sys.executable).with_name("quantum-trader")


def run_once(models: Path | None, seconds: float) -> dict[str, object]:
    data_dir = scratch_dir("qt-rss-")
    if models is not None:
        shutil.copytree(models, data_dir / "models")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    environment |= {
        "QT_DATA_DIR": str(data_dir),
        "QT_MARKET__REPLAY_SPEED": "600",
        "QT_LOG__FORMAT": "json",
        "QT_SIGNALS__SOURCE": "ensemble" if models is not None else "rules",
    }
    log_path = data_dir / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen([PROGRAM, "run"], stdout=log, stderr=log, env=environment)
        time.sleep(seconds)
        rss_mb = psutil.Process(daemon.pid).memory_info().rss / 2**20
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    ready: dict[str, object] = next((e for e in events if e.get("event") == "runtime_ready"), {})
    return {
        "signal_source": ready.get("signal_source"),
        "rss_mb": round(rss_mb),
        "exit_code": code,
        "cycles": sum(1 for e in events if e.get("event") == "signals"),
        "decisions": sum(1 for e in events if e.get("event") == "decision"),
        "overruns": sum(1 for e in events if e.get("event") == "loop_overrun"),
        "log": str(log_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    for label, models in (("ensemble", args.models), ("rules", None)):
        print(label, run_once(models, args.seconds), flush=True)


if __name__ == "__main__":
    main()
