"""A daemon's data directory after a year of service: what reading it costs the operator.

Run: .venv/bin/python -m benchmarks.bench_age [--days 365] [--base-s 90 | --base DIR] [--keep DIR]

1. A fresh paper run: `quantum-trader run` at 600× (the bundled market, rule agent) for
   `--base-s` seconds, then stopped (SIGTERM), or a copy of `--base`, a stopped run's data
   directory. Its database and paper account are the "fresh" data directory; the rows it
   wrote per simulated hour are printed (the rates). `--keep DIR --reuse` times the two
   directories a previous run kept, as they are (e.g. a year-old file of an older schema).
2. A copy of it is aged: its own decisions, orders, fills, closed trades and position events
   are written again, through the repository's write path (SqliteRepository.record_decisions,
   save_order, record_fills, record_closed_trade, record_position_events), shifted back by the
   run's length as many times as `--days` needs, with fresh ids, so a year holds these rows at
   exactly the rates of the run. Equity snapshots are written one per
   `--equity-interval-s` (60 s: the heartbeat's, on the wall clock, so at 1× one a minute).
   `--decision-copies N` writes each decision N times (a busier configuration).
3. Both directories are timed the same way: the read-only repository's opening and
   `read_status` in this process; `quantum-trader status`, `positions`, `trades` (text and
   `--json`) as the operator runs them (medians of `--repeats`); the daemon from its start to
   its first `cycle_completed` line, then one `/status` and one `/metrics` request (medians of
   `--repeats`) and its RSS; then it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from quantum_trader.domain import OrderStatus
from quantum_trader.ops.operator_view import read_status
from quantum_trader.storage.sqlite import SqliteRepository

DATABASE = "quantum_trader.db"
OPEN = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.UNKNOWN)  # copies: canceled
AUDIT_TABLES = (
    ("decisions", "time"),
    ("equity_snapshots", "time"),
    ("position_events", "time"),
    ("orders", "created_at"),
    ("fills", "time"),
    ("closed_trades", "closed_at"),
)


def daemon_env(data_dir: Path, speed: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    return env | {
        "QT_DATA_DIR": str(data_dir),
        "QT_LOG__FORMAT": "json",
        "QT_MARKET__REPLAY_SPEED": str(speed),
        "QT_SIGNALS__SOURCE": "rules",
        "QT_SERVER__PORT": "0",
    }


def start_daemon(data_dir: Path, speed: float) -> tuple[subprocess.Popen[bytes], Path]:
    log = data_dir / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "quantum_trader", "run"],
            env=daemon_env(data_dir, speed),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )
    return process, log


def wait_for(
    log: Path, process: subprocess.Popen[bytes], event: str, offset: int = 0
) -> dict[str, Any]:
    """The first JSON line of `event` in `log` past byte `offset`."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        text = log.read_bytes()[offset:].decode(errors="replace")
        for line in text.splitlines():
            if f'"{event}"' in line:
                return dict(json.loads(line))
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode}: see {log}")
        time.sleep(0.02)
    raise SystemExit(f"no {event} after 600 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def fresh_run(data_dir: Path, seconds: float) -> None:
    process, log = start_daemon(data_dir, 600.0)
    wait_for(log, process, "cycle_completed")
    time.sleep(seconds)
    stop(process)
    log.unlink()


def rates(database: Path) -> tuple[float, dict[str, int]]:
    """The simulated hours the run covered (its decisions' span) and each table's rows."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        first, last = conn.execute("SELECT min(time), max(time) FROM decisions").fetchone()
        span_h = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t, _ in AUDIT_TABLES
        }
    return span_h / 3600, counts


async def age(
    database: Path, days: float, equity_interval_s: float, decision_copies: int
) -> dict[str, int]:
    """Write `days` of history before the run's own rows (see the module's docstring)."""
    repository = await SqliteRepository.open(database)
    try:
        decisions = await repository.recent_decisions(10**9)
        orders, fills = await repository.orders(), await repository.fills()
        trades, events = await repository.closed_trades(), await repository.position_events()
        equity = await repository.equity_history()
        first = min(d.time for d in decisions)
        span = max(d.time for d in decisions) - first + timedelta(seconds=30)
        copies = math.ceil(timedelta(days=days) / span)
        for i in range(1, copies + 1):
            shift, tag = span * i, f"-a{i}"
            for _ in range(decision_copies):
                await repository.record_decisions(
                    [replace(d, cycle_id=d.cycle_id + tag, time=d.time - shift) for d in decisions]
                )
            for o in orders:
                await repository.save_order(
                    replace(
                        o,
                        client_order_id=o.client_order_id + tag,
                        created_at=o.created_at - shift,
                        updated_at=None if o.updated_at is None else o.updated_at - shift,
                        status=o.status if o.status not in OPEN else OrderStatus.CANCELED,
                    )
                )
            await repository.record_fills(
                [
                    replace(
                        f,
                        trade_id=f.trade_id + tag,
                        client_order_id=f.client_order_id + tag,
                        time=f.time - shift,
                    )
                    for f in fills
                ]
            )
            for t in trades:
                await repository.record_closed_trade(
                    replace(
                        t,
                        entry_order_id=t.entry_order_id + tag,
                        opened_at=t.opened_at - shift,
                        closed_at=t.closed_at - shift,
                    )
                )
            await repository.record_position_events(
                [replace(e, time=e.time - shift) for e in events]
            )
        sample = equity[0]
        step = timedelta(seconds=equity_interval_s)
        moment = first - span * copies
        while moment < first:
            await repository.record_equity(
                replace(sample, time=moment, equity_usdt=sample.equity_usdt + moment.minute)
            )
            moment += step
        await repository.flush()
    finally:
        await repository.close()
    return rates(database)[1]


async def in_process(database: Path) -> dict[str, float]:
    """Milliseconds: the read-only opening (its integrity check included), `read_status`."""
    started = time.perf_counter()
    repository = await SqliteRepository.open(database, read_only=True)
    opened = time.perf_counter()
    try:
        await read_status(repository)
        read = time.perf_counter()
        await repository.decision_counts()
        counted = time.perf_counter()
    finally:
        await repository.close()
    return {
        "open_ro_ms": (opened - started) * 1000,
        "read_status_ms": (read - opened) * 1000,
        "decision_counts_ms": (counted - read) * 1000,
    }


def quick_check_ms(database: Path) -> float:
    """SQLite's quick_check over the whole file, alone (the openings run it)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        started = time.perf_counter()
        conn.execute("PRAGMA quick_check(5)").fetchall()
        return (time.perf_counter() - started) * 1000


