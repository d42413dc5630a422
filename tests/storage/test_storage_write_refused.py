"""A write SQLite refuses for a reason that lasts (the disk full, an I/O error, the file made
read-only or damaged underneath, another program's lock held past the busy timeout) is raised
as StorageFailed, one line naming the file and what to do, the transaction rolled back; other
errors (a statement of ours that is wrong) stay as they are. A real SQLite file, made full with
`max_page_count` (SQLite's own SQLITE_FULL, as a full disk gives it), or locked by a second
connection in a write transaction (as a sqlite3 shell after `BEGIN IMMEDIATE`)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest

from quantum_trader.errors import StorageBusy, StorageFailed, lasting_failure
from quantum_trader.ops.requests import NAMESPACE, file_request
from quantum_trader.storage.sqlite import SqliteRepository
from quantum_trader.storage.sqlite_connection import SqliteConnection


async def full_database(path: Path) -> tuple[aiosqlite.Connection, SqliteConnection]:
    """A database whose file may not grow by a page: the next insert finds it full."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("CREATE TABLE t (x TEXT)")
    [(pages,)] = await conn.execute_fetchall("PRAGMA page_count")
    await conn.execute(f"PRAGMA max_page_count = {pages}")
    return conn, SqliteConnection(conn, path, read_only=False)


async def test_a_full_database_refuses_a_write_as_storage_failed(tmp_path: Path) -> None:
    conn, connection = await full_database(tmp_path / "trader.db")
    try:
        with pytest.raises(StorageFailed) as refused:
            await connection.write("INSERT INTO t VALUES (?)", [("x" * 20_000,)])
        message = str(refused.value)
        assert str(tmp_path / "trader.db") in message
        assert "SQLITE_FULL" in message
        assert "free space on its disk" in message
        assert "\n" not in message
        assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
        assert not conn.in_transaction  # rolled back: the next writer starts clean
        assert await connection.fetch("SELECT COUNT(*) FROM t") == [(0,)]
    finally:
        await conn.close()


async def test_other_errors_of_a_write_stay_what_they_are(tmp_path: Path) -> None:
    conn, connection = await full_database(tmp_path / "trader.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await connection.write("INSERT INTO missing VALUES (?)", [(1,)])
        await connection.write("INSERT INTO t VALUES (?)", [("small",)])  # fits the last page
        assert await connection.fetch("SELECT x FROM t") == [("small",)]
    finally:
        await conn.close()


async def test_a_database_another_program_holds_locked_refuses_a_write_as_storage_busy(
    tmp_path: Path,
) -> None:
    """The repository as the daemon opens it waits out its busy timeout (5 s), then: one line
    naming the file and what to do, a StorageFailed (the daemon stops on it, as for the disk
    full), nothing written; once the other program's transaction ends, writes go through.
    Was: sqlite3's "database is locked" as it is, a traceback a loop step and the daemon going
    on with its books in memory ahead of the file; at start, a traceback."""
    path = tmp_path / "trader.db"
    repository = await SqliteRepository.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusy) as refused:
            await repository.save_state("ns", "key", {"n": 1})
        other.execute("ROLLBACK")
        message = str(refused.value)
        assert message.startswith(f"database {path} is locked by another program")
        assert "end that program's transaction" in message
        assert "\n" not in message
        assert lasting_failure(refused.value) is refused.value  # the loops stop on it
        assert isinstance(refused.value.__cause__, sqlite3.OperationalError)
        assert await repository.load_state("ns") == {}  # nothing of it written

        await repository.save_state("ns", "key", {"n": 2})  # the lock gone
        assert await repository.load_state("ns") == {"key": {"n": 2}}
    finally:
        other.close()
        await repository.close()


async def test_an_operator_request_beside_a_lock_is_refused_in_one_line_and_not_filed(
    tmp_path: Path,
) -> None:
    """`quantum-trader pause` (and the other requests) while another program holds the lock:
    the CLI prints StorageBusy's line and exits 1 (`cli._reported`); nothing is filed."""
    path = tmp_path / "trader.db"
    await (await SqliteRepository.open(path)).close()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusy, match="is locked by another program"):
            await file_request(path, "pause", datetime(2026, 12, 5, tzinfo=UTC))
        other.execute("ROLLBACK")
        assert (
            other.execute("SELECT * FROM state WHERE namespace = ?", (NAMESPACE,)).fetchall() == []
        )
    finally:
        other.close()
