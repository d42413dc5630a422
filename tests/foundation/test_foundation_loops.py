"""The daemon's periodic loops: an error never kills a loop; an overrun skips, never piles up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from quantum_trader.clock import ManualClock
from quantum_trader.daemon import periodic

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
