"""Issue 10's case end to end (test_lost_entry.py): the entry's answer lost and reads down
right after it, the daemon in testnet mode against the stand-in."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from campaign import RELAXED_HEALTH, SYMBOLS, compare, run_for
from campaign_watch import RETRY_DELAYS_S, Watch, watch_entries
from loopback.faults import Fault, Outage
from loopback.fixtures import loopback_settings
from loopback.markets import DEFAULT_MARKETS
from loopback.server import LoopbackBinance
from loopback.sources import AlwaysBuy
from loopback.state import START_MS, LoopbackState

from quantum_trader.app_exchange import open_exchange_runtime
from quantum_trader.clock import SimulatedClock, ms_from_utc, utc_from_ms
from quantum_trader.config import MarketSettings, Settings
from quantum_trader.domain import OrderStatus
from quantum_trader.keeper.ids import Purpose, purpose_of
from quantum_trader.storage.sqlite import SqliteRepository


@dataclass
class LostEntry:
    entries: int
    held: Decimal
    stops: list[Decimal]
    database: dict[str, tuple[str, Decimal]]
    entry_status: OrderStatus | None


async def run_lost_entry_and_read_outage(
    data_dir: Path, *, streams: bool, down: tuple[str, ...] = ("/fapi/v1/order",)
) -> LostEntry:
    """Issue 10's case: the entry's answer is lost and the read routes `down` (by default the
    order lookup) fail for 20 s right after it. Slow enough (5×) that a 1 s request timeout is
    4 simulated seconds."""
    clock = SimulatedClock(utc_from_ms(START_MS + 3_600_000), 5.0)
    watch = Watch()
    state = LoopbackState(markets={m.market_id: m for m in DEFAULT_MARKETS[:1]})
    async with LoopbackBinance(state, clock=clock) as server:
        watch_entries(server, watch)
        settings = Settings(
            data_dir=data_dir,
            exchange=loopback_settings(1.0, server, use_streams=streams),
            market=MarketSettings(symbols=(SYMBOLS[0],), history_bars=300),
            server={"enabled": False},
            health=RELAXED_HEALTH,
            executor={"interval_s": 5.0},  # the executor tries again and again meanwhile
        )
        async with AsyncExitStack() as stack:
            stopping = asyncio.Event()
            runtime = await open_exchange_runtime(
                settings, stack, stopping, clock=clock, source=AlwaysBuy(), rate_limit=False,
                retry_delays_s=RETRY_DELAYS_S,
            )  # fmt: skip
            now_ms = ms_from_utc(clock.now())
            server.inject(Fault("/fapi/v1/order", method="POST", delay_s=3.0))  # answer lost
            for route in down:
                server.outage(Outage(route, now_ms, now_ms + 20_000, method="GET"))
            await run_for(runtime, 45, [])
        outcome = await compare(settings, server, watch)
        holding = server.state.holdings.get("BTCUSDT")
        stops = [
            Decimal(o["quantity"])
            for o in server.state.algo_orders.values()
            if o["algoStatus"] == "NEW" and o["orderType"] == "STOP_MARKET" and o["reduceOnly"]
        ]
        entry = next((c for c in server.state.orders if purpose_of(c) is Purpose.ENTRY), None)
        database = await SqliteRepository.open(data_dir / "quantum_trader.db", read_only=True)
        try:
            recorded = await database.get_order(entry) if entry else None
        finally:
            await database.close()
    return LostEntry(
        watch.entries,
        abs(holding.amount) if holding else Decimal(0),
        stops,
        outcome.database_positions,
        recorded.status if recorded else None,
    )
