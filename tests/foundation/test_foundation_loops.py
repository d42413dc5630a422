"""The daemon's periodic loops: an error never kills a loop and is handled by what it asks for
(a write failure that lasts stops them all); an overrun skips, never piles up; a wake-up runs
the step at once."""

from __future__ import annotations

import asyncio
import errno
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs
from test_foundation_clock import SteppedWallClock

from quantum_trader.clock import ManualClock
from quantum_trader.errors import OperatorActionRequired, RetryLater, StorageFailed
from quantum_trader.loops import LoopWatch, periodic

T0 = datetime(2025, 9, 1, tzinfo=UTC)


async def drive(clock: ManualClock, stopping: asyncio.Event, ticks: int, every_s: float) -> None:
    for _ in range(ticks):
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(every_s)
    for _ in range(5):
        await asyncio.sleep(0)
    stopping.set()


async def test_an_exception_in_one_step_is_logged_and_the_loop_goes_on() -> None:
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []

    async def step(now: datetime) -> None:
        seen.append(now)
        if len(seen) == 2:
            raise RuntimeError("one bad cycle")

    with capture_logs() as logs:
        await asyncio.gather(
            periodic("executor", 30, clock, stopping, step), drive(clock, stopping, 4, 30)
        )
    assert len(seen) >= 4
    failures = [e for e in logs if e["event"] == "loop_step_failed"]
    assert len(failures) == 1
    assert failures[0]["loop"] == "executor"


async def test_an_overrun_skips_to_the_next_tick() -> None:
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []

    async def slow_step(now: datetime) -> None:
        seen.append(now)
        if len(seen) == 1:
            clock.advance(75)  # this cycle took 2.5 intervals

    with capture_logs() as logs:
        await asyncio.gather(
            periodic("executor", 30, clock, stopping, slow_step), drive(clock, stopping, 3, 30)
        )
    assert seen[1] - seen[0] >= timedelta(seconds=90)  # next tick after the overrun, no pile-up
    overruns = [e for e in logs if e["event"] == "loop_overrun"]
    assert overruns[0]["skipped_ticks"] == 2


async def test_stopping_ends_the_loop_during_its_sleep() -> None:
    clock, stopping = ManualClock(T0), asyncio.Event()

    async def step(now: datetime) -> None:
        return None

    loop = asyncio.create_task(periodic("monitor", 5, clock, stopping, step))
    await asyncio.sleep(0)
    stopping.set()
    await asyncio.wait_for(loop, timeout=1)


async def test_errors_are_handled_by_what_they_ask_for() -> None:
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []
    escalated: list[str] = []
    errors = [RetryLater("exchange busy"), OperatorActionRequired("the API key was refused")]

    async def step(now: datetime) -> None:
        seen.append(now)
        if errors:
            raise errors.pop(0)

    async def operator_required(now: datetime, error: OperatorActionRequired) -> None:
        escalated.append(str(error))

    with capture_logs() as logs:
        await asyncio.gather(
            periodic("monitor", 5, clock, stopping, step, on_operator_required=operator_required),
            drive(clock, stopping, 4, 5),
        )
    assert len(seen) >= 4  # neither stops the loop
    events = {e["event"]: e for e in logs}
    assert events["loop_step_deferred"]["log_level"] == "warning"
    assert events["operator_action_required"]["log_level"] == "error"
    assert escalated == ["the API key was refused"]
    assert "loop_step_failed" not in events


async def to_the_next_tick_and_stop(
    clock: ManualClock, stopping: asyncio.Event, task: asyncio.Task[None]
) -> None:
    """Let a woken step run, move the clock to the 5 s tick (T0 + 5), let it run, stop."""
    for _ in range(30):
        await asyncio.sleep(0)
    clock.advance(3)
    for _ in range(30):
        await asyncio.sleep(0)
    stopping.set()
    await task


async def test_a_wake_up_runs_the_step_at_once_and_keeps_the_schedule() -> None:
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []
    wake = asyncio.Event()

    async def step(now: datetime) -> None:
        seen.append(now)
        wake.clear()

    task = asyncio.create_task(periodic("monitor", 5, clock, stopping, step, wakes=(wake,)))
    await asyncio.sleep(0)
    clock.advance(2)
    wake.set()  # an order's outcome turned out unknown: tick now, not in 3 s
    await to_the_next_tick_and_stop(clock, stopping, task)
    assert seen == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=5)]


