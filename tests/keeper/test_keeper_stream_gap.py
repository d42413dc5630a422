"""A user-data stream that missed an event must not close a position the exchange holds.

Binance's streams can drop an event (a reconnect gap, a dropped frame): the mirror then lacks a
position the account holds. Booking it closed would free the symbol for a second entry while
the first is still on the exchange, so a position gone "with no order of ours to explain it" is
only booked from a REST snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from model_exchange import ModelExchange
from test_keeper_properties import KEEPER, PRICES, RULES, SYMBOLS, T0, TICK, sized

from quantum_trader.domain import ExchangeSnapshot, Side, SnapshotSource, StreamHealth
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]


class MirrorThatMissedTheEntry:
    """A usable mirror holding no position and no order: every event since seeding was lost."""

    def __init__(self) -> None:
        self._updated = asyncio.Event()
        self.reseeded: list[ExchangeSnapshot] = []

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    @property
    def updated(self) -> asyncio.Event:
        return self._updated

    def health(self) -> StreamHealth:
        return StreamHealth(connected=True, usable=True)

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        return ExchangeSnapshot(now, SnapshotSource.STREAM, {}, ())

    def mark_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal] | None:
        return None

    def reseed(self, snapshot: ExchangeSnapshot) -> None:
        self.reseeded.append(snapshot)


async def test_a_position_missing_from_the_stream_mirror_stays_booked_and_blocks_entries() -> None:
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    mirror = MirrorThatMissedTheEntry()
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=mirror
    )
    now = T0
    await keeper.tick(now, rest=True)
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    await keeper.enter(order, now)
    assert BTC in keeper.positions

    for _ in range(3):  # ticks within the REST check interval read the mirror
        now += TICK
        exchange.now = now
        await keeper.tick(now)

    assert BTC in keeper.positions  # the exchange holds it: not booked closed
    assert await repository.closed_trades() == []
    assert mirror.reseeded  # the REST snapshot that disagreed replaced the mirror
    assert exchange.held[BTC][:2] == (Side.LONG, order.quantity)
