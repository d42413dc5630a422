"""The clock port's implementations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import uvloop

from quantum_trader.clock import (
    LiveClock,
    ManualClock,
    SimulatedClock,
    ms_from_utc,
    on_whole_ms,
    utc_from_ms,
)

T0 = datetime(2025, 9, 1, tzinfo=UTC)


def test_instants_on_whole_milliseconds_are_counted_in_ms_by_addition() -> None:
    """`on_whole_ms`: from such an instant, `ms_from_utc` of each step a whole number of ms
    later is the first's plus the steps' (a backtest counts its steps' ms so)."""
    step = timedelta(minutes=5)
    assert on_whole_ms(T0)
    assert all(ms_from_utc(T0 + k * step) == ms_from_utc(T0) + k * 300_000 for k in range(2_000))
    assert not on_whole_ms(T0 + timedelta(microseconds=500))


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    assert clock.now() == T0
    clock.advance(30)
    assert clock.now() == T0 + timedelta(seconds=30)


def test_manual_clock_never_goes_backwards() -> None:
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(T0 - timedelta(seconds=1))


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock(T0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: int) -> None:
        await clock.sleep_until(T0 + timedelta(seconds=seconds))
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("monitor", 5)), asyncio.create_task(sleeper("cycle", 30))]
    await asyncio.sleep(0)
    clock.advance(5)
    await asyncio.sleep(0)
    assert woke == ["monitor"]
    clock.advance(25)
    await asyncio.gather(*tasks)
    assert woke == ["monitor", "cycle"]


async def test_a_past_deadline_returns_at_once() -> None:
    clock = ManualClock(T0)
    await asyncio.wait_for(clock.sleep_until(T0 - timedelta(hours=1)), timeout=1)


async def test_simulated_clock_runs_faster_than_real_time() -> None:
    clock = SimulatedClock(T0, speed=10_000)
    deadline = T0 + timedelta(seconds=30)
    await asyncio.wait_for(clock.sleep_until(deadline), timeout=5)
    assert clock.now() >= deadline


@pytest.mark.parametrize(
    "clock", [LiveClock(), SimulatedClock(T0, speed=600)], ids=["live", "600x"]
)
def test_a_sleep_never_ends_before_its_deadline(clock: LiveClock | SimulatedClock) -> None:
    """On uvloop, every command's loop, a timer may fire up to a millisecond early
    (MagicStack/uvloop#739): at 600x that is 0.6 simulated seconds. The deadlines are a few
    milliseconds of real time ahead, where that shows."""
    scale = getattr(clock, "speed", 1.0)

    async def sleeps() -> None:
        for step in range(300):
            deadline = clock.now() + timedelta(seconds=(0.0005 + (step % 7) * 0.0007) * scale)
            await clock.sleep_until(deadline)
            assert clock.now() >= deadline, f"woke {deadline - clock.now()} early at sleep {step}"

    uvloop.run(sleeps())


def test_simulated_clock_refuses_a_non_positive_speed() -> None:
    with pytest.raises(ValueError, match="positive"):
        SimulatedClock(T0, speed=0)


def test_milliseconds_round_trip() -> None:
    assert utc_from_ms(ms_from_utc(T0)) == T0


def test_instants_convert_to_epoch_milliseconds_and_back_whatever_was_converted_before() -> None:
    """Each instant converts to its own epoch milliseconds, in any order of asking, and back."""
    a = datetime(2025, 3, 1, 12, 5, tzinfo=UTC)
    b = a + timedelta(milliseconds=1)
    assert [ms_from_utc(a), ms_from_utc(b), ms_from_utc(a)] == [
        1740830700000,
        1740830700001,
        1740830700000,
    ]
    assert ms_from_utc(datetime(2025, 3, 1, 12, 5, tzinfo=UTC)) == 1740830700000
    assert utc_from_ms(ms_from_utc(b)) == b


class SteppedWallClock(LiveClock):
    """The real clock read through an offset a test sets: the wall clock stepped (NTP, a person
    setting the date); the sleeping is LiveClock's own."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset


async def test_a_wall_clock_stepped_back_does_not_stretch_a_sleep() -> None:
    """A 0.2 s sleep during which the wall clock is set back an hour ends after about its own
    0.2 s, the clock still short of the deadline (the caller starts its schedule again); it
    used to sleep until the clock came back to the deadline, an hour later. The bound (10 s)
    only separates the two by far."""
    clock = SteppedWallClock()
    deadline = clock.now() + timedelta(seconds=0.2)

    async def step_back() -> None:
        await asyncio.sleep(0.05)
        clock.offset = -timedelta(hours=1)

    stepping = asyncio.create_task(step_back())
    await asyncio.wait_for(clock.sleep_until(deadline), timeout=10)
    await stepping
    assert clock.now() < deadline - timedelta(minutes=59)
