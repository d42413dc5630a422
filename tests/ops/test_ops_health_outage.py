"""The heartbeat's balance read against the loopback stand-in: one read that fails (503 on the
read and its retries) is a blip — DEGRADED, logged, no page — and the next good read is
HEALTHY again; an outage is CRITICAL from the second failed read, paged once, and stops the
daemon's loops after three CRITICAL samples (SPEC §8), though the heartbeat's other work
reads the exchange too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, MutableMapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from loopback import LoopbackBinance
from loopback.faults import Fault, Outage
from loopback.fixtures import daemon_settings, loopback, open_runtime_on
from ops_builders import Receiver
from pydantic import SecretStr
from structlog.testing import capture_logs

from quantum_trader.app_ops import open_operations
from quantum_trader.config import ExecutorSettings
from quantum_trader.daemon import run_loops
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ops.settings import NotifySettings, ServerSettings

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"
ACCOUNT = "/fapi/v3/account"  # the balance read (GET /fapi/v3/account)
RETRY_DELAYS_S = (0.01, 0.01)  # a read and two retries, as the adapter makes them


async def until(probe: Callable[[], object], what: str, max_s: float = 60.0) -> None:
    deadline = time.monotonic() + max_s
    while not probe():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.01)


async def test_one_failed_read_is_a_blip_and_an_outage_stops_the_loops(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    receiver = Receiver()
    settings = daemon_settings(
        tmp_path,
        executor=ExecutorSettings(heartbeat_interval_s=0.3),
        server=ServerSettings(enabled=False),
        notify=NotifySettings(webhook_url=SecretStr(f"{receiver.url}/hook")),
    )
    try:
        with capture_logs() as logs:

            def named(event: str) -> list[MutableMapping[str, Any]]:
                return [e for e in logs if e["event"] == event]

            def heartbeats() -> list[str]:
                return [str(e["health"]) for e in named("heartbeat")]

            async with AsyncExitStack() as stack:
                stopping = asyncio.Event()
                runtime = await open_runtime_on(
                    loopback, settings, stack, stopping, retry_delays_s=RETRY_DELAYS_S
                )
                ops = await open_operations(runtime, Metrics(), stack)
                loops = asyncio.create_task(run_loops(runtime, ops, stopping), name="loops")
                # The executor's first cycle (its clock stands still: it is also its last).
                await until(lambda: named("cycle_completed") and heartbeats(), "a cycle")
                before = len(heartbeats())
                for _ in range(1 + len(RETRY_DELAYS_S)):  # the next read and its retries
                    loopback.inject(Fault(ACCOUNT, status=503, body="Service Unavailable"))
                await until(lambda: "HEALTHY" in heartbeats()[before + 1 :], "a good read")
                blip = heartbeats()[before:]
                paged_by_the_blip = receiver.kinds()
                outage_from = len(heartbeats())
                loopback.outage(Outage(ACCOUNT, start_ms=0, end_ms=2**62))
                await until(loops.done, "the loops to stop on health CRITICAL")
                await loops
    finally:
        receiver.close()
    assert blip[0] == "DEGRADED"
    assert blip[-1] == "HEALTHY"
    assert "CRITICAL" not in blip
    assert "health_critical" not in paged_by_the_blip
    outage = heartbeats()[outage_from:]
    assert outage == ["DEGRADED", "CRITICAL", "CRITICAL", "CRITICAL"]
    changes = [(e["previous"], e["health"]) for e in named("health_changed")]
    assert changes == [
        ("HEALTHY", "DEGRADED"),
        ("DEGRADED", "HEALTHY"),
        ("HEALTHY", "DEGRADED"),
        ("DEGRADED", "CRITICAL"),
    ]
    assert named("health_changed")[0]["problems"] == [
        "exchange unreachable (CRITICAL if the next read fails or is slow too)"
    ]
    (shutdown,) = named("health_critical_shutdown")
    assert shutdown["problems"] == ["exchange unreachable: 4 failed or slow reads in a row"]
    assert receiver.kinds().count("health_critical") == 1
