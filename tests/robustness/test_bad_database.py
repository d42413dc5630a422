"""Damaged databases, refused before they are used: one line with advice, nothing changed.

The files are what the real daemon left (damage_fixtures), then damaged as an outsider would:
a corrupt page, a truncated file, a dropped table, an altered column, a newer schema version.
The daemon (`run`, exit 1) and the read-only commands (`status`, exit 1) refuse them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from daemon_harness import DATABASE, cli
from damage_fixtures import contents, data_dir, stopped_daemon_template

from quantum_trader.errors import OperatorActionRequired
from quantum_trader.storage.migrate import bundled_migrations
from quantum_trader.storage.sqlite import SqliteRepository

__all__ = ["data_dir", "stopped_daemon_template"]
PAGE_SIZE = 4096


def corrupt_a_page(database: Path) -> None:
    """Overwrite the header of an interior b-tree page (what a failing disk does)."""
    data = bytearray(database.read_bytes())
    assert len(data) > 6 * PAGE_SIZE, "the daemon's database should span several pages"
    data[5 * PAGE_SIZE : 5 * PAGE_SIZE + 64] = b"\xff" * 64
    database.write_bytes(bytes(data))


def truncate(database: Path) -> None:
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 2])


def drop_table(database: Path, table: str = "positions") -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(f"DROP TABLE {table}")
    conn.close()


def alter_column(database: Path) -> None:
    """Recreate `state` with its payload column as INTEGER: same name, other meaning."""
    with sqlite3.connect(database) as conn:
        conn.executescript(
            "ALTER TABLE state RENAME TO state_old;"
            "CREATE TABLE state (namespace TEXT NOT NULL, key TEXT NOT NULL, payload INTEGER,"
            " updated_at TEXT NOT NULL, PRIMARY KEY (namespace, key));"
            "DROP TABLE state_old;"
        )
    conn.close()


def from_the_future(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO schema_version VALUES (?, '9999_future.sql', '2030-01-01T00:00:00Z')",
            (len(bundled_migrations()) + 1,),
        )
    conn.close()


DAMAGES = {
    "corrupt page": (corrupt_a_page, "is damaged"),
    "truncated": (truncate, "is damaged"),
    "dropped table": (drop_table, "table positions is missing"),
    "altered column": (alter_column, "column state.payload was altered"),
    "newer schema": (from_the_future, "upgrade quantum-trader"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_the_daemon_refuses_a_damaged_database_and_changes_nothing(
    data_dir: Path, damage: str
) -> None:
    apply, expected = DAMAGES[damage]
    apply(data_dir / DATABASE)
    before = contents(data_dir)

    done = cli(data_dir, "run")

    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: database {data_dir / DATABASE} "), line
    assert expected in line
    assert "Traceback" not in done.stderr
    assert contents(data_dir) == before


@pytest.mark.parametrize("damage", ["corrupt page", "dropped table"])
def test_status_refuses_a_damaged_database_with_advice(data_dir: Path, damage: str) -> None:
    apply, expected = DAMAGES[damage]
    apply(data_dir / DATABASE)
    before = contents(data_dir)

    done = cli(data_dir, "status")

    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert expected in line
    assert "restore the file from a backup, or move it aside" in line
    assert contents(data_dir) == before


def test_quick_check_runs_for_writers_and_readers(data_dir: Path) -> None:
    corrupt_a_page(data_dir / DATABASE)

    async def open_both() -> list[str]:
        found = []
        for read_only in (False, True):
            with pytest.raises(OperatorActionRequired) as caught:
                await SqliteRepository.open(data_dir / DATABASE, read_only=read_only)
            found.append(str(caught.value))
        return found

    for message in asyncio.run(open_both()):
        assert "is damaged" in message
        assert "-wal and -shm" in message


def test_a_table_a_person_added_is_not_a_problem(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / DATABASE) as conn:
        conn.execute("CREATE TABLE my_notes (note TEXT)")
        conn.execute("CREATE INDEX my_fills ON fills (price)")
        (held,) = conn.execute("SELECT count(*) FROM positions").fetchone()
    conn.close()

    async def reopen() -> int:
        repository = await SqliteRepository.open(data_dir / DATABASE, read_only=True)
        try:
            return len(await repository.open_positions())
        finally:
            await repository.close()

    assert asyncio.run(reopen()) == held >= 1


def another_programs_database(database: Path) -> None:
    """What a user may point the daemon at by mistake: a SQLite file of some other program."""
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.close()


@pytest.mark.parametrize("command", ["run", "status"])
def test_another_programs_database_is_refused_and_left_byte_for_byte(
    data_dir: Path, command: str
) -> None:
    """Not migrated into (our tables beside theirs), not switched to WAL: one line, exit 1."""
    another_programs_database(data_dir / DATABASE)
    before = contents(data_dir)

    done = cli(data_dir, command)

    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        f"error: database {data_dir / DATABASE} is not one of this program's "
        "(tables posts, users; no schema version)"
    ), line
    assert "point --db or QT_DATA_DIR at a daemon's or a backtest's database" in line
    assert contents(data_dir) == before


def test_an_empty_database_file_is_named_as_empty_to_readers(data_dir: Path) -> None:
    database = data_dir / DATABASE
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    database.write_bytes(b"")

    done = cli(data_dir, "status", "--db", str(database))

    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: database {database} is empty (no tables)"), line
    assert database.read_bytes() == b""
