"""The repository's one SQLite connection: writes serialised by one lock, each a transaction.

aiosqlite runs every statement on a worker thread of its own. One asyncio lock serialises the
writes, so that a transaction never interleaves with another coroutine's statements, and a
transaction runs to its end (committed or rolled back) even when its caller is cancelled, so
that a BEGIN or COMMIT still queued on that thread never leaves a transaction open for the next
writer. Reads go straight to the connection: WAL lets them see the last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import aiosqlite

from quantum_trader.errors import QuantumTraderError, StorageBusy, StorageFailed
from quantum_trader.storage.tables import Row, SqlValue

BUSY_TIMEOUT_MS = 5_000  # how long a write waits for another connection's lock
Batch = tuple[str, list[Row]]  # a statement and the rows it is executed for
# Result codes of a write that will fail again until a person acts (primary codes: an
# extended one such as SQLITE_IOERR_WRITE carries its primary in the low byte).
_LASTING = {
    sqlite3.SQLITE_FULL: "free space on its disk",
    sqlite3.SQLITE_IOERR: "check the disk (an I/O error; a file-size limit gives one too)",
    sqlite3.SQLITE_READONLY: "make it and its directory writable again",
    sqlite3.SQLITE_CORRUPT: "restore it from a backup",
    sqlite3.SQLITE_NOTADB: "restore it from a backup",
}


class ReadOnlyRepositoryError(QuantumTraderError):
    """A write was attempted through a repository opened with `read_only=True`."""


class SqliteConnection:
    """An open connection (autocommit mode: BEGIN and COMMIT are issued here) and its lock."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, *, read_only: bool) -> None:
        self._conn = conn
        self.path = path
        self._read_only = read_only
        self.lock = asyncio.Lock()  # held by every writer, for its reads too where they decide
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sqlite(self) -> aiosqlite.Connection:
        """The connection itself, for the tests that count what a read costs (its steps)."""
        return self._conn

    def check_writable(self) -> None:
        """Raise unless a write may go through: the connection open, and not read-only."""
        if self._closed:
            raise ValueError(f"database {self.path} is closed")
        if self._read_only:
            raise ReadOnlyRepositoryError(f"database {self.path} was opened read-only")

    async def write(self, sql: str, rows: list[Row]) -> None:
        """Execute `sql` for each of `rows` in one committed transaction."""
        self.check_writable()
        async with self.lock:
            await self.transaction([(sql, rows)])

    async def transaction(self, batches: Iterable[Batch]) -> None:
        """Run the batches in one committed transaction. The caller holds the lock.

        aiosqlite runs each statement on its own thread, where a cancelled caller cannot stop
        it: a BEGIN or COMMIT still queued there would leave a transaction open for the next
        writer. So the transaction runs to its end (committed or rolled back) before a
        cancellation reaches the caller; then CancelledError means it was written, any other
        error that it was not."""
        work = asyncio.ensure_future(self._run_transaction(list(batches)))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            while not work.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(work)
            work.result()  # its own error, if it failed
            raise

    async def _run_transaction(self, batches: list[Batch]) -> None:
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in batches:
                    if rows:
                        await self._conn.executemany(sql, rows)
                await self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    await self._conn.rollback()
                raise
        except sqlite3.DatabaseError as error:
            lasting = lasting_write_failure(self.path, error)
            if lasting is None:
                raise
            raise lasting from error

    async def fetch(self, sql: str, params: tuple[SqlValue, ...] = ()) -> list[Row]:
        try:
            return [tuple(r) for r in await self._conn.execute_fetchall(sql, params)]
        except sqlite3.OperationalError as error:  # another program's exclusive lock
            busy = busy_failure(self.path, error)
            if busy is None:
                raise
            raise busy from error

    async def close(self) -> None:
        """Close the connection; every write after it is refused (`check_writable`)."""
        self._closed = True
        await self._conn.close()


def busy_failure(path: Path, error: sqlite3.Error) -> StorageBusy | None:
    """`error` as StorageBusy when it is SQLITE_BUSY (a lock another program held past the
    busy timeout: for a read too, under its `locking_mode=EXCLUSIVE`); None otherwise."""
    failure = lasting_write_failure(path, error)
    return failure if isinstance(failure, StorageBusy) else None


def lasting_write_failure(path: Path, error: sqlite3.Error) -> StorageFailed | None:
    """A write SQLite refused for a reason that lasts, as StorageFailed naming the file and
    what to do (StorageBusy: another program's lock outlasted the busy timeout); None for
    any other error."""
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == sqlite3.SQLITE_BUSY:
        return StorageBusy(
            f"database {path} is locked by another program ({error}, for over "
            f"{BUSY_TIMEOUT_MS / 1000:g} s): end that program's transaction (a sqlite3 shell, "
            "a database browser with unwritten changes); only quantum-trader may write to it "
            "while the daemon runs"
        )
    todo = _LASTING.get(code)
    if todo is None:
        return None
    name = getattr(error, "sqlite_errorname", "") or str(code)
    return StorageFailed(f"database {path} refused a write ({error}, {name}): {todo}")
