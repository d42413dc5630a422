"""An entry sent where a person opened a position by hand since the keeper's last read: Binance
nets the two (one-way mode), so our entry trades against the person's position. In the
hand-trading campaign's seed 32035 (2026-12-04) a tick stalled a minute on a lost answer,
holding the keeper's lock; the cycle's entry waited for it and was then checked against
books a minute old. It is now refused when a fresh look shows the position: the streams'
mirror (confirmed over REST), or, without it, the positions read over REST when the last read
is older than two ticks by the daemon's clock (keeper/entry_fresh.py). The race itself is not
closed: within two ticks of a read, without streams, the entry is sent as before
(test_keeper_entry_met_by_hand.py books that case)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from structlog.testing import capture_logs
from test_keeper_fees_unread import sent
from test_keeper_position_check import CountingExchange, MirrorMissingPositions
from test_keeper_properties import KEEPER, PRICES, RULES, T0, TICK, sized
from test_keeper_stream_gap import BTC, LaggingMirror

from quantum_trader.domain import (
    ExchangePosition,
    OrderKind,
    OrderRequest,
    OrderSide,
    ReasonCode,
    Side,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import ExchangeStreams
from quantum_trader.storage.memory import InMemoryRepository


class Wall:
    """The daemon's clock, read by the keeper when an entry gets its lock."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


async def keeper_with(
    exchange: CountingExchange, wall: Wall, streams: ExchangeStreams | None = None
) -> PositionKeeper:
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    return await PositionKeeper.load(
        exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=streams,
        clock=wall.now,
    )  # fmt: skip


async def read_flat_then_opened_by_hand() -> tuple[CountingExchange, Wall, datetime]:
    """A tick reads BTC flat at T0 + 5 s; a second later a person sells 4 at 100 by hand.
    The exchange, the wall clock (at the tick) and the cycle's time (the person's second)."""
    exchange = CountingExchange(RULES, dict(PRICES), T0)
    wall = Wall()
    return exchange, wall, T0 + TICK + timedelta(seconds=1)


async def person_sells(exchange: CountingExchange, at: datetime) -> None:
    exchange.now = at
    await exchange.place_order(
        OrderRequest("web_opened_1", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal(4))
    )


async def test_an_entry_that_waited_a_minute_for_the_lock_looks_again_and_is_refused() -> None:
    """The seed's case: the last read is a minute old by the clock when the entry gets the
    lock: the positions are read again, the person's short seen, the entry refused (no order
    sent), one line said, the keeper woken; its next tick adopts the short."""
    exchange, wall, cycle_now = await read_flat_then_opened_by_hand()
    keeper = await keeper_with(exchange, wall)
    exchange.now = wall.at = T0 + TICK
    await keeper.tick(wall.at)
    await person_sells(exchange, cycle_now)
    wall.at = T0 + TICK + timedelta(seconds=60)  # the lock was held by a stalled tick
    reads = exchange.reads["positions"]

    with capture_logs() as logs, pytest.raises(OrderRejected) as refused:
        await keeper.enter(sized(BTC, Side.LONG, Decimal(100)), cycle_now)

    assert refused.value.reason is ReasonCode.POSITION_ALREADY_OPEN
    assert "the exchange holds SHORT 4" in str(refused.value)
    assert sent(exchange, Purpose.ENTRY) == []
    assert exchange.reads["positions"] == reads + 1
    [said] = [e for e in logs if e["event"] == "entry_refused_position_outside"]
    assert (said["symbol"], said["side"], said["quantity"]) == (BTC, "SHORT", "4")
    assert keeper.wake.is_set()

    exchange.now = wall.at
    await keeper.tick(wall.at)
    position = keeper.positions[BTC]
    assert (position.side, position.quantity, position.entry_price) == (
        Side.SHORT,
        Decimal(4),
        Decimal(100),
    )


async def test_within_two_ticks_of_the_last_read_no_positions_are_read_for_an_entry() -> None:
    """REST only, the last read 2 s old: no read of the positions is spent on the entry
    (weight 5 each), which is sent and meets the person's short as before."""
    exchange, wall, cycle_now = await read_flat_then_opened_by_hand()
    keeper = await keeper_with(exchange, wall)
    exchange.now = wall.at = T0 + TICK
    await keeper.tick(wall.at)
    await person_sells(exchange, cycle_now)
    wall.at = cycle_now + timedelta(seconds=1)
    reads = exchange.reads["positions"]

    await keeper.enter(sized(BTC, Side.LONG, Decimal(100)), cycle_now)

    assert len(sent(exchange, Purpose.ENTRY)) == 1
    assert exchange.reads["positions"] == reads


async def test_a_position_the_streams_mirror_shows_is_confirmed_over_rest_and_refused() -> None:
    """With streams, the last read fresh: the mirror shows the person's short at once; REST
    confirms it; the entry is refused."""
    exchange, wall, cycle_now = await read_flat_then_opened_by_hand()
    mirror = LaggingMirror(exchange, positions=True, listed=True, echoes=True)
    keeper = await keeper_with(exchange, wall, mirror)
    exchange.now = wall.at = T0 + TICK
    await keeper.tick(wall.at)
    await person_sells(exchange, cycle_now)
    wall.at = cycle_now
    reads = exchange.reads["positions"]

    with pytest.raises(OrderRejected) as refused:
        await keeper.enter(sized(BTC, Side.LONG, Decimal(100)), cycle_now)

    assert refused.value.reason is ReasonCode.POSITION_ALREADY_OPEN
    assert sent(exchange, Purpose.ENTRY) == []
    assert exchange.reads["positions"] == reads + 1


async def test_a_position_only_a_lagging_mirror_shows_does_not_refuse_the_entry() -> None:
    """The mirror still shows a long the exchange no longer holds (its close's event not in
    yet): REST shows BTC flat, and the entry is sent."""
    exchange, wall, _ = await read_flat_then_opened_by_hand()
    mirror = MirrorMissingPositions(exchange)
    keeper = await keeper_with(exchange, wall, mirror)
    exchange.now = wall.at = T0 + TICK
    await keeper.tick(wall.at)
    mirror.stale = {BTC: ExchangePosition(BTC, Side.LONG, Decimal(3), Decimal(100), 3)}
    reads = exchange.reads["positions"]

    await keeper.enter(sized(BTC, Side.LONG, Decimal(100)), wall.at)

    assert len(sent(exchange, Purpose.ENTRY)) == 1
    assert exchange.reads["positions"] == reads + 1
