"""Decisions inserted by a writer process (storage/decisions_aside.py): the same rows, in the
same order, as the repository writes itself, and whatever the process does (killed early or
late, gone before it starts, exiting without writing, ignoring Ctrl-C) every decision is in the
database exactly once, in order, after one warning line (a hung one ended first); no process
outlives the repository."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import pytest
import storage_samples as s
from daemon_harness import (
    eventually,
    ignores_terminal_signals,
    niceness,
    query,
    ten_lower_than_ours,
)
from structlog.testing import capture_logs

from quantum_trader.domain import Decision, EquitySnapshot
from quantum_trader.helper_process import FALLBACK_WARNINGS
from quantum_trader.record import replace
from quantum_trader.storage.decisions_aside import DecisionsAside
from quantum_trader.storage.sqlite import FLUSH_THRESHOLD_ROWS, SqliteRepository
from quantum_trader.storage.tables import Row

BATCHES = 3


def decisions(count: int, first: int = 0) -> list[Decision]:
    """`count` decisions told apart by their cycle, detail and confidence."""
    base = s.decision()
    return [
        replace(
            base,
            cycle_id=f"c{first + i}",
            confidence=(first + i) / 1e6,
            verdict=replace(base.verdict, detail=f"detail {first + i}"),
        )
        for i in range(count)
    ]


def equity(count: int) -> list[EquitySnapshot]:
    return [s.equity()] * count


def rows(database: Path, table: str = "decisions") -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


Between = Callable[[SqliteRepository], Awaitable[None]]


async def recorded(database: Path, aside: bool, *, between: Between | None = None) -> list[str]:
    """Record BATCHES full batches and a part of one (and equity snapshots past the
    threshold, flushed while the process writes) into `database`; `between`, a function of
    the repository's process, runs after the first batch. The warnings logged."""
    repository = await SqliteRepository.open(database)
    with capture_logs() as logs:
        if aside:
            await repository.insert_decisions_aside()
        made = decisions(BATCHES * FLUSH_THRESHOLD_ROWS + 123)
        for index, start in enumerate(range(0, len(made), 1000)):
            await repository.record_decisions(made[start : start + 1000])
            if index == FLUSH_THRESHOLD_ROWS // 1000 and between is not None:
                await between(repository)
            if index == 7:
                for snapshot in equity(FLUSH_THRESHOLD_ROWS):
                    await repository.record_equity(snapshot)
        await repository.close()
    return [entry["event"] for entry in logs if entry["log_level"] == "warning"]


def aside_of(repository: SqliteRepository) -> DecisionsAside:
    aside = repository._aside
    assert aside is not None
    return aside


def test_decisions_written_aside_are_the_ones_written_here(tmp_path: Path) -> None:
    async def written_by_the_process(repository: SqliteRepository) -> None:
        # The first batch reaches the table while the repository holds the rest.
        database = tmp_path / "aside.db"
        count = "SELECT count(*) FROM decisions"
        eventually(lambda: query(database, count) == [(FLUSH_THRESHOLD_ROWS,)], 60, "batch 1")

    assert asyncio.run(recorded(tmp_path / "here.db", aside=False)) == []
    warnings = asyncio.run(recorded(tmp_path / "aside.db", True, between=written_by_the_process))
    assert warnings == []
    assert rows(tmp_path / "aside.db") == rows(tmp_path / "here.db")
    assert len(rows(tmp_path / "here.db")) == BATCHES * FLUSH_THRESHOLD_ROWS + 123
    for table in ("equity_snapshots", "position_events"):
        assert rows(tmp_path / "aside.db", table) == rows(tmp_path / "here.db", table)
    tallies = "SELECT gate, reason, decisions FROM decision_tallies"  # kept by the table
    made = BATCHES * FLUSH_THRESHOLD_ROWS + 123
    for database in ("aside.db", "here.db"):
        assert query(tmp_path / database, tallies) == [("governor", "PAUSED", made)]


