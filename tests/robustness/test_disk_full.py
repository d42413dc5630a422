"""The disk fills up under a running daemon: it stops, with one line saying what to free, and
loses nothing. Under a backtest: one line, and no output left half-written.

The real `quantum-trader run` in paper mode at 3,000×, its files limited to 1.5 MB each
(RLIMIT_FSIZE: a write past it fails as on a full disk, the database's with SQLite's I/O
error). Was: every step of every loop failed with a traceback a step, for good, and the stop
ended in another traceback. Now the first such failure stops the loops (`storage_failed`), the
process exits 1 with one `error:` line, and the next start, with room again, carries on from
the books as the last committed write left them: the database's positions are the paper
exchange's, each with its reduce-only stop.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env
from daemon_harness import DATABASE, Daemon, eventually, limit_files, paper_exchange, query

ENV = {
    "QT_MARKET__REPLAY_SPEED": "3000",
    "QT_SIGNALS__SOURCE": "rules",
    "QT_LOG__LEVEL": "WARNING",  # the log file (also limited) stays small: the database fills
}
LIMIT_BYTES = 1_500_000


def assert_books_agree_and_protected(data_dir: Path) -> list[str]:
    """The database's positions are the paper exchange's, each with its open reduce-only
    stop for the whole quantity; the symbols held."""
    rows = query(data_dir / DATABASE, "SELECT symbol, side, quantity, stop_order_id FROM positions")
    exchange = paper_exchange(data_dir)
    held = {s: (p.side.value, str(p.quantity)) for s, p in exchange.positions.items()}
    assert {s: (side, quantity) for s, side, quantity, _ in rows} == held
    for symbol, _, quantity, stop_order_id in rows:
        stop = exchange.orders[stop_order_id]
        assert (stop.symbol, stop.status.value, stop.kind.value) == (symbol, "OPEN", "STOP_MARKET")
        assert stop.reduce_only
        assert str(stop.quantity) == quantity
    return sorted(held)


def restart_carries_on(data_dir: Path, env: dict[str, str]) -> None:
    """A start on `data_dir` cycles on (a decision after the last one written), stops
    cleanly, and leaves the books the exchange's, each position protected."""
    [(last,)] = query(data_dir / DATABASE, "SELECT COALESCE(MAX(id), 0) FROM decisions")
    again = Daemon.start(data_dir, **env)
    try:
        newer = f"SELECT 1 FROM decisions WHERE id > {last}"
        eventually(lambda: again.query(newer), 60, "a cycle after the restart")
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.stderr[-3000:]
    assert again.named("storage_failed") == []
    assert_books_agree_and_protected(data_dir)


@pytest.mark.slow
def test_a_full_disk_stops_the_daemon_with_one_line_and_the_restart_carries_on(
    tmp_path: Path,
) -> None:
    full = Daemon.start_limited(tmp_path, LIMIT_BYTES, **ENV)
    code = full.wait(timeout_s=180)

    assert code == 1, full.stderr[-3000:]
    lines = full.stderr.strip().splitlines()
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    [line] = lines  # one line
    assert line.startswith("error: ")
    assert "could not be written" in line or "refused a write" in line
    assert "the daemon stopped: start it again" in line
    failed = full.named("storage_failed")
    assert failed, "one storage_failed line from the loop that met it"
    assert len(failed) <= 3  # at most once per loop, never once per step
    assert full.named("loop_step_failed") == []
    assert query(tmp_path / DATABASE, "SELECT COUNT(*) FROM orders")[0][0] > 0  # it traded
    assert_books_agree_and_protected(tmp_path)

    restart_carries_on(tmp_path, ENV)  # room again


@pytest.mark.parametrize("limit_bytes", [100_000, 400_000], ids=["database", "report"])
def test_a_full_disk_under_a_backtest_is_one_line_and_leaves_no_output(
    tmp_path: Path, limit_bytes: int
) -> None:
    """Its database or its report cannot be written: `error: …` (exit 1), no traceback, and
    neither the output directory nor a half-written one left beside it."""
    clean = child_env()
    out = tmp_path / "report"
    window = ["--start", "2025-09-10", "--end", "2025-09-20", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "quantum_trader", "backtest", *window],
        env={**clean, "QT_DATA_DIR": str(tmp_path / "data"), "QT_SIGNALS__SOURCE": "rules"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_files(limit_bytes),
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "free space" in line or "check the disk" in line
    assert [
        p.name for p in tmp_path.iterdir() if p.name != "data"
    ] == []  # the backtest makes no data dir
