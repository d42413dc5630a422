"""Versioned schema migrations: numbered SQL files shipped as package data → schema_version.

Files are named `NNNN_description.sql` and numbered 1, 2, 3 ... without gaps. Each pending file
runs in its own transaction together with the row that records it, so a failure leaves the
database at the previous version. A database newer than this program is refused, and so is one
whose tables do not match what its migrations create (a dropped table, an altered column).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from quantum_trader.errors import OperatorActionRequired
from quantum_trader.record import record
from quantum_trader.storage.sqlite_connection import lasting_write_failure

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
)
_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
# One table's columns as (name, declared type, NOT NULL, primary-key position).
Columns = tuple[tuple[str, str, int, int], ...]
_RECORD_VERSION = (
    "INSERT INTO schema_version (version, name, applied_at) "
    "VALUES ({version}, '{name}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));"
)


@record
class Migration:
    """One schema step. `version` starts at 1 and increases by one per file."""

    version: int
    name: str
    sql: str


# The oldest schema version the read-only commands read as it is, without the daemon
# migrating it first: 0002 only lets closed_trades.r_multiple be NULL, which a reader of a
# version-1 file never meets; 0003 adds the decisions' tallies, which a reader of an older
# file replaces by counting the decisions (sqlite_audit.py); 0004 adds the orders'
# close_position, read as 0 from an older file (sqlite_statements.py `order_reads`). A
# migration that changes what a reader sees raises it.
OLDEST_READABLE = 1


def bundled_migrations() -> tuple[Migration, ...]:
    """Read the migrations shipped in `quantum_trader/storage/migrations/`, in version order."""
    folder = resources.files("quantum_trader.storage").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_file():
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return check_sequence(found)


def check_sequence(migrations: list[Migration]) -> tuple[Migration, ...]:
    """Sort by version; refuse duplicates and gaps (a broken installation)."""
    ordered = tuple(sorted(migrations, key=lambda m: m.version))
    versions = [m.version for m in ordered]
    if versions != list(range(1, len(ordered) + 1)):
        raise OperatorActionRequired(
            f"the installed schema migrations are inconsistent (versions {versions}); "
            "reinstall quantum-trader"
        )
    return ordered


async def current_version(conn: aiosqlite.Connection) -> int:
    """Highest applied version; 0 for a database without a schema_version table."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
    )
    if not rows:
        return 0
    (version,) = next(iter(await conn.execute_fetchall("SELECT max(version) FROM schema_version")))
    return int(version or 0)


def refuse_newer(path: Path, found: int, known: int) -> None:
    """Raise when the database was written by a newer program than this one."""
    if found > known:
        raise OperatorActionRequired(
            f"database {path} has schema version {found} but this program knows only up to "
            f"{known}: upgrade quantum-trader or point QT_DATA_DIR at another database"
        )


async def refuse_if_not_ours(conn: aiosqlite.Connection, path: Path) -> None:
    """Raise for a database without a schema version that holds tables: another program's
    file (one holding nothing but an empty schema_version is ours, begun). A writer checks
    before it sets anything (the journal mode is written into the file)."""
    if await current_version(conn) != 0:
        return
    rows = await conn.execute_fetchall(_TABLES)
    foreign = sorted(str(row[0]) for row in rows if row[0] != "schema_version")
    if foreign:
        shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        raise OperatorActionRequired(
            f"database {path} is not one of this program's (tables {shown}; no schema "
            "version): nothing was changed; point --db or QT_DATA_DIR at a daemon's or a "
            "backtest's database, or move this file aside"
        )


async def apply_pending(
    conn: aiosqlite.Connection, path: Path, migrations: tuple[Migration, ...]
) -> tuple[int, ...]:
    """Apply every migration above the current version; return the versions applied.
    The caller has refused another program's file (`refuse_if_not_ours`)."""
    await conn.execute(_CREATE_VERSION_TABLE)
    found = await current_version(conn)
    refuse_newer(path, found, len(migrations))
    applied = []
    for migration in migrations[found:]:
        await _apply_one(conn, path, migration)
        applied.append(migration.version)
    return tuple(applied)


async def _apply_one(conn: aiosqlite.Connection, path: Path, migration: Migration) -> None:
    record = _RECORD_VERSION.format(version=migration.version, name=migration.name)
    try:
        await conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n{record}\nCOMMIT;")
    except sqlite3.Error as e:
        if conn.in_transaction:
            await conn.rollback()
        lasting = lasting_write_failure(path, e)  # the disk full: say what to free
        if lasting is not None:
            raise lasting from e
        raise OperatorActionRequired(
            f"schema migration {migration.name} failed on database {path} and was rolled back: {e}"
        ) from e


@cache
def expected_schema(migrations: tuple[Migration, ...]) -> dict[str, Columns]:
    """The tables and columns `migrations` create, read from a scratch in-memory database."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(_CREATE_VERSION_TABLE)
        for migration in migrations:
            conn.executescript(migration.sql)
        names = [str(row[0]) for row in conn.execute(_TABLES)]
        return {name: _columns(list(conn.execute(_table_info(name)))) for name in names}
    finally:
        conn.close()


async def schema_problems(conn: aiosqlite.Connection, expected: dict[str, Columns]) -> list[str]:
    """What differs from `expected`: missing tables, missing or altered columns.

    Tables, columns and indexes a person added (for their own queries) are not problems.
    """
    present = {str(row[0]) for row in await conn.execute_fetchall(_TABLES)}
    problems = []
    for table, columns in expected.items():
        if table not in present:
            problems.append(f"table {table} is missing")
            continue
        found = {c[0]: c for c in _columns(list(await conn.execute_fetchall(_table_info(table))))}
        for column in columns:
            if column[0] not in found:
                problems.append(f"column {table}.{column[0]} is missing")
            elif found[column[0]] != column:
                problems.append(f"column {table}.{column[0]} was altered")
    return problems


def _table_info(table: str) -> str:
    return f"PRAGMA table_info('{table}')"


def _columns(rows: Iterable[Any]) -> Columns:
    return tuple((str(r[1]), str(r[2]).upper(), int(r[3]), int(r[5])) for r in rows)
