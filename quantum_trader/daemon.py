"""The daemon's lifecycle: uvloop, one AsyncExitStack for resources, one TaskGroup for the
executor (30 s), the position monitor (5 s) and a heartbeat. The status server, metrics and
notifications (app_ops) hang off the same stack; the loops report to their telemetry.

When a replay reaches the end of the recorded market the daemon says so once
(`replay_finished`) and idles: no more cycles, operator requests still read, the status server
still up, until SIGTERM/SIGINT.

SIGTERM/SIGINT (and SIGHUP, unless `nohup` ignores it) only set the stop event. Then: no new
trades, an order in flight finishes (the loops are never cancelled mid-step unless the grace
period runs out), the operator requests pending then are carried out as a monitor tick would
(within the grace again), the database is flushed, resources close in reverse order, and the
process exits 0. Protective stops stay on the exchange. A request left pending (the loops cut,
a write failed, a request failing or filed as the daemon stopped) is said not done: one error
line and a notification each.

A write that fails for a reason that lasts (the disk full: `StorageFailed`) stops the daemon
the same way, except that nothing more is written: one `storage_failed` line, then the
process exits 1 with one line saying what to free or repair. The next start reconciles with
the exchange.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import datetime

from quantum_trader.app import Runtime, open_runtime, save_replay_time
from quantum_trader.app_ops import Operations, open_operations
from quantum_trader.atomic_file import replace_at
from quantum_trader.clock import LiveClock, SimulatedClock
from quantum_trader.config import Settings
from quantum_trader.domain import Balance, EquitySnapshot
from quantum_trader.errors import (
    OperatorActionRequired,
    QuantumTraderError,
    StorageFailed,
    lasting_failure,
)
from quantum_trader.gates.balancer_journal import OUTPUT_FILE as BALANCER_FILE
from quantum_trader.log import get_logger
from quantum_trader.loops import LoopWatch, Step, periodic
from quantum_trader.ops.health import HealthSample
from quantum_trader.ops.metrics import Metrics, StreamHealth, StreamState
from quantum_trader.ops.operator_view import MARKS_FILE
from quantum_trader.ops.presence import HEARTBEAT_FILE as HEARTBEAT_FILE  # re-exported
from quantum_trader.ops.presence import STOPPING_FILE
from quantum_trader.ops.requests import RequestWindow
from quantum_trader.ops.server import check_address, check_open_files
from quantum_trader.portfolio.analytics import portfolio_report
from quantum_trader.ports import Clock, SignalSource
from quantum_trader.requests_at_stop import requests_at_stop
from quantum_trader.stop_signals import add_stop_handlers

log = get_logger("daemon")
ANALYTICS_FILE = "portfolio_analytics.json"


async def run_daemon(settings: Settings, source: SignalSource | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the exit code. `source` replaces the signal source the
    settings choose (the kill -9 campaign runs the daemon with a seeded one)."""
    stopping = asyncio.Event()
    add_stop_handlers(asyncio.get_running_loop(), stopping.set)
    speed = settings.market.replay_speed
    started = LiveClock().now()  # before the data directory is ours: older requests are stale
    check_address(settings.server)  # a port in use: before the data directory or the exchange
    check_open_files(settings.server)  # a cap the open-file limit cannot hold: the same
    failed: StorageFailed | None = None
    try:
        async with AsyncExitStack() as stack:
            metrics = Metrics()
            metrics.declare_loops(loop_intervals_s(settings))
            runtime = await open_runtime(
                settings,
                stack,
                lambda start: SimulatedClock(start, speed),
                stopping,
                metrics,
                source,
            )
            ops = await open_operations(runtime, metrics, stack, stream_states(runtime))
            window = RequestWindow(started, settings.operator.request_max_age_s)
            runtime.core.governor.accept_requests(window, LiveClock())
            await runtime.core.governor.handle_operator_requests(runtime.clock.now())
            failed = await run_loops(runtime, ops, stopping)
            if failed is None:
                await runtime.repository.flush()
            else:
                await _protect_unbooked(runtime)
            reason = _stop_reason(runtime, failed)
            ops.telemetry.on_stopped(runtime.clock.now(), reason)
    except Exception as error:
        if failed is None or (lasting_failure(error) is None and not isinstance(error, OSError)):
            raise
        # Closing met it again (the buffered decisions, the paper account could not be
        # written either; the data directory gone, as a file error of its own).
        log.warning("closing_failed", error=str(error))
    if failed is not None:
        raise StorageFailed(
            f"{failed}; the daemon stopped: start it again once that is done, it reconciles "
            "with the exchange (the protective stops stay there meanwhile)"
        ) from failed
    log.info("daemon_stopped", sim_time=runtime.clock.now().isoformat())
    return 0


