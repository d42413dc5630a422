"""Another program holds the daemon's database locked (a sqlite3 shell after `BEGIN IMMEDIATE`,
a database browser with unwritten changes): the daemon stops with one line saying which file
and what to do, as for the disk full, and loses nothing; a start meeting the lock refuses in
one line, changing nothing; once the lock is gone the next start carries on.

The real `quantum-trader run` in paper mode at 3,000×; the lock is this test's own SQLite
connection in a write transaction, held past the daemon's busy timeout (5 s). Was: every loop
step failed with a traceback ("database is locked") while the daemon went on, a step's books in
memory ahead of the file (an order's intent kept unsaved); a start met it as a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from daemon_harness import DATABASE, Daemon, cli, eventually, paper_exchange, query
from damage_fixtures import data_dir, stopped_daemon_template
from test_disk_full import restart_carries_on

from quantum_trader.ops.data_dir import hold_data_dir
from quantum_trader.ops.presence import STOPPING_FILE

ENV = {"QT_MARKET__REPLAY_SPEED": "3000", "QT_SIGNALS__SOURCE": "rules"}
__all__ = ["data_dir", "stopped_daemon_template"]
BOOKS = "SELECT client_order_id, status, filled_quantity FROM orders ORDER BY client_order_id"


@contextmanager
def locked(database: Path) -> Iterator[None]:
    """`database` held in a write transaction by another connection until the block ends."""
    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


def assert_exchange_protects_what_it_holds(data_dir: Path) -> None:
    """Each position the paper exchange holds has an open reduce-only stop for all of it. (The
    database may lag the exchange here: a stop that filled as the daemon stopped is booked by
    the next start's reconciliation.)"""
    exchange = paper_exchange(data_dir)
    for symbol, position in exchange.positions.items():
        stops = [
            o
            for o in exchange.orders.values()
            if (o.symbol, o.status.value, o.kind.value) == (symbol, "OPEN", "STOP_MARKET")
        ]
        assert [(o.reduce_only, o.quantity) for o in stops] == [(True, position.quantity)]


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    [line] = stderr.strip().splitlines()
    assert line.startswith("error: database "), line
    assert "is locked by another program" in line
    assert "end that program's transaction" in line
    return line


@pytest.mark.slow
def test_a_database_held_locked_stops_the_daemon_in_one_line_and_the_restart_carries_on(
    tmp_path: Path,
) -> None:
    database = tmp_path / DATABASE
    daemon = Daemon.start(tmp_path, **ENV)
    eventually(lambda: daemon.query("SELECT 1 FROM positions"), 120, "a position held")
    with locked(database):
        code = daemon.wait(timeout_s=90)

        assert code == 1, daemon.stderr[-3000:]
        line = one_error_line(daemon.stderr)
        assert "the daemon stopped: start it again" in line
        stopped = daemon.named("storage_failed")
        assert 1 <= len(stopped) <= 3  # once per loop that met it, never once per step
        assert all("locked by another program" in e["error"] for e in stopped)
        assert daemon.named("loop_step_failed") == []

        assert_exchange_protects_what_it_holds(tmp_path)  # the books: at the next start
        books, held = query(database, BOOKS), paper_exchange(tmp_path).positions
        refused = Daemon.start(tmp_path, **ENV)  # the lock still held
        assert refused.wait(timeout_s=90) == 1
        one_error_line(refused.stderr)
        assert query(database, BOOKS) == books  # nothing sent, nothing booked
        assert paper_exchange(tmp_path).positions == held

    restart_carries_on(tmp_path, ENV)


@contextmanager
def locked_exclusively(database: Path) -> Iterator[None]:
    """`database` held by another connection in EXCLUSIVE locking mode: no one may even read
    it until the block ends (an outside probe's `sqlite3` shell)."""
    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("PRAGMA locking_mode = EXCLUSIVE")
        other.execute("BEGIN EXCLUSIVE")
        other.execute("CREATE TABLE probe (x)")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("trades",),
        ("positions", "--json"),
        ("status", "--db", DATABASE),
        ("pause",),
        ("resume",),
        ("close-all",),
        ("reset-halt",),
        ("lift-blacklist", "INJ/USDT:USDT"),
    ],
)
def test_a_database_locked_exclusively_is_one_line_to_readers_and_requests(
    data_dir: Path, command: tuple[str, ...]
) -> None:
    """Was (found by an outside-style probe, 2026-12-06): a 72-line `sqlite3.OperationalError:
    database is locked` traceback, exit 1. The requests meet it with a daemon holding the
    directory, as they would."""
    (data_dir / STOPPING_FILE).unlink(missing_ok=True)  # the template's daemon stopped
    with hold_data_dir(data_dir), locked_exclusively(data_dir / DATABASE):
        done = cli(data_dir, *command)
    assert done.returncode == 1
    one_error_line(done.stderr)
    assert done.stdout == ""
    assert query(data_dir / DATABASE, "SELECT key FROM state WHERE namespace = 'operator'") == []
