"""A daemon left running for a year: its operations start on a database a year old as on a
fresh one, and what they hold does not grow with the daemon's age.

The live page's equity curve is seeded from the last `server.equity_points` snapshots, read
through their index, not from every snapshot the daemon has written (one a heartbeat: half a
million a year): counted as SQLite counts its work, in virtual-machine steps (its progress
handler), never timed, the same on a few snapshots and on many times more. The breaker trips
the telemetry remembers (so as to announce each once) are those in force, not every trip."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from loopback import LoopbackBinance
from loopback.fixtures import (
    clock_into_bar,
    daemon_settings,
    loopback,
    open_runtime_on,
)
from ops_builders import Receiver
from pydantic import SecretStr

from quantum_trader.app import database_path
from quantum_trader.app_ops import open_operations
from quantum_trader.clock import utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.domain import EquitySnapshot
from quantum_trader.gates.governor_state import Breaker, GovernorDecision, Trip
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import NotifySettings, ServerSettings
from quantum_trader.record import replace
from quantum_trader.storage.sqlite import SqliteRepository

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"
POINTS = 10
HOUR = timedelta(hours=1)


async def add_snapshots(settings: Settings, count: int) -> None:
    """`count` more equity snapshots, a minute apart, ending a day before the stand-in's now."""
    repository = await SqliteRepository.open(database_path(settings))
    try:
        held = len(await repository.equity_history())
        start = utc_from_ms(0) + timedelta(days=365)
        for minute in range(held, held + count):
            equity = Decimal(10_000 + minute)
            await repository.record_equity(
                EquitySnapshot(start + timedelta(minutes=minute), equity, equity, Decimal(0), 0)
            )
    finally:
        await repository.close()


async def started(
    server: LoopbackBinance, settings: Settings
) -> tuple[int, tuple[tuple[object, Decimal], ...]]:
    """The steps SQLite takes while the operations open, and the equity curve they seed."""
    clock = clock_into_bar(server)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(server, settings, stack, clock=clock)
        repository = runtime.repository
        assert isinstance(repository, SqliteRepository)
        await repository._sqlite.set_progress_handler(count, 1)
        ops = await open_operations(runtime, Metrics(), stack)
        counted = steps
        curve = (await ops.telemetry.snapshot()).equity_curve
    return counted, curve


async def test_the_equity_curve_is_seeded_from_the_last_points_alone(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = daemon_settings(tmp_path, server=ServerSettings(enabled=False, equity_points=POINTS))
    await add_snapshots(settings, POINTS + 1)
    young, _ = await started(loopback, settings)
    await add_snapshots(settings, 30 * POINTS)

    old, curve = await started(loopback, settings)

    assert old == young
    last = 31 * POINTS
    assert [value for _, value in curve] == [
        Decimal(10_000 + m) for m in range(last - POINTS + 1, last + 1)
    ]


async def test_the_trips_remembered_are_those_in_force(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """Twenty trips of a breaker, one after the other: each announced once, and only the one
    in force held (every trip of the daemon's life was, one tuple each)."""
    receiver = Receiver()
    settings = daemon_settings(
        tmp_path,
        server=ServerSettings(enabled=False),
        notify=NotifySettings(webhook_url=SecretStr(receiver.url), backoff_initial_s=0.01),
    )
    clock = clock_into_bar(loopback)
    held = []
    try:
        async with AsyncExitStack() as stack:
            runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
            telemetry = (await open_operations(runtime, Metrics(), stack)).telemetry
            governor = runtime.core.governor.governor
            for hour in range(20):
                now = clock.now() + timedelta(hours=hour)
                trip = Trip(Breaker.HOURLY_LOSS, GovernorDecision.PAUSE_1H, now, now + HOUR)
                governor.state = replace(governor.state, trips=(trip,))
                telemetry.on_monitor_tick(now)
                telemetry.on_monitor_tick(now + timedelta(seconds=5))  # no second notice
                held.append(len(telemetry._trips_seen))
            governor.state = replace(governor.state, trips=())
            telemetry.on_monitor_tick(clock.now() + timedelta(hours=20))
            held.append(len(telemetry._trips_seen))
    finally:
        receiver.close()
    assert held == [1] * 20 + [0]
    assert receiver.kinds().count("governor_trip") == 20