async def _protect_unbooked(runtime: Runtime) -> None:
    """The loops stopped on a write failure, perhaps between an entry's fill and its stop:
    the stops a tick would place go out unbooked (keeper/last_stand.py)."""
    try:
        await runtime.core.keeper.protect_unbooked(runtime.clock.now())
    except Exception as error:  # the exchange unreadable too: the stop goes on regardless
        log.error("last_protection_failed", error=type(error).__name__, detail=str(error))


def _stop_reason(runtime: Runtime, failed: StorageFailed | None) -> str:
    if failed is not None:
        return "storage failed"
    return "health CRITICAL" if runtime.health.should_shut_down else "stop requested"


def loop_intervals_s(settings: Settings) -> dict[str, float]:
    """The daemon's periodic loops by name, and each one's interval in its clock's seconds."""
    return {
        "executor": settings.executor.interval_s,
        "monitor": settings.monitor.interval_s,
        "heartbeat": settings.executor.heartbeat_interval_s,
    }


async def run_loops(
    runtime: Runtime, ops: Operations, stopping: asyncio.Event
) -> StorageFailed | None:
    """The executor, the keeper's monitor tick, the heartbeat and the streams, until
    `stopping` is set; then a time-boxed, ordered stop. Return the write failure that
    stopped them, if one did (loops.py)."""
    s, clock = runtime.settings, runtime.clock
    every = loop_intervals_s(s)
    watch = LoopWatch(ops.warnings, ops.telemetry)

    async def heartbeat(now: datetime) -> None:
        await _heartbeat(runtime, ops, now, watch, stopping)

    async def operator_required(now: datetime, error: OperatorActionRequired) -> None:
        await runtime.core.governor.require_operator(now, str(error))

    keeper = runtime.core.keeper
    loops: tuple[tuple[str, float, Clock, Step, Sequence[asyncio.Event]], ...] = (
        ("executor", every["executor"], clock, lambda now: _cycle(runtime, ops, now), ()),
        # The keeper also ticks at once when it asks to (an order's outcome is unknown) and
        # when the user-data stream reports a fill.
        (
            "monitor",
            every["monitor"],
            clock,
            lambda now: _monitor_tick(runtime, ops, now),
            keeper.wake_events(),
        ),
        # Liveness and health are about the process, so the heartbeat keeps real time.
        ("heartbeat", every["heartbeat"], LiveClock(), heartbeat, ()),
    )
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                periodic(
                    name,
                    every,
                    ticks,
                    stopping,
                    _in_held_dir(runtime, step),
                    watch,
                    wakes,
                    operator_required,
                ),
                name=name,
            )
            for name, every, ticks, step, wakes in loops
        ]
        if runtime.streams is not None:
            tasks.append(group.create_task(_streams(runtime, stopping), name="streams"))
        await stopping.wait()
        log.info("shutdown_requested", grace_s=s.executor.shutdown_grace_s)
        if _still_held(runtime):  # not into a directory removed or replaced under it
            _mark_stopping(runtime)
        _, late = await asyncio.wait(tasks, timeout=s.executor.shutdown_grace_s)
        for task in late:
            log.warning("shutdown_grace_exceeded", task=task.get_name())
            task.cancel()
    # A loop cut mid-step may have left the keeper half-way: nothing more is sent then.
    await requests_at_stop(runtime, ops, carry_out=watch.fatal is None and not late)
    return watch.fatal


def _mark_stopping(runtime: Runtime) -> None:
    """Say the daemon is stopping, so operator commands refuse what it would not carry out."""
    try:
        _write_data_file(runtime, STOPPING_FILE, "")
    except OSError as error:  # the commands then accept a request the next start drops
        log.warning("stopping_mark_failed", error=str(error))


