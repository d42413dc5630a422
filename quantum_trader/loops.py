"""The daemon's periodic loops: a step every interval of a clock, errors handled by what they
ask for, overruns skipped (never piled up), a wake-up that runs the step at once, and a watch
that counts, measures lag and logs repeated warnings once then as summaries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from quantum_trader.errors import (
    OperatorActionRequired,
    RetryLater,
    StorageFailed,
    lasting_failure,
)
from quantum_trader.log import get_logger
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.ports import Clock

log = get_logger("daemon")
Step = Callable[[datetime], Awaitable[None]]
OperatorFn = Callable[[datetime, OperatorActionRequired], Awaitable[None]]
DEFAULT_SUMMARY_INTERVAL_S = 60.0


class LoopObserver(Protocol):
    def on_loop_step(self, loop: str, interval_s: float, lag_s: float) -> None: ...

    def on_loop_overrun(self, loop: str) -> None: ...

    def on_loop_failure(self, loop: str, error: BaseException) -> None: ...


class LoopWatch:
    """What the loops report: counts for the next health sample, metrics, and warnings that
    are logged once and then summarized (`log.repeat_summary_interval_s`)."""

    def __init__(
        self, warnings: RepeatedWarnings | None = None, observer: LoopObserver | None = None
    ) -> None:
        self.warnings = warnings or RepeatedWarnings(log, DEFAULT_SUMMARY_INTERVAL_S)
        self._observer = observer
        self.steps = self.failed = self.overruns = 0
        self.fatal: StorageFailed | None = None  # the first failure that stopped the loops

    def take(self) -> tuple[int, int, int]:
        """Steps, failures and overruns since the last call."""
        counts = (self.steps, self.failed, self.overruns)
        self.steps = self.failed = self.overruns = 0
        return counts

    def on_step(self, loop: str, interval_s: float, lag_s: float) -> None:
        self.steps += 1
        if self._observer is not None:
            self._observer.on_loop_step(loop, interval_s, lag_s)

    def on_failure(self, loop: str, error: Exception) -> None:
        self.failed += 1
        if self._observer is not None:
            self._observer.on_loop_failure(loop, error)
        self.warnings.warn(
            "loop_step_failed", (loop, type(error).__name__), time.monotonic(),
            level="error", exc_info=error, loop=loop, error=type(error).__name__,
        )  # fmt: skip

    def on_fatal(self, loop: str, error: StorageFailed) -> None:
        """A write failure that lasts: the loops stop (each says so once)."""
        self.failed += 1
        if self._observer is not None:
            self._observer.on_loop_failure(loop, error)
        self.fatal = self.fatal or error
        log.error("storage_failed", loop=loop, error=str(error))

    def on_deferred(self, loop: str, error: RetryLater) -> None:
        """A transient failure (RetryLater): the next step tries again."""
        self.failed += 1
        self.warnings.warn(
            "loop_step_deferred", (loop, type(error).__name__), time.monotonic(),
            loop=loop, error=str(error),
        )  # fmt: skip

    def on_clock_stepped_back(self, loop: str, by: timedelta) -> None:
        """The clock read earlier than the loop's schedule allows: it was set back (NTP
        stepping a clock that ran ahead, a person); the schedule starts again from it."""
        self.warnings.warn(
            "clock_stepped_back", loop, time.monotonic(),
            loop=loop, by_s=round(by.total_seconds(), 3),
        )  # fmt: skip

    def on_overrun(self, loop: str, skipped_ticks: int) -> None:
        self.overruns += 1
        if self._observer is not None:
            self._observer.on_loop_overrun(loop)
        self.warnings.warn(
            "loop_overrun", loop, time.monotonic(), sums=("skipped_ticks",),
            loop=loop, skipped_ticks=skipped_ticks,
        )  # fmt: skip


async def periodic(
    name: str,
    interval_s: float,
    clock: Clock,
    stopping: asyncio.Event,
    step: Step,
    watch: LoopWatch | None = None,
    wakes: Sequence[asyncio.Event] = (),
    on_operator_required: OperatorFn | None = None,
) -> None:
    """Call `step(now)` every `interval_s` of the clock until `stopping` is set, and at once
    whenever one of `wakes` is set (the step clears them; at most every fifth of the interval).

    Errors are handled by what they ask for: RetryLater is a warning and the next step tries
    again; OperatorActionRequired goes to `on_operator_required` (the governor halts new
    entries until an operator resets, and `status` says why); anything else is logged with
    its traceback and the loop goes on — but a write failure that lasts (StorageFailed, the
    disk full) sets `stopping` and ends the loop: nothing more can be booked, and an order
    whose intent cannot be saved first must not be sent. A step that overruns its interval
    logs a warning and the next one starts on the next tick: no pile-up. Each step's lag (how
    long after its tick it started, in the clock's seconds) goes to the watch.
    """
    interval = timedelta(seconds=interval_s)
    due = deadline = target = clock.now()  # `due`: the tick this step was due at, even if missed
    timed = False  # the last wait ran its time: no wake-up ended it
    watch = watch or LoopWatch()
    while not stopping.is_set():
        started = clock.now()
        if deadline - started > interval or (timed and started < target):
            # The clock stepped back (a wait ends short of its target only so): from now on.
            watch.on_clock_stepped_back(name, (max(deadline - interval, target) - started))
            due = deadline = started
        scheduled = started >= deadline  # not a step a wake-up asked for
        watch.on_step(name, interval_s, (started - due).total_seconds() if scheduled else 0.0)
        if not await _run_step(name, clock, step, watch, on_operator_required):
            stopping.set()
            return
        if scheduled:
            due = deadline + interval
            deadline = _next_deadline(name, deadline, interval, clock.now(), watch)
        target = deadline
        if any(wake.is_set() for wake in wakes):
            target = min(target, started + interval / 5)
            stopped, timed = await _wait(clock, target, stopping, (), interval)
        else:
            stopped, timed = await _wait(clock, target, stopping, wakes, interval)
        if stopped:
            return


async def _sleep(clock: Clock, deadline: datetime, at_most: timedelta | None) -> None:
    if at_most is not None:
        deadline = min(deadline, clock.now() + at_most)
    await clock.sleep_until(deadline)


def _next_deadline(
    name: str, deadline: datetime, interval: timedelta, now: datetime, watch: LoopWatch
) -> datetime:
    deadline += interval
    if now > deadline:
        missed = (now - deadline) // interval + 1
        watch.on_overrun(name, missed)
        deadline += missed * interval
    return deadline


async def _run_step(
    name: str,
    clock: Clock,
    step: Step,
    watch: LoopWatch,
    on_operator_required: OperatorFn | None,
) -> bool:
    """Run one step; False when it met a write failure that lasts (the loops are to stop)."""
    try:
        await step(clock.now())
    except RetryLater as error:
        watch.on_deferred(name, error)
    except OperatorActionRequired as error:
        watch.failed += 1
        log.error("operator_action_required", loop=name, error=str(error))
        if on_operator_required is not None:
            await on_operator_required(clock.now(), error)
    except Exception as error:
        fatal = lasting_failure(error)
        if fatal is not None:
            watch.on_fatal(name, fatal)
            return False
        watch.on_failure(name, error)
    return True


async def sleep_or_stop(
    clock: Clock, deadline: datetime, stopping: asyncio.Event, *wakes: asyncio.Event
) -> bool:
    """Sleep until `deadline` unless `stopping` (or one of `wakes`) is set first; return
    whether `stopping` is set."""
    stopped, _ = await _wait(clock, deadline, stopping, wakes, None)
    return stopped


async def _wait(
    clock: Clock,
    deadline: datetime,
    stopping: asyncio.Event,
    wakes: Sequence[asyncio.Event],
    at_most: timedelta | None,
) -> tuple[bool, bool]:
    """`sleep_or_stop`, no longer than `at_most` from when the wait starts, on the clock as
    it reads then (a clock set back since `deadline` was reckoned would stretch the wait by
    the step). Whether `stopping` is set, and whether the wait ran its time (no wake-up or
    stop ended it)."""
    if stopping.is_set():
        return True, False
    sleep = asyncio.ensure_future(_sleep(clock, deadline, at_most))
    tasks = [sleep, asyncio.ensure_future(stopping.wait())]
    tasks += [asyncio.ensure_future(wake.wait()) for wake in wakes]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stopping.is_set(), not sleep.cancelled()
