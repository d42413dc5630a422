"""The clock port's implementations. This is the only module that reads the wall clock.

- LiveClock: real UTC time.
- SimulatedClock: starts at a given instant and runs `speed` simulated seconds per real second
  (replay at 600x runs a 30 s cycle every 50 ms).
- ManualClock: moves only when told to; for tests and the backtest.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


def utc_from_ms(ms: int) -> datetime:
    # The zone by position: by keyword, `fromtimestamp` parses it (≈ 40 % of the call).
    return datetime.fromtimestamp(ms / 1000, UTC)


def ms_from_utc(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def on_whole_ms(moment: datetime) -> bool:
    """Whether `moment` falls on a whole millisecond: then an instant a whole number of
    milliseconds after it is counted in ms by addition, `ms_from_utc(moment) + k × step_ms`
    being exactly `ms_from_utc` of it (which costs ≈ 3,700 instructions a call)."""
    return utc_from_ms(ms_from_utc(moment)) == moment


# Real seconds a wait may run past what it asked for before a clock still short of its deadline
# is taken for one stepped back (a simulated clock, read from the monotonic clock, never is).
STEP_BACK_SLACK_S = 0.05


class LiveClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        await _sleep_until(self, deadline, 1.0)


class SimulatedClock:
    """Simulated time anchored at `start`, advancing `speed` times faster than real time."""

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start
        self._speed = speed
        self._origin = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self._speed
        return self._start + timedelta(seconds=elapsed)

    async def sleep_until(self, deadline: datetime) -> None:
        await _sleep_until(self, deadline, self._speed)


async def _sleep_until(clock: LiveClock | SimulatedClock, deadline: datetime, speed: float) -> None:
    """Return once `clock.now()` has reached `deadline` (after one turn of the loop at least),
    or once the real time the wait asked for at its start has passed, whatever the clock then
    reads: a wall clock stepped back meanwhile (NTP correcting a clock that ran ahead, a
    person setting it) must not stretch a wait by the step — an hour back would have stopped
    every loop for an hour. The caller sees the clock short of `deadline` (loops.py starts its
    schedule again from there).

    An event loop's timer may fire early — uvloop's by up to a millisecond (libuv counts whole
    milliseconds; MagicStack/uvloop#739), and asyncio documents early wake-ups too — which at
    600x is 0.6 simulated seconds: what remains is slept again."""
    started = time.monotonic()
    longest = max((deadline - clock.now()).total_seconds(), 0.0) / speed + STEP_BACK_SLACK_S
    while True:
        remaining = (deadline - clock.now()).total_seconds() / speed
        left = longest - (time.monotonic() - started)
        await asyncio.sleep(max(min(remaining, left), 0.0))
        if clock.now() >= deadline or time.monotonic() - started >= longest:
            return


class ManualClock:
    """Time that moves only through `advance` or `set`; sleepers wake when it passes them."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        if moment < self._now:
            raise ValueError("a clock never goes backwards")
        self._now = moment
        still_asleep = []
        for deadline, waiter in self._sleepers:
            if deadline <= moment:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still_asleep.append((deadline, waiter))
        self._sleepers = still_asleep

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    async def sleep_until(self, deadline: datetime) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, waiter))
        await waiter