async def _streams(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Keep the exchange's streams alive; the keeper reads REST whenever they are not usable.
    A refusal only a person can fix halts new entries, and the daemon goes on on REST."""
    assert runtime.streams is not None
    try:
        await runtime.streams.run(stopping)
    except OperatorActionRequired as error:
        log.error("operator_action_required", loop="streams", error=str(error))
        await runtime.core.governor.require_operator(runtime.clock.now(), str(error))


async def _monitor_tick(runtime: Runtime, ops: Operations, now: datetime) -> None:
    """Operator requests, then the keeper's tick. Once the replay is over the market no
    longer moves: only operator requests are read, about once a second."""
    if ops.replay_finished and not ops.idle_request_check_due():
        return
    await runtime.core.governor.handle_operator_requests(now)
    if not ops.replay_finished:
        await runtime.core.keeper.tick(now)
    ops.telemetry.on_monitor_tick(now)


def _in_held_dir(runtime: Runtime, step: Step) -> Step:
    """`step`, first checking that the data directory is still the one the daemon holds
    (StorageFailed, and the loops stop, when it was removed or replaced under it); a file
    error during the step is that failure when the directory went meanwhile."""

    async def checked(now: datetime) -> None:
        _check_held(runtime)
        try:
            await step(now)
        except OSError:
            _check_held(runtime)
            raise

    return checked


def _check_held(runtime: Runtime) -> None:
    if runtime.held is not None:
        runtime.held.check()


def _still_held(runtime: Runtime) -> bool:
    try:
        _check_held(runtime)
    except StorageFailed:
        return False
    return True


async def _cycle(runtime: Runtime, ops: Operations, now: datetime) -> None:
    if runtime.replay_end is not None and now >= runtime.replay_end:
        if not ops.replay_finished:  # one line, then idle until stopped
            log.info("replay_finished", replay_end=runtime.replay_end.isoformat(), idle=True)
            ops.telemetry.on_replay_finished(now)
        return
    started = time.perf_counter()
    summary = await runtime.core.executor.run_cycle(now)
    await runtime.repository.flush()
    latest = runtime.core.balancer.latest_json()
    if latest is not None:
        _write_data_file(runtime, BALANCER_FILE, latest)
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
        unchanged_since=summary.unchanged_since,
        open_positions=len(runtime.core.keeper.positions),
    )


async def _heartbeat(
    runtime: Runtime,
    ops: Operations,
    wall_time: datetime,
    watch: LoopWatch,
    stopping: asyncio.Event,
) -> None:
    """Touch the heartbeat file (liveness), sample health, record equity, log one line.
    Health is acted on before anything else that reads the exchange: in an outage those
    reads fail too, and must not hide the CRITICAL (its page, its shutdown)."""
    balance, latency_ms = await _timed_balance(runtime)
    steps, failed, overruns = watch.take()
    usage = ops.sampler.sample()
    report = runtime.health.record(
        HealthSample(
            exchange_latency_ms=latency_ms,
            balance_usdt=balance.equity_usdt if balance else None,
            models_status=runtime.models_status(runtime.clock.now()),
            steps=steps,
            failed_steps=failed,
            overruns=overruns,
            cpu_pct=usage.cpu_pct,
            memory_pct=usage.memory_pct,
        )
    )
    _write_data_file(runtime, HEARTBEAT_FILE, wall_time.isoformat())
    ops.telemetry.on_heartbeat(report, balance, runtime.clock.now())
    if runtime.health.should_shut_down:
        log.error("health_critical_shutdown", problems=list(report.problems))
        stopping.set()
    if balance is not None:
        await _write_analytics(runtime, balance)
        await _record_equity(runtime, balance)
    _write_data_file(runtime, MARKS_FILE, await ops.telemetry.marks_document(wall_time))
    ops.warnings.flush(time.monotonic())
    log.info(
        "heartbeat",
        health=report.status,
        health_problems=list(report.problems),
        sim_time=runtime.clock.now().isoformat(),
        equity_usdt=str(balance.equity_usdt) if balance else None,
        open_positions=len(runtime.core.keeper.positions),
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
            len(runtime.core.keeper.positions),
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


async def _write_analytics(runtime: Runtime, balance: Balance) -> None:
    """The portfolio's risk analytics (SPEC §7) for `quantum-trader status` to read, on the
    heartbeat's balance (not a second read)."""
    market = runtime.core.executor.latest_market
    if market is None:
        return
    s = runtime.settings
    portfolio = await runtime.core.executor.portfolio(runtime.clock.now(), balance)
    report = portfolio_report(portfolio, market, s.balancer.sectors, s.analytics)
    _write_data_file(runtime, ANALYTICS_FILE, json.dumps(report.to_dict(), indent=2, default=str))


def _write_data_file(runtime: Runtime, name: str, text: str) -> None:
    """Replace `name` in the data directory atomically: the held one (app.py), even when its
    path names another by now — never a directory moved or made in its place between the
    step's check and this write (ops/data_dir.py; atomic_file.py)."""
    if runtime.held is not None:
        runtime.held.write(name, text)
    else:
        replace_at(runtime.settings.data_dir / name, text)


class _ExchangeStreams:
    """The exchange streams' health as the metrics read it (one line: usable or not)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def streams(self) -> Sequence[StreamState]:
        streams = self._runtime.streams
        if streams is None:
            return ()
        health = streams.health()
        last = health.last_message_at
        age = (self._runtime.clock.now() - last).total_seconds() if last else None
        return (StreamState("binance", health.usable, age),)


def stream_states(runtime: Runtime) -> StreamHealth | None:
    """What the metrics report about the streams (None: REST only)."""
    return _ExchangeStreams(runtime) if runtime.streams is not None else None
