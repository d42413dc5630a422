"""The cyclic collector during a backtest (collector.py): exempt and paused only inside the
command, and left as it was found, whether the run ends, fails or is interrupted."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from quantum_trader.backtest import BacktestInterrupted, BacktestRequest, run_backtest
from quantum_trader.collector import collector_paused, loaded_objects_exempt
from quantum_trader.config import Settings


@pytest.fixture
def freeze_counts_at_collections() -> Iterator[list[int]]:
    """The number of exempt objects at the start of every collection while the test runs."""
    seen: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(gc.get_freeze_count())

    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)


def _fail_inside(
    scope: Callable[[], AbstractContextManager[None]], note: Callable[[], None]
) -> None:
    with scope():
        note()
        raise RuntimeError("the scope ends by an error")


def test_objects_alive_on_entry_are_exempt_inside_and_collectable_after() -> None:
    assert gc.get_freeze_count() == 0
    inside: list[int] = []
    with pytest.raises(RuntimeError):
        _fail_inside(loaded_objects_exempt, lambda: inside.append(gc.get_freeze_count()))
    assert inside[0] > 0
    assert gc.get_freeze_count() == 0


def test_a_paused_collector_resumes_only_if_it_ran_on_entry() -> None:
    assert gc.isenabled()
    inside: list[bool] = []
    with pytest.raises(RuntimeError):
        _fail_inside(collector_paused, lambda: inside.append(gc.isenabled()))
    assert inside == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # the caller's choice stands
    finally:
        gc.enable()


def _run(tmp_path: Path, stopping: asyncio.Event | None = None) -> None:
    settings = Settings(data_dir=tmp_path, signals={"source": "rules"})
    request = BacktestRequest(
        start=datetime(2025, 9, 10, tzinfo=UTC),
        end=datetime(2025, 9, 12, tzinfo=UTC),
        out_dir=tmp_path / "out",
    )
    asyncio.run(run_backtest(settings, request, stopping))


def test_a_backtest_exempts_what_it_loaded_and_leaves_the_collector_as_it_found_it(
    tmp_path: Path, freeze_counts_at_collections: list[int]
) -> None:
    _run(tmp_path)
    assert (tmp_path / "out" / "report.json").exists()
    assert any(count > 0 for count in freeze_counts_at_collections)  # the one after the replay
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_no_cycle_search_runs_while_the_backtest_replays(tmp_path: Path) -> None:
    replaying: list[bool] = []  # at each collection's start, whether `_replay` is on the stack

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            frame: FrameType | None = sys._getframe(1)
            names = set()
            while frame is not None:
                names.add(frame.f_code.co_name)
                frame = frame.f_back
            replaying.append("_replay" in names)

    gc.callbacks.append(note)
    try:
        _run(tmp_path)
    finally:
        gc.callbacks.remove(note)
    assert replaying  # collections ran before and after it
    assert not any(replaying)


def test_an_interrupted_backtest_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    stopping = asyncio.Event()
    stopping.set()
    with pytest.raises(BacktestInterrupted):
        _run(tmp_path, stopping)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


EXITING = """
import gc, sys
from quantum_trader.collector import leave_to_exit

class Noisy:
    def __del__(self):
        sys.stdout.write("collected at exit\\n")

gc.disable()  # no collection before exit: the cycle is left to the last one
cycle = Noisy()
cycle.me = cycle
del cycle
if sys.argv[1] == "leave":
    leave_to_exit()
"""


@pytest.mark.parametrize("left", [False, True])
def test_a_command_leaving_to_exit_spares_the_last_collection(left: bool) -> None:
    arguments = [sys.executable, "-c", EXITING, "leave" if left else "collect"]
    done = subprocess.run(arguments, capture_output=True, text=True, check=True, timeout=60)
    assert ("collected at exit" in done.stdout) is not left
