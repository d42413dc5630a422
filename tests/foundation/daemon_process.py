"""Start the real `quantum-trader run` in a subprocess and read its database while it runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def start_daemon(data_dir: Path, **env: str) -> subprocess.Popen[str]:
    """The real CLI; its output goes to files in `data_dir` (an unread pipe would fill up and
    block the daemon). Read them with `output(data_dir)`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    settings = {
        "QT_DATA_DIR": str(data_dir),
        "QT_LOG__FORMAT": "json",
        "QT_MARKET__REPLAY_START": "2025-09-12T00:00:00Z",
        **env,
    }
    with (data_dir / "stdout.log").open("w") as out, (data_dir / "stderr.log").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "quantum_trader", "run"],
            env={**clean, **settings},
            stdout=out,
            stderr=err,
            text=True,
        )


def output(data_dir: Path) -> tuple[str, str]:
    return (data_dir / "stdout.log").read_text(), (data_dir / "stderr.log").read_text()


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Another `quantum-trader` command against the same data directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        env={**clean, "QT_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def eventually(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `probe` until it returns something; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the daemon's database while it writes (WAL allows a concurrent reader)."""
    if not database.exists():
        return []
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        connection.close()


def log_events(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events
