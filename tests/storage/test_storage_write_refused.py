"""A write SQLite refuses for a reason that lasts (the disk full, an I/O error, the file made
read-only or damaged underneath) is raised as StorageFailed, one line naming the file and what
to do, the transaction rolled back; other errors (a statement of ours that is wrong) stay as
they are. A real SQLite file, made full with `max_page_count` (SQLite's own SQLITE_FULL, as a
full disk gives it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from quantum_trader.errors import StorageFailed
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
