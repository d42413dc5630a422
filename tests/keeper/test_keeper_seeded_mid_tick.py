"""A round trip by hand made before the user-data stream was first seeded, on a symbol the
keeper read flat, is booked even where the seed completes while a tick awaits the exchange.

Found by the hand-trading campaign (seed 34423, 2026-12-06, night): a person bought and sold
0.703 ETH 18 ms apart in the daemon's first half minute, before the stream connected. The tick
that read what the stream says moved did so before the seed (nothing: never seeded), and
asked whether the stream was usable at its end, after the seed: usable, so the flat read
moved on to that tick, past the round trip, which was never booked (nor its fees). The tick
now takes both from the same instant, its start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from model_exchange import ModelExchange
from test_keeper_properties import KEEPER, PRICES, RULES, SYMBOLS, T0, sized
from test_keeper_stream_gap import UsableMirror

from quantum_trader.domain import (
    ExchangeSnapshot,
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Side,
    StreamHealth,
    StreamMoves,
)
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.record import replace
from quantum_trader.storage.memory import InMemoryRepository

BTC, ETH = SYMBOLS[0], SYMBOLS[1]
TICK = timedelta(seconds=5)
QUANTITY = Decimal("0.7")


class SeededLater(UsableMirror):
    """Streams whose first seed has not completed (the daemon's first seconds): not usable,
    nothing moved, until `seeded_at`; the keeper reads REST throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.seeded_at: datetime | None = None

    def health(self) -> StreamHealth:
        return StreamHealth(connected=True, usable=self.seeded_at is not None)

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        return None

    def moved(self) -> StreamMoves:
        return StreamMoves(lost_before=self.seeded_at)


class SeedsOnAnOrder(ModelExchange):
    """The model exchange on which the streams' seed completes while the keeper sends an
    order (any await of a tick would do), once armed."""

    streams: SeededLater | None = None

    async def place_order(self, request: OrderRequest) -> Order:
        if self.streams is not None:
            self.streams.seeded_at, self.streams = self.now, None
        return await super().place_order(request)


@dataclass
class Rig:
    """A keeper on `exchange` beside streams not seeded yet, its ticks 5 s apart."""

    exchange: SeedsOnAnOrder
    streams: SeededLater
    repository: InMemoryRepository
    keeper: PositionKeeper

    @classmethod
    async def start(cls) -> Rig:
        exchange, streams, repository = (
            SeedsOnAnOrder(RULES, dict(PRICES), T0),
            SeededLater(),
            InMemoryRepository(),
        )
        ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
        keeper = await PositionKeeper.load(
            exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=streams
        )
        return cls(exchange, streams, repository, keeper)

    @property
    def now(self) -> datetime:
        return self.exchange.now

    def advance(self, by: timedelta) -> None:
        self.exchange.now = self.now + by

    async def tick(self) -> None:
        self.advance(TICK)
        await self.keeper.tick(self.now)


async def test_a_round_trip_before_the_first_seed_is_booked_when_the_seed_lands_mid_tick() -> None:
    rig = await Rig.start()
    exchange, streams, keeper = rig.exchange, rig.streams, rig.keeper
    await rig.tick()  # ETH and BTC read flat, over REST: the stream is not seeded
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), rig.now)
    await rig.tick()
    [stop] = [c for c, o in exchange.orders.items() if is_ours(c) and o.status is OrderStatus.OPEN
              and o.kind is OrderKind.STOP_MARKET]  # fmt: skip
    for name, side in (("web_open_1", OrderSide.BUY), ("web_close_1", OrderSide.SELL)):
        await exchange.place_order(OrderRequest(name, ETH, side, OrderKind.MARKET, QUANTITY))
        exchange.move(ETH, exchange.marks[ETH] * Decimal("1.01"))  # a person's round trip
    exchange.orders[stop] = replace(exchange.orders[stop], status=OrderStatus.CANCELED)  # by hand
    exchange.streams = streams  # seeded while this tick places BTC's stop again
    await rig.tick()
    assert streams.health().usable
    await rig.tick()  # the look after the seed reads what was done before it

    [round_trip] = await rig.repository.closed_trades()
    assert (round_trip.symbol, round_trip.exit_reason) == (ETH, ExitReason.MANUAL)
    assert round_trip.quantity == QUANTITY


async def test_a_round_trip_before_our_entry_is_booked_when_a_person_closes_it_first() -> None:
    """The restart campaign, seed 41829: a person's round trip on ETH while the stream was
    down (the looks kept ETH's flat read), our entry there right after the seed, then our
    position closed by hand before any tick read the trades before the entry. The close's
    read began at the last look before the entry, after the round trip, and the read kept
    for the trades before the entry was dropped with the position: the round trip and its
    fees never booked. The close's read now reaches back to that kept read."""
    rig = await Rig.start()
    exchange, streams, keeper = rig.exchange, rig.streams, rig.keeper
    await rig.tick()  # ETH read flat over REST: the stream is not seeded
    for name, side in (("web_open_1", OrderSide.SELL), ("web_close_1", OrderSide.BUY)):
        await exchange.place_order(OrderRequest(name, ETH, side, OrderKind.MARKET, QUANTITY))
    await rig.tick()  # ETH flat again; the stream still unusable: nothing read
    streams.seeded_at = rig.now + timedelta(seconds=1)
    rig.advance(timedelta(seconds=2))
    await keeper.enter(sized(ETH, Side.LONG, exchange.marks[ETH]), rig.now)
    held = keeper.positions[ETH].quantity
    close = OrderRequest("web_close_2", ETH, OrderSide.SELL, OrderKind.MARKET, held)
    await exchange.place_order(close)  # our long closed by hand before the next look
    for _ in range(3):
        await rig.tick()

    trades = sorted(await rig.repository.closed_trades(), key=lambda t: t.opened_at)
    assert [(t.symbol, t.side, t.quantity, t.exit_reason) for t in trades] == [
        (ETH, Side.SHORT, QUANTITY, ExitReason.MANUAL),  # the person's round trip
        (ETH, Side.LONG, held, ExitReason.MANUAL),  # ours, closed by hand
    ]
