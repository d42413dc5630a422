"""The daemon's lifecycle: uvloop, one AsyncExitStack for resources, one TaskGroup for the
executor (30 s), the position monitor (5 s) and a heartbeat.

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
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import psutil

from quantum_trader.app import Runtime, open_runtime, save_replay_time
from quantum_trader.clock import LiveClock, SimulatedClock
from quantum_trader.config import Settings
from quantum_trader.domain import EquitySnapshot
from quantum_trader.errors import QuantumTraderError
from quantum_trader.log import get_logger
from quantum_trader.ops.health import HealthSample
from quantum_trader.ops.presence import HEARTBEAT_FILE as HEARTBEAT_FILE  # re-exported
from quantum_trader.portfolio.analytics import portfolio_report
from quantum_trader.ports import Clock

log = get_logger("daemon")
Step = Callable[[datetime], Awaitable[None]]
ANALYTICS_FILE = "portfolio_analytics.json"


async def run_daemon(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    speed = settings.market.replay_speed
    async with AsyncExitStack() as stack:
        runtime = await open_runtime(
            settings, stack, lambda start: SimulatedClock(start, speed), stopping
        )
        # Reconcile protection before the first trade: a stop missing since the last run is
        # re-placed, an exit the exchange made meanwhile is booked.
        await _monitor_tick(runtime, runtime.clock.now())
        await _run_loops(runtime, stopping)
        await runtime.repository.flush()
        log.info("daemon_stopped", sim_time=runtime.clock.now().isoformat())
    return 0


async def _run_loops(runtime: Runtime, stopping: asyncio.Event) -> None:
    s, clock, stats = runtime.settings, runtime.clock, LoopStats()

    async def heartbeat(now: datetime) -> None:
        await _heartbeat(runtime, now, stats, stopping)

    loops = (
        ("executor", s.executor.interval_s, clock, lambda now: _cycle(runtime, now)),
        ("monitor", s.monitor.interval_s, clock, lambda now: _monitor_tick(runtime, now)),
        # Liveness and health are about the process, so the heartbeat keeps real time.
        ("heartbeat", s.executor.heartbeat_interval_s, LiveClock(), heartbeat),
    )
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(periodic(name, every, ticks, stopping, step, stats), name=name)
            for name, every, ticks, step in loops
        ]
        await stopping.wait()
        log.info("shutdown_requested", grace_s=s.executor.shutdown_grace_s)
        _, late = await asyncio.wait(tasks, timeout=s.executor.shutdown_grace_s)
        for task in late:
            log.warning("shutdown_grace_exceeded", task=task.get_name())
            task.cancel()


async def _monitor_tick(runtime: Runtime, now: datetime) -> None:
    await runtime.core.governor.handle_operator_requests(now)
    await runtime.core.monitor.tick(now)


async def _cycle(runtime: Runtime, now: datetime) -> None:
    if runtime.replay_end is not None and now >= runtime.replay_end:
        log.info("replay_finished", replay_end=runtime.replay_end.isoformat())
        return
    summary = await runtime.core.executor.run_cycle(now)
    await runtime.repository.flush()
    runtime.core.balancer.write_latest(runtime.settings.data_dir)
    if runtime.replay_end is not None:
        await save_replay_time(runtime.repository, now)
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
    runtime: Runtime, wall_time: datetime, stats: LoopStats, stopping: asyncio.Event
) -> None:
    """Touch the heartbeat file (the Docker healthcheck reads its age), sample health, log."""
    started = time.perf_counter()
    try:
        balance = await runtime.exchange.fetch_balance()
        latency_ms: float | None = (time.perf_counter() - started) * 1000
    except QuantumTraderError:
        balance, latency_ms = None, None
    steps, failed, overruns = stats.take()
    report = runtime.health.record(
        HealthSample(
            exchange_latency_ms=latency_ms,
            balance_usdt=balance.equity_usdt if balance else Decimal(0),
            models_status=runtime.models_status(runtime.clock.now()),
            steps=steps,
            failed_steps=failed,
            overruns=overruns,
            cpu_pct=psutil.cpu_percent(interval=None),
            memory_pct=psutil.virtual_memory().percent,
        )
    )
    (runtime.settings.data_dir / HEARTBEAT_FILE).write_text(wall_time.isoformat())
    await _write_analytics(runtime)
    if balance is not None:
        await runtime.repository.record_equity(
            EquitySnapshot(
                runtime.clock.now(),
                balance.equity_usdt,
                balance.wallet_usdt,
                balance.used_margin_usdt,
                len(runtime.core.trader.ledger.positions),
            )
        )
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
    )


@dataclass(slots=True)
class LoopStats:
    """Steps, failures and overruns since the last health sample."""

    steps: int = 0
    failed: int = 0
    overruns: int = 0

    def take(self) -> tuple[int, int, int]:
        counts = (self.steps, self.failed, self.overruns)
        self.steps = self.failed = self.overruns = 0
        return counts


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


async def periodic(
    name: str,
    interval_s: float,
    clock: Clock,
    stopping: asyncio.Event,
    step: Step,
    stats: LoopStats | None = None,
) -> None:
    """Call `step(now)` every `interval_s` of the clock until `stopping` is set.

    An exception in a step is logged with context and the loop goes on. A step that overruns
    its interval logs a warning and the next one starts on the next tick: no pile-up.
    """
    interval = timedelta(seconds=interval_s)
    deadline = clock.now()
    counts = stats or LoopStats()
    while not stopping.is_set():
        counts.steps += 1
        try:
            await step(clock.now())
        except Exception:
            counts.failed += 1
            log.exception("loop_step_failed", loop=name)
        deadline += interval
        now = clock.now()
        if now > deadline:
            missed = (now - deadline) // interval + 1
            counts.overruns += 1
            log.warning("loop_overrun", loop=name, skipped_ticks=missed)
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
