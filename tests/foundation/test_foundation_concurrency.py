"""The executor and the monitor run as concurrent tasks in the daemon (the backtest runs them
one after the other). A monitor tick that arrives while an entry's protective stop is still on
its way must not see a half-opened position: no second stop, no exit it cannot explain."""

from __future__ import annotations

import asyncio
from pathlib import Path

from foundation_builders import build_rig
from structlog.testing import capture_logs

from quantum_trader.domain import OrderKind, OrderRequest


async def test_a_monitor_tick_during_an_entry_does_not_place_a_second_stop(
    tmp_path: Path,
) -> None:
    rig = await build_rig(tmp_path)
    ticks: list[asyncio.Task[None]] = []

    async def monitor_runs_meanwhile(request: OrderRequest) -> None:
        if request.kind is OrderKind.STOP_MARKET and request.client_order_id.startswith("qt-s-"):
            ticks.append(asyncio.create_task(rig.core.keeper.tick(rig.clock.now())))
            for _ in range(20):  # let it run as far as it can
                await asyncio.sleep(0)

    rig.exchange.while_in_flight = monitor_runs_meanwhile
    with capture_logs() as logs:
        for _ in range(400):
            rig.clock.advance(300)
            await rig.core.executor.run_cycle(rig.clock.now())
            await asyncio.gather(*ticks)
            if len(rig.core.keeper.positions) >= 2:
                break
    assert ticks, "no entry was protected"
    missing = [e for e in logs if e["event"] == "protective_stop_placed" and e["why"] == "MISSING"]
    assert missing == []
    for position in rig.core.keeper.positions.values():
        stops = [
            o.client_order_id
            for o in await rig.exchange.fetch_open_conditional_orders(position.symbol)
            if o.kind is OrderKind.STOP_MARKET
        ]
        assert stops == [position.stop_order_id]
