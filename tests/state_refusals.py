"""Have SQLite refuse a database's writes of state entries (a trigger, created through a
connection of its own), so that a test can show what a write that fails there leaves: the
same as a stop (kill -9, the shutdown grace ending) at that point would."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

_STATEMENTS = ("INSERT", "UPDATE")


def refuse_state_writes(path: Path, namespace: str) -> None:
    """Refuse every insert or update of a state entry in `namespace` ("refused")."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        for statement in _STATEMENTS:
            other.execute(
                f"CREATE TRIGGER refused_{statement.lower()} BEFORE {statement} ON state "
                f"WHEN NEW.namespace = '{namespace}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        other.commit()


def accept_state_writes(path: Path) -> None:
    """Undo `refuse_state_writes`."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        for statement in _STATEMENTS:
            other.execute(f"DROP TRIGGER refused_{statement.lower()}")
        other.commit()
