"""A SQLite file opened for the repository: connected, configured, checked, migrated, or refused.

A writer connects in WAL mode and applies the pending migrations; a reader connects with
`mode=ro` (and `immutable=1` when nothing can change the file) and never migrates. Both run
SQLite's quick_check over the whole file and compare its tables with what its migrations
create before anything is read. The problems a person must fix (not a database, damaged, cannot
be opened, read-only, a schema this program does not know) are raised as
OperatorActionRequired, saying what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiosqlite

from quantum_trader.errors import OperatorActionRequired
from quantum_trader.record import record
from quantum_trader.storage.migrate import (
    OLDEST_READABLE,
    Migration,
    apply_pending,
    bundled_migrations,
    check_sequence,
    current_version,
    expected_schema,
    refuse_if_not_ours,
    refuse_newer,
    schema_problems,
)
from quantum_trader.storage.sqlite_connection import BUSY_TIMEOUT_MS, busy_failure

_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


@record
class OpenedDatabase:
    """A connection in autocommit mode (BEGIN and COMMIT are issued by hand) to a checked file."""

    connection: aiosqlite.Connection
    version: int  # the file's schema version
    applied: tuple[int, ...]  # the versions this opening applied (a writer's only)


async def open_database(
    path: Path, *, read_only: bool, migrations: Sequence[Migration] | None
) -> OpenedDatabase:
    """Open (and for a writer create and migrate) the database at `path`, as
    `SqliteRepository.open` documents; the connection is closed again when anything fails."""
    known = bundled_migrations() if migrations is None else check_sequence(list(migrations))
    # Custom migrations (tests) are read at their latest version only.
    oldest = OLDEST_READABLE if migrations is None else len(known)
    with _operator_problems(path):
        conn = await _connect(path, read_only)
        try:
            if read_only:
                await _configure_reader(conn)
                await _check_integrity(conn, path)
                version = await _check_readable(conn, path, len(known), oldest)
                applied: tuple[int, ...] = ()
            else:
                await refuse_if_not_ours(conn, path)  # another program's file, left as it is
                await _configure_writer(conn)
                await _check_integrity(conn, path)
                applied = await apply_pending(conn, path, known)
                version = len(known)
            await _check_schema(conn, path, known[:version])
        except BaseException:
            await conn.close()
            raise
    return OpenedDatabase(conn, version, applied)


async def _connect(path: Path, read_only: bool) -> aiosqlite.Connection:
    """Connect in autocommit mode (we issue BEGIN/COMMIT ourselves). A file SQLite cannot
    open is refused by a plain connection first: aiosqlite's own, failing, leaves its worker
    thread to stop after we return — after the event loop closed, at a command's exit, it
    prints a traceback ("Event loop is closed")."""
    if read_only:
        uri = f"{(await asyncio.to_thread(path.resolve)).as_uri()}?mode=ro"
        if await asyncio.to_thread(_frozen, path):
            uri += "&immutable=1"
        await asyncio.to_thread(_opens, uri, uri=True)
        return await aiosqlite.connect(uri, uri=True, isolation_level=None)
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(_opens, path, uri=False)
    return await aiosqlite.connect(path, isolation_level=None)


def _opens(database: str | Path, *, uri: bool) -> None:
    """Raise sqlite3's error when `database` cannot be opened."""
    sqlite3.connect(database, uri=uri).close()


def _frozen(path: Path) -> bool:
    """True when nothing can change the file: its directory is read-only (a backup on read-only
    media, a volume mounted read-only) and no write-ahead log waits beside it. A reader of a
    WAL database must otherwise create the -shm file, which a read-only directory refuses."""
    wal = path.with_name(path.name + "-wal")
    return not os.access(path.parent, os.W_OK) and not wal.exists()


async def _configure_writer(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
    if str(rows[0][0]).lower() != "wal":
        raise OperatorActionRequired(f"SQLite refused WAL journal mode (got {rows[0][0]})")
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute("PRAGMA foreign_keys = ON")


async def _configure_reader(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA query_only = ON")
    await conn.execute("PRAGMA foreign_keys = ON")


async def _check_readable(conn: aiosqlite.Connection, path: Path, known: int, oldest: int) -> int:
    """The file's schema version, when this program reads it as it is (from `oldest` to
    `known`; an older one is migrated by the daemon first)."""
    version = await current_version(conn)
    refuse_newer(path, version, known)
    if version == 0:  # no schema at all: not a database any daemon of ours has written
        await refuse_if_not_ours(conn, path)
        raise OperatorActionRequired(
            f"database {path} is empty (no tables): no daemon has written it yet; start one "
            "(quantum-trader run), or point --db or QT_DATA_DIR at a daemon's or a backtest's "
            "database"
        )
    if version < oldest:
        raise OperatorActionRequired(
            f"database {path} has schema version {version}, older than this program's "
            f"{known}: start the daemon once (it migrates) before reading it"
        )
    return version


async def _check_integrity(conn: aiosqlite.Connection, path: Path) -> None:
    """Refuse a damaged file before it is used: SQLite's quick_check reads every page."""
    rows = [str(row[0]) for row in await conn.execute_fetchall("PRAGMA quick_check(5)")]
    if rows != ["ok"]:
        found = " | ".join(" ".join(row.split()) for row in rows)
        raise OperatorActionRequired(f"database {path} is damaged ({found}): {_RESTORE}")


async def _check_schema(conn: aiosqlite.Connection, path: Path, known: Sequence[Migration]) -> None:
    problems = await schema_problems(conn, expected_schema(tuple(known)))
    if problems:
        raise OperatorActionRequired(
            f"database {path} does not match schema version {len(known)} "
            f"({'; '.join(problems)}): {_RESTORE}"
        )


_RESTORE = (
    "stop the daemon, then restore the file from a backup, or move it aside together with its "
    "-wal and -shm files to start a new database"
)


@contextlib.contextmanager
def _operator_problems(path: Path) -> Iterator[None]:
    """Raise the SQLite errors a person must fix as OperatorActionRequired (another program's
    lock as StorageBusy, as for a write); others as they are."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        problem = _operator_problem(path, e) or busy_failure(path, e)
        if problem is None:
            raise
        raise problem from e


def _operator_problem(path: Path, error: sqlite3.DatabaseError) -> OperatorActionRequired | None:
    """Translate the errors a person must fix; None for anything else."""
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in {_SQLITE_NOTADB, _SQLITE_CORRUPT}:
        return OperatorActionRequired(
            f"database {path} is not a SQLite database or is damaged ({error}): {_RESTORE}"
        )
    if code == _SQLITE_CANTOPEN:
        return OperatorActionRequired(
            f"cannot open database {path} ({error}): check that it and its directory exist and "
            "are readable (and writable for the daemon)"
        )
    if code == _SQLITE_READONLY:
        return OperatorActionRequired(
            f"database {path} is read-only ({error}): make it and its directory writable"
        )
    return None