def command(data_dir: Path, args: list[str], repeats: int) -> float:
    """The median wall seconds of `quantum-trader ARGS` against `data_dir`."""
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "quantum_trader", *args],
            env=daemon_env(data_dir, 1.0),
            check=True,
            capture_output=True,
            cwd=data_dir,
        )
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def request_ms(url: str, repeats: int) -> float:
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as answer:
            answer.read()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def daemon(data_dir: Path, repeats: int) -> dict[str, float]:
    """Start to first cycle (s), /status and /metrics (ms), RSS (MB) then; stopped after."""
    started = time.perf_counter()
    process, log = start_daemon(data_dir, 1.0)
    try:
        url = str(wait_for(log, process, "status_server_started")["url"])
        wait_for(log, process, "cycle_completed")
        first_cycle = time.perf_counter() - started
        rss = psutil.Process(process.pid).memory_info().rss / 2**20
        result = {
            "start_to_first_cycle_s": first_cycle,
            "status_ms": request_ms(f"{url}/status", repeats),
            "metrics_ms": request_ms(f"{url}/metrics", repeats),
            "rss_mb": rss,
        }
    finally:
        stop(process)
    return result


def measure(data_dir: Path, repeats: int) -> dict[str, float]:
    result = asyncio.run(in_process(data_dir / DATABASE))
    result["quick_check_ms"] = quick_check_ms(data_dir / DATABASE)
    for args in (
        ["status"], ["status", "--json"], ["positions"], ["positions", "--json"],
        ["trades"], ["trades", "--json"],
    ):  # fmt: skip
        result[" ".join(args)] = command(data_dir, args, repeats)
    result |= daemon(data_dir, repeats)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--base-s", type=float, default=90.0, help="the fresh run's wall seconds")
    parser.add_argument("--equity-interval-s", type=float, default=60.0)
    parser.add_argument("--decision-copies", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", type=Path, help="a stopped paper run's data directory")
    parser.add_argument("--keep", type=Path, help="keep both data directories here")
    parser.add_argument(
        "--reuse", action="store_true", help="the directories in --keep, as they are"
    )
    options = parser.parse_args()
    root = options.keep or Path(tempfile.mkdtemp(prefix="qt-age-"))
    fresh, aged = root / "fresh", root / "aged"
    if not options.reuse:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(aged, ignore_errors=True)
        if options.base is not None:
            shutil.copytree(options.base, fresh, ignore=shutil.ignore_patterns("*.log"))
        else:
            fresh.mkdir(parents=True)
            fresh_run(fresh, options.base_s)
        span_h, counts = rates(fresh / DATABASE)
        print(f"fresh run: {span_h:.1f} simulated hours; rows per simulated hour:")
        for table, rows in counts.items():
            print(f"  {table}: {rows} ({rows / span_h:.2f}/h)")
        shutil.copytree(fresh, aged)
        started = time.perf_counter()
        counts = asyncio.run(
            age(aged / DATABASE, options.days, options.equity_interval_s, options.decision_copies)
        )
        print(f"aged in {time.perf_counter() - started:.0f} s: {counts}")
    for name, folder in (("fresh", fresh), ("aged", aged)):
        size = sum(p.stat().st_size for p in folder.glob(f"{DATABASE}*")) / 2**20
        print(f"{name}: database {size:,.1f} MB")
        for key, value in measure(folder, options.repeats).items():
            print(f"  {key}: {value:,.3f}")
    if options.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
