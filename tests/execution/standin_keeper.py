"""A keeper of an empty account on the loopback stand-in, reading its streams' mirror: the rig
the stand-in's keeper tests share (one place that starts, seeds and stops the streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from loopback import LoopbackBinance
from loopback.fixtures import advance, advance_until, connect, running_streams, settle
from loopback.state import START_MS
from test_exchange_answers import BTC, sized

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.domain import Side
from quantum_trader.execution.binance_streams import BinanceStreams
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

TICK_S = 5.0  # the monitor loop's interval
BTC_MARKET = "BTCUSDT"
ALGO_ORDER = "/fapi/v1/algoOrder"


@dataclass
class StandinKeeper:
    clock: ManualClock
    server: LoopbackBinance
    exchange: CcxtExchange
    streams: BinanceStreams
    repository: InMemoryRepository
    keeper: PositionKeeper

    def now(self) -> datetime:
        return self.clock.now()

    async def tick(self, times: int = 1) -> None:
        """Monitor steps: 5 s of simulated time, the stand-in and the streams settled, then
        the keeper's tick, and what it sent settled too."""
        for _ in range(times):
            await advance(self.server, TICK_S)
            await self.keeper.tick(self.now())
            await settle(self.server)

    async def restart(self) -> None:
        """A new keeper on the same database, as after a restart of the daemon."""
        self.keeper = await load_keeper(self.exchange, self.streams, self.repository, self.clock)
        await self.keeper.tick(self.now(), rest=True)
        await settle(self.server)


class EnteringKeeper(StandinKeeper):
    """The rig entering the sizer's BTC long at the stand-in's mark (at 100,000: 0.003 BTC,
    stop 97,000, target 106,000), and what the stand-in was sent and holds."""

    async def enter(self) -> None:
        plan = sized(BTC, Side.LONG, self.server.state.mark(BTC_MARKET))
        await self.keeper.enter(plan, self.clock.now())
        await settle(self.server)

    def sent(self, order_type: str) -> list[dict[str, str]]:
        """The conditional orders of `order_type` sent to the stand-in, in order."""
        return [
            p
            for m, path, p in self.server.requests
            if (m, path) == ("POST", ALGO_ORDER) and p.get("type") == order_type
        ]

    def open_orders(self) -> list[tuple[str, str, str, str]]:
        """The stand-in's working conditional orders: (type, side, quantity, trigger)."""
        return sorted(
            (o["orderType"], o["side"], o["quantity"], o["triggerPrice"])
            for o in self.server.state.algo_orders.values()
            if o["algoStatus"] == "NEW"
        )


Rig = TypeVar("Rig", bound=StandinKeeper)


async def load_keeper(
    exchange: CcxtExchange,
    streams: BinanceStreams,
    repository: InMemoryRepository,
    clock: ManualClock,
) -> PositionKeeper:
    """A keeper as the daemon's composition root makes one: reading the streams, and the
    clock (when an entry gets the keeper's lock: keeper/entry_fresh.py)."""
    rules = await exchange.load_markets()
    now = utc_from_ms(START_MS)
    ledger = await Ledger.load(repository, Decimal(10_000), now, PerformanceSettings())
    return await PositionKeeper.load(
        exchange, repository, ledger, rules, KeeperSettings(), MonitorSettings(),
        streams=streams, clock=clock.now,
    )  # fmt: skip


@asynccontextmanager
async def keeper_on_streams(
    kind: type[Rig], setup: Callable[[LoopbackBinance], None] = lambda server: None
) -> AsyncIterator[Rig]:
    """A keeper of an empty account reading the streams' mirror (usable, seeded) of a
    stand-in on a manual clock, `setup` applied to the stand-in first; after its first tick
    (REST)."""
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        setup(server)
        exchange = connect(server)
        try:
            await exchange.load_markets()
            async with running_streams(server, exchange) as streams:
                await advance_until(server, lambda: streams.health().usable, 30, "seeded")
                repository = InMemoryRepository()
                keeper = await load_keeper(exchange, streams, repository, clock)
                await keeper.tick(clock.now(), rest=True)
                yield kind(clock, server, exchange, streams, repository, keeper)
        finally:
            await exchange.close()