@pytest.mark.parametrize("after_first_batch", [False, True])
def test_a_killed_writer_process_leaves_its_decisions_to_the_repository(
    tmp_path: Path, after_first_batch: bool
) -> None:
    async def kill(repository: SqliteRepository) -> None:
        aside = aside_of(repository)
        if after_first_batch:
            count = "SELECT count(*) FROM decisions"
            database = tmp_path / "aside.db"
            eventually(lambda: query(database, count) == [(FLUSH_THRESHOLD_ROWS,)], 60, "batch 1")
        os.kill(aside.pid, signal.SIGKILL)
        eventually(lambda: _gone(aside.pid), 60, "the process's end")

    asyncio.run(recorded(tmp_path / "here.db", aside=False))
    warnings = asyncio.run(recorded(tmp_path / "aside.db", True, between=kill))
    assert warnings == ["decisions_process_failed"]
    assert "decisions_process_failed" in FALLBACK_WARNINGS  # shown by the backtest command
    assert rows(tmp_path / "aside.db") == rows(tmp_path / "here.db")


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie not yet reaped counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def started(arguments: list[str]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """A stand-in writer process (or the real one) as `DecisionsAside.start` starts it."""
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - `finish` closes it
    child = subprocess.Popen(
        [sys.executable, *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    return child, errors


@pytest.mark.parametrize(
    "script",
    [
        "import sys; sys.stdin.buffer.read()",  # reads everything, writes nothing, exits 0
        "import sys; sys.stdin.buffer.read(100); raise SystemExit('writing failed')",
        "",  # never reads
    ],
)
def test_a_writer_process_that_does_not_write_leaves_its_decisions_to_the_repository(
    tmp_path: Path, script: str
) -> None:
    async def stand_in(repository: SqliteRepository) -> None:
        real = aside_of(repository)
        child, errors = started(["-c", script])
        real.finish(60)  # the real one ends with the batch it had
        held = await repository._highest_decision_id()
        assert real.unwritten(held) == []
        repository._aside = DecisionsAside(child, errors, held)

    asyncio.run(recorded(tmp_path / "here.db", aside=False))
    warnings = asyncio.run(recorded(tmp_path / "aside.db", True, between=stand_in))
    assert warnings == ["decisions_process_failed"]
    assert rows(tmp_path / "aside.db") == rows(tmp_path / "here.db")


def test_ctrl_c_reaching_the_writer_process_does_not_stop_it(tmp_path: Path) -> None:
    async def interrupt(repository: SqliteRepository) -> None:
        aside = aside_of(repository)
        # It yields the CPU to the replay, which needs it first (set first).
        lower = ten_lower_than_ours()
        eventually(lambda: niceness(aside.pid) == lower, 60, "the process at nice +10")
        eventually(lambda: ignores_terminal_signals(aside.pid), 60, "ignoring SIGINT, SIGHUP")
        os.kill(aside.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the process group

    asyncio.run(recorded(tmp_path / "here.db", aside=False))
    assert asyncio.run(recorded(tmp_path / "aside.db", True, between=interrupt)) == []
    assert rows(tmp_path / "aside.db") == rows(tmp_path / "here.db")


def test_no_writer_process_outlives_the_repository(tmp_path: Path) -> None:
    pids: list[int] = []

    async def note(repository: SqliteRepository) -> None:
        pids.append(aside_of(repository).pid)

    asyncio.run(recorded(tmp_path / "aside.db", True, between=note))
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(pids[0], 0)


CANNOT_START = """
import asyncio, sys
from pathlib import Path
from structlog.testing import capture_logs
from quantum_trader.storage.sqlite import SqliteRepository

async def main():
    repository = await SqliteRepository.open(Path(sys.argv[1]))
    sys.executable = "/nonexistent/python3"  # an interpreter that is gone
    with capture_logs() as logs:
        await repository.insert_decisions_aside()
    print(repository._aside is None, [entry["event"] for entry in logs])
    await repository.close()

asyncio.run(main())
"""


def test_a_writer_process_that_cannot_start_leaves_the_decisions_to_the_repository(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CANNOT_START, str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True ['decisions_process_unavailable']"
    assert "decisions_process_unavailable" in FALLBACK_WARNINGS  # shown by the backtest


def test_a_writer_process_that_hangs_is_ended_and_its_decisions_are_left_to_the_caller(
    tmp_path: Path,
) -> None:
    child, errors = started(["-c", "import sys, time; sys.stdin.buffer.read(10); time.sleep(600)"])
    aside = DecisionsAside(child, errors, before=0)
    batch: list[Row] = [(f"c{i}",) for i in range(3)]  # rows as the caller encoded them
    assert aside.send(batch)
    with capture_logs() as logs:
        aside.finish(0.5)
        assert aside.unwritten(0) == batch  # the table holds none of them
    assert child.returncode == -signal.SIGKILL
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["event"] == "decisions_process_failed"
    assert "not done after 0.5 s" in warning["error"]


def test_a_writer_process_that_stops_reading_is_ended_and_its_batch_left_to_the_caller() -> None:
    """Alive but not reading (frozen, stopped): a batch larger than the pipe is given up on
    after the wait, the process ended (it would write nothing more), the rows left to the
    caller, who writes them as for any failed send (the cases above). It used to hold the
    replay in the write for good."""
    child, errors = started(["-c", "import time; time.sleep(600)"])
    aside = DecisionsAside(child, errors, before=0, send_within_s=0.5)
    batch: list[Row] = [(f"c{i}", f"{i:x>1000}") for i in range(3000)]  # ≈ 3 MB: no pipe holds it
    with capture_logs() as logs:
        assert not aside.send(batch)
        aside.finish(60)
        assert aside.unwritten(0) == batch
    assert child.returncode == -signal.SIGKILL
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "not reading its batches within 0.5 s" in warning["error"]


def test_the_writer_process_imports_nothing_but_the_standard_library() -> None:
    """It starts beside a replay that has just begun: no library of ours or anyone's."""
    script = (
        "import json, sys; before = set(sys.modules); "
        "import quantum_trader.storage.decisions_writer; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    assert "quantum_trader" in loaded
    assert loaded <= {"quantum_trader", *sys.stdlib_module_names}, loaded


def decoy_checkout(directory: Path) -> None:
    """Another `quantum_trader` in `directory`, one that cannot even be imported."""
    (directory / "quantum_trader" / "storage").mkdir(parents=True)
    (directory / "quantum_trader" / "__init__.py").write_text("raise ImportError('a decoy')\n")


def test_a_writer_process_started_beside_another_checkout_is_this_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(recorded(tmp_path / "here.db", aside=False))
    decoy_checkout(tmp_path)
    monkeypatch.chdir(tmp_path)  # what `python -m` would put first on the child's path
    assert asyncio.run(recorded(tmp_path / "aside.db", aside=True)) == []
    assert rows(tmp_path / "aside.db") == rows(tmp_path / "here.db")
