"""The daemon's lifecycle: uvloop, one AsyncExitStack for resources, one TaskGroup for the
executor (30 s), the position monitor (5 s) and a heartbeat. The status server, metrics and
notifications (app_ops) hang off the same stack; the loops report to their telemetry.

When a replay reaches the end of the recorded market the daemon says so once
(`replay_finished`) and idles: no more cycles, operator requests still read, the status server
still up, until SIGTERM/SIGINT.

SIGTERM/SIGINT only set the stop event. Then: no new trades, an order in flight finishes (the
loops are never cancelled mid-step unless the grace period runs out), the database is flushed,
resources close in reverse order, and the process exits 0. Protective stops stay on the exchange.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from quantum_trader.app import Runtime, open_runtime, save_replay_time
from quantum_trader.app_ops import Operations, open_operations
from quantum_trader.clock import LiveClock, SimulatedClock
from quantum_trader.config import Settings
from quantum_trader.domain import Balance, EquitySnapshot
from quantum_trader.errors import QuantumTraderError
from quantum_trader.log import get_logger
from quantum_trader.ops.health import HealthSample
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.presence import HEARTBEAT_FILE as HEARTBEAT_FILE  # re-exported
from quantum_trader.ops.quiet import RepeatedWarnings
from quantum_trader.portfolio.analytics import portfolio_report
from quantum_trader.ports import Clock

log = get_logger("daemon")
Step = Callable[[datetime], Awaitable[None]]
ANALYTICS_FILE = "portfolio_analytics.json"
DEFAULT_SUMMARY_INTERVAL_S = 60.0


async def run_daemon(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    speed = settings.market.replay_speed
    async with AsyncExitStack() as stack:
        metrics = Metrics()
        runtime = await open_runtime(
            settings, stack, lambda start: SimulatedClock(start, speed), stopping, metrics
        )
        ops = await open_operations(runtime, metrics, stack)
        # Reconcile protection before the first trade: a stop missing since the last run is
        # re-placed, an exit the exchange made meanwhile is booked.
        await _monitor_tick(runtime, ops, runtime.clock.now())
        await _run_loops(runtime, ops, stopping)
        await runtime.repository.flush()
        reason = "health CRITICAL" if runtime.health.should_shut_down else "stop requested"
        ops.telemetry.on_stopped(runtime.clock.now(), reason)
    log.info("daemon_stopped", sim_time=runtime.clock.now().isoformat())
    return 0


async def _run_loops(runtime: Runtime, ops: Operations, stopping: asyncio.Event) -> None:
    s, clock = runtime.settings, runtime.clock
    watch = LoopWatch(ops.warnings, ops.telemetry)

    async def heartbeat(now: datetime) -> None:
        await _heartbeat(runtime, ops, now, watch, stopping)

    loops = (
        ("executor", s.executor.interval_s, clock, lambda now: _cycle(runtime, ops, now)),
        ("monitor", s.monitor.interval_s, clock, lambda now: _monitor_tick(runtime, ops, now)),
        # Liveness and health are about the process, so the heartbeat keeps real time.
        ("heartbeat", s.executor.heartbeat_interval_s, LiveClock(), heartbeat),
    )
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(periodic(name, every, ticks, stopping, step, watch), name=name)
            for name, every, ticks, step in loops
        ]
        await stopping.wait()
        log.info("shutdown_requested", grace_s=s.executor.shutdown_grace_s)
        _, late = await asyncio.wait(tasks, timeout=s.executor.shutdown_grace_s)
        for task in late:
            log.warning("shutdown_grace_exceeded", task=task.get_name())
            task.cancel()


async def _monitor_tick(runtime: Runtime, ops: Operations, now: datetime) -> None:
    """Operator requests, then the position monitor. Once the replay is over the market no
    longer moves: only operator requests are read, about once a second."""
    if ops.replay_finished and not ops.idle_request_check_due():
        return
    await runtime.core.governor.handle_operator_requests(now)
    if not ops.replay_finished:
        await runtime.core.monitor.tick(now)
    ops.telemetry.on_monitor_tick(now)


async def _cycle(runtime: Runtime, ops: Operations, now: datetime) -> None:
    if runtime.replay_end is not None and now >= runtime.replay_end:
        if not ops.replay_finished:  # one line, then idle until stopped
            log.info("replay_finished", replay_end=runtime.replay_end.isoformat(), idle=True)
            ops.telemetry.on_replay_finished(now)
        return
    started = time.perf_counter()
    summary = await runtime.core.executor.run_cycle(now)
    await runtime.repository.flush()
    runtime.core.balancer.write_latest(runtime.settings.data_dir)
    if runtime.replay_end is not None:
        await save_replay_time(runtime.repository, now)
    ops.telemetry.on_cycle(summary, time.perf_counter() - started, now)
    log.info(
        "cycle_completed",
        cycle_id=summary.cycle_id,
        sim_time=now.isoformat(),
        signals=summary.signals,
        candidates=summary.candidates,
        approved=summary.approved,
        opened=summary.opened,
        open_positions=len(runtime.core.trader.ledger.positions),
    )


async def _heartbeat(
    runtime: Runtime,
    ops: Operations,
    wall_time: datetime,
    watch: LoopWatch,
    stopping: asyncio.Event,
) -> None:
    """Touch the heartbeat file (liveness), sample health, record equity, log one line."""
    balance, latency_ms = await _timed_balance(runtime)
    steps, failed, overruns = watch.take()
    usage = ops.sampler.sample()
    report = runtime.health.record(
        HealthSample(
            exchange_latency_ms=latency_ms,
            balance_usdt=balance.equity_usdt if balance else Decimal(0),
            models_status=runtime.models_status(runtime.clock.now()),
            steps=steps,
            failed_steps=failed,
            overruns=overruns,
            cpu_pct=usage.cpu_pct,
            memory_pct=usage.memory_pct,
        )
    )
    (runtime.settings.data_dir / HEARTBEAT_FILE).write_text(wall_time.isoformat())
    await _write_analytics(runtime)
    if balance is not None:
        await _record_equity(runtime, balance)
    ops.telemetry.on_heartbeat(report, balance, runtime.clock.now())
    ops.warnings.flush(time.monotonic())
    if runtime.health.should_shut_down:
        log.error("health_critical_shutdown", problems=list(report.problems))
        stopping.set()
    log.info(
        "heartbeat",
        health=report.status,
        health_problems=list(report.problems),
        sim_time=runtime.clock.now().isoformat(),
        equity_usdt=str(balance.equity_usdt) if balance else None,
        open_positions=len(runtime.core.trader.ledger.positions),
        cpu_pct=None if usage.cpu_pct is None else round(usage.cpu_pct, 1),
        rss_mb=round(usage.rss_bytes / 2**20, 1),
    )


async def _record_equity(runtime: Runtime, balance: Balance) -> None:
    await runtime.repository.record_equity(
        EquitySnapshot(
            runtime.clock.now(),
            balance.equity_usdt,
            balance.wallet_usdt,
            balance.used_margin_usdt,
            len(runtime.core.trader.ledger.positions),
        )
    )


async def _timed_balance(runtime: Runtime) -> tuple[Balance | None, float | None]:
    """The balance and how long the exchange took to answer (None, None: no answer)."""
    started = time.perf_counter()
    try:
        balance = await runtime.exchange.fetch_balance()
    except QuantumTraderError:
        return None, None
    return balance, (time.perf_counter() - started) * 1000


async def _write_analytics(runtime: Runtime) -> None:
    """The portfolio's risk analytics (SPEC §7) for `quantum-trader status` to read."""
    market = runtime.core.executor.latest_market
    if market is None:
        return
    s = runtime.settings
    portfolio = await runtime.core.executor.portfolio(runtime.clock.now())
    report = portfolio_report(portfolio, market, s.balancer.sectors, s.analytics)
    target = s.data_dir / ANALYTICS_FILE
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    temporary.replace(target)


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
) -> None:
    """Call `step(now)` every `interval_s` of the clock until `stopping` is set.

    An exception in a step is logged with context and the loop goes on. A step that overruns
    its interval logs a warning and the next one starts on the next tick: no pile-up. Each
    step's lag (how long after the tick it was due at it started, in the clock's seconds) goes
    to the watch: a lag above one interval means a tick was skipped.
    """
    interval = timedelta(seconds=interval_s)
    due = deadline = clock.now()
    watch = watch or LoopWatch()
    while not stopping.is_set():
        now = clock.now()
        watch.on_step(name, interval_s, max((now - due).total_seconds(), 0.0))
        try:
            await step(now)
        except Exception as error:
            watch.on_failure(name, error)
        due = deadline = deadline + interval
        now = clock.now()
        if now > deadline:
            missed = (now - deadline) // interval + 1
            watch.on_overrun(name, missed)
            deadline += missed * interval
        if await sleep_or_stop(clock, deadline, stopping):
            return


async def sleep_or_stop(clock: Clock, deadline: datetime, stopping: asyncio.Event) -> bool:
    """Sleep until `deadline` unless `stopping` is set first; return whether it is set."""
    if stopping.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep_until(deadline))
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waiter):
            task.cancel()
        await asyncio.gather(sleeper, waiter, return_exceptions=True)
    return stopping.is_set()