async def test_a_wake_up_cleared_before_the_loop_looks_is_no_clock_set_back() -> None:
    """The keeper's tick clears its wake-up events, and `enter` may run one before the monitor
    loop resumes from the wake: the loop, short of its schedule, must not take that for a
    clock set back (a warning, the schedule moved)."""
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []
    wake = asyncio.Event()

    async def step(now: datetime) -> None:
        seen.append(now)

    with capture_logs() as events:
        task = asyncio.create_task(periodic("monitor", 5, clock, stopping, step, wakes=(wake,)))
        for _ in range(5):  # the first step, then the loop waiting
            await asyncio.sleep(0)
        clock.advance(2)
        wake.set()
        wake.clear()  # by another tick, before the loop resumes
        await to_the_next_tick_and_stop(clock, stopping, task)
    assert seen == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=5)]
    assert [e for e in events if e["event"] == "clock_stepped_back"] == []


@pytest.mark.parametrize(
    "error",
    [
        StorageFailed("database x.db refused a write (database or disk is full, SQLITE_FULL)"),
        OSError(errno.ENOSPC, "No space left on device", "heartbeat"),
    ],
    ids=["database", "file"],
)
async def test_a_write_failure_that_lasts_stops_every_loop_with_one_line(error: Exception) -> None:
    """The disk full (the database's StorageFailed, or a file's ENOSPC): the loop does not go
    on failing every step — it sets `stopping` (the others then stop too), the watch keeps the
    first failure for the exit, and one `storage_failed` error line names it."""
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []
    watch = LoopWatch()

    async def step(now: datetime) -> None:
        seen.append(now)
        if len(seen) == 2:
            raise error

    async def other(now: datetime) -> None:
        return None

    with capture_logs() as logs:
        await asyncio.wait_for(
            asyncio.gather(
                periodic("monitor", 5, clock, stopping, step, watch),
                periodic("heartbeat", 60, clock, stopping, other, watch),
                drive_until(clock, stopping, 5),
            ),
            timeout=5,
        )
    assert stopping.is_set()
    assert len(seen) == 2  # no step after the failure
    assert isinstance(watch.fatal, StorageFailed)
    failed = [e for e in logs if e["event"] == "storage_failed"]
    assert [(e["loop"], e["log_level"]) for e in failed] == [("monitor", "error")]
    assert [e for e in logs if e["event"] == "loop_step_failed"] == []


async def test_a_file_error_that_passes_is_not_taken_for_a_full_disk() -> None:
    clock, stopping, seen = ManualClock(T0), asyncio.Event(), []
    watch = LoopWatch()

    async def step(now: datetime) -> None:
        seen.append(now)
        if len(seen) == 2:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "marks.json")

    with capture_logs() as logs:
        await asyncio.gather(
            periodic("heartbeat", 60, clock, stopping, step, watch), drive(clock, stopping, 4, 60)
        )
    assert len(seen) >= 4
    assert watch.fatal is None
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["loop_step_failed"]


async def drive_until(clock: ManualClock, stopping: asyncio.Event, every_s: float) -> None:
    """Advance the clock a step at a time until `stopping` is set (by a loop)."""
    while not stopping.is_set():
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(every_s)


@pytest.mark.parametrize("during", ["sleep", "step"])
async def test_a_wall_clock_set_back_an_hour_keeps_the_loop_stepping(during: str) -> None:
    """The wall clock is set back an hour (NTP stepping a clock that ran ahead — a clock kept
    in local time, corrected after a boot —, a person), during the loop's sleep or during a
    step: the next steps come an interval apart, from the new time, with one warning. Was:
    the loop slept until the clock came back to its old schedule — an hour with no keeper
    tick, no cycle, no heartbeat. LiveClock's own sleeping, the wall read through an offset."""
    clock, stopping = SteppedWallClock(), asyncio.Event()
    seen: list[datetime] = []
    back = timedelta(hours=1)
    reached = {3: asyncio.Event(), 8: asyncio.Event()}

    async def step(now: datetime) -> None:
        seen.append(now)
        if during == "step" and len(seen) == 3:
            clock.offset = -back
        if len(seen) in reached:
            reached[len(seen)].set()

    with capture_logs() as events:
        task = asyncio.create_task(periodic("monitor", 0.05, clock, stopping, step))
        async with asyncio.timeout(20):  # only catches a loop that stalled
            if during == "sleep":
                await reached[3].wait()
                clock.offset = -back
            await reached[8].wait()
        stopping.set()
        await task
    after = [t for t in seen if t < seen[0]]  # the steps read on the clock set back
    assert len(after) >= 4
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert all(timedelta(0) < gap < timedelta(minutes=1) for gap in gaps)
    [warned] = [e for e in events if e["event"] == "clock_stepped_back"]
    assert warned["loop"] == "monitor"
    assert 3500 < warned["by_s"] <= 3600
