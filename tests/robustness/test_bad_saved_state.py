"""A saved state row edited by hand or damaged: the daemon refuses to start with one line
naming the row and what to do, and leaves the database as it was (was: a traceback from
the row's parser).

The state restored fail-closed is what keeps the daemon safe (the governor's trips, the
account's day and peak for the daily drawdown, the keeper's run number in its order ids): a
start on a guess could lift a halt or repeat an order id. The files are what the real daemon
left (damage_fixtures), each damaged as an outsider would.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DATABASE, PAPER_STATE, cli
from damage_fixtures import contents, data_dir, stopped_daemon_template

__all__ = ["data_dir", "stopped_daemon_template"]


def _kept(data_dir: Path) -> tuple[bytes | None, dict[str, Any]]:
    """The database's bytes, and the paper account but for its clock (which a start moves to
    the replay's time before the books are read back, as any start does)."""
    files = contents(data_dir)
    paper = json.loads(files[PAPER_STATE] or b"{}")
    paper.pop("last_ms", None)
    return files[DATABASE], paper


def _set_row(database: Path, namespace: str, key: str, payload: str) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO state (namespace, key, payload, updated_at)"
            " VALUES (?, ?, ?, '2025-09-12T00:00:00+00:00')",
            (namespace, key, payload),
        )
    conn.close()


def _edit_row(database: Path, namespace: str, key: str, path: str, value: object) -> None:
    with sqlite3.connect(database) as conn:
        (found,) = conn.execute(
            "SELECT count(*) FROM state WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        assert found == 1, f"the daemon's data directory should hold {namespace}/{key}"
        conn.execute(
            "UPDATE state SET payload = json_set(payload, ?, ?) WHERE namespace = ? AND key = ?",
            (path, value, namespace, key),
        )
    conn.close()


def _governor_trip(breaker: str, since: str) -> Callable[[Path], None]:
    """Save a governor state holding one emergency trip of `breaker` since `since` (JSON)."""
    payload = (
        f'{{"trips": [{{"breaker": "{breaker}", "decision": "EMERGENCY_SHUTDOWN", '
        f'"since": {since}}}]}}'
    )
    return lambda db: _set_row(db, "governor", "state", payload)


# (namespace, key, damage, what the line says of the value)
DAMAGES: dict[str, tuple[str, str, Callable[[Path], None], str]] = {
    "account day not a date": (
        "account",
        "tracker",
        lambda db: _edit_row(db, "account", "tracker", "$.day", "last tuesday"),
        "ValueError: Invalid isoformat string: 'last tuesday'",
    ),
    "account not JSON": (
        "account",
        "tracker",
        lambda db: _set_row(db, "account", "tracker", '{"day": "2025-09-12", "peak'),
        "JSONDecodeError",
    ),
    "keeper run number a text": (
        "keeper",
        "run",
        lambda db: _edit_row(db, "keeper", "run", "$.n", "seven"),
        "ValueError: not a run number: 'seven'",
    ),
    "governor breaker unknown": (
        "governor",
        "state",
        _governor_trip("no_such_breaker", '"2025-09-12T00:00:00+00:00"'),
        "ValueError: 'no_such_breaker' is not a valid Breaker",
    ),
    "governor trip without its time": (
        "governor",
        "state",
        _governor_trip("TOTAL_DECLINE", "null"),
        "ValueError: a trip without the time it tripped",
    ),
    "governor baseline not a number": (
        "governor",
        "state",
        lambda db: _set_row(db, "governor", "state", '{"baseline_equity_usdt": "lots"}'),
        "InvalidOperation",
    ),
    "symbol statistics missing a field": (
        "symbol_stats",
        "BTC/USDT:USDT",
        lambda db: _set_row(db, "symbol_stats", "BTC/USDT:USDT", '{"symbol": "BTC/USDT:USDT"}'),
        "KeyError: 'trades'",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_the_daemon_refuses_a_damaged_saved_state_row_naming_it(
    data_dir: Path, damage: str
) -> None:
    namespace, key, apply, said = DAMAGES[damage]
    apply(data_dir / DATABASE)
    before = _kept(data_dir)

    done = cli(data_dir, "run")

    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: saved state {namespace}/{key} in the database cannot be read")
    assert said in line, line
    assert "restore the database from a backup, or delete that row" in line, line
    assert "Traceback" not in done.stderr
    assert _kept(data_dir) == before


def test_status_names_a_damaged_governor_state_too(data_dir: Path) -> None:
    _set_row(data_dir / DATABASE, "governor", "state", '{"baseline_equity_usdt": "lots"}')
    before = contents(data_dir)

    done = cli(data_dir, "status")

    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: saved state governor/state in the database cannot be read")
    assert contents(data_dir) == before
