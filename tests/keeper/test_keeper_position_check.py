"""The cheap check of the streams' mirror: its positions alone read from REST every
`keeper.rest_position_check_s`, held or not, the full snapshot (positions and open
conditional orders) every `keeper.rest_check_interval_s`.

User-data events carry no sequence number, so a dropped one is seen only by reading REST; the
positions alone cost Binance weight 5 against 45 for the full snapshot. Counted in keeper ticks
of 5 s with the model exchange behind a mirror of it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, PRICES, RULES, T0, TICK, sized
from test_keeper_stream_gap import BTC, LaggingMirror, open_stops

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    Order,
    OrderSide,
    OrderStatus,
    Side,
    SnapshotSource,
)
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

TICKS_A_MINUTE = 12


@dataclass
class CountingExchange(ModelExchange):
    """The model exchange counting its REST reads of positions and of open conditional
    orders (of all symbols, weight 40 on Binance, or of one: weight 1)."""

    reads: Counter[str] = field(default_factory=Counter)

    async def fetch_positions(self) -> list[ExchangePosition]:
        self.reads["positions"] += 1
        return await super().fetch_positions()

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        self.reads["orders" if symbol is None else "orders of a symbol"] += 1
        return await super().fetch_open_conditional_orders(symbol)


class MirrorMissingPositions(LaggingMirror):
    """A faithful mirror of the model exchange, except that while `stale` is set it shows
    those positions instead (the events of a change were dropped); a reseed from REST ends
    that."""

    def __init__(self, exchange: ModelExchange) -> None:
        super().__init__(exchange, positions=True, listed=True, echoes=True)
        self.exchange = exchange
        self.stale: dict[str, ExchangePosition] | None = None

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        shown = super().snapshot(now)
        if shown is None:
            return shown
        listed = tuple(  # every open conditional order, as the streams' mirror lists them
            o
            for o in self.exchange.orders.values()
            if o.kind.is_conditional and o.status is OrderStatus.OPEN
        )
        return ExchangeSnapshot(
            now,
            SnapshotSource.STREAM,
            shown.positions if self.stale is None else dict(self.stale),
            listed,
            shown.orders,
        )

    def reseed(self, snapshot: ExchangeSnapshot) -> None:
        super().reseed(snapshot)
        self.stale = None


async def keeper_on_mirror() -> tuple[CountingExchange, MirrorMissingPositions, PositionKeeper]:
    exchange = CountingExchange(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    mirror = MirrorMissingPositions(exchange)
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=mirror
    )
    await keeper.tick(T0, rest=True)
    return exchange, mirror, keeper


async def ticks(exchange: ModelExchange, keeper: PositionKeeper, count: int) -> datetime:
    """`count` keeper ticks 5 s apart after the exchange's time; the time of the last."""
    now = exchange.now
    for _ in range(count):
        now += TICK
        exchange.now = now
        await keeper.tick(now)
    return now


def test_the_intervals_the_counts_below_assume() -> None:
    assert KEEPER.rest_check_interval_s == 60
    assert KEEPER.rest_position_check_s == 20
    assert TICK.total_seconds() * TICKS_A_MINUTE == KEEPER.rest_check_interval_s


async def test_positions_are_checked_every_20_s_while_one_is_held_the_full_snapshot_each_minute(
) -> None:  # fmt: skip
    """With the positions, the held symbol's open conditional orders (weight 1 on Binance:
    keeper/stop_check.py), not all symbols' (40)."""
    exchange, _, keeper = await keeper_on_mirror()
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), T0)
    exchange.reads.clear()
    checked = {"positions": 1, "orders of a symbol": 1}

    await ticks(exchange, keeper, 3)  # 5 s to 15 s: the mirror alone
    assert exchange.reads == {}
    await ticks(exchange, keeper, 1)  # 20 s: positions and BTC's orders, not all orders
    assert exchange.reads == checked
    await ticks(exchange, keeper, 3)
    assert exchange.reads == checked  # not every tick
    await ticks(exchange, keeper, TICKS_A_MINUTE - 7)  # to 60 s: 40 s, then in full
    assert exchange.reads == {"positions": 3, "orders of a symbol": 2, "orders": 1}
    await ticks(exchange, keeper, 3)  # the full check counts as one of positions: 80 s next
    assert exchange.reads == {"positions": 3, "orders of a symbol": 2, "orders": 1}
    await ticks(exchange, keeper, 1)
    assert exchange.reads == {"positions": 4, "orders of a symbol": 3, "orders": 1}
    assert BTC in keeper.positions


async def test_nothing_held_positions_are_checked_all_the_same() -> None:
    """Flat and idle, the cadence is the same: a position opened by hand is one a lost event
    can hide too."""
    exchange, _, keeper = await keeper_on_mirror()
    assert keeper.book.idle
    exchange.reads.clear()

    await ticks(exchange, keeper, 3)
    assert exchange.reads == {}
    await ticks(exchange, keeper, 1)  # 20 s
    assert exchange.reads == {"positions": 1}
    await ticks(exchange, keeper, TICKS_A_MINUTE - 4)  # 40 s, then in full at 60 s
    assert exchange.reads == {"positions": 3, "orders": 1}


async def test_a_position_opened_by_hand_while_flat_the_mirror_missed_is_adopted_and_covered(
) -> None:  # fmt: skip
    """Nothing held, a person buys; the mirror still shows nothing. The position check
    finds it within 4 ticks (was: the full check, 12) and the keeper adopts it with a stop."""
    exchange, mirror, keeper = await keeper_on_mirror()
    await ticks(exchange, keeper, 4)  # 20 s: the position check has just run
    mirror.stale = {}
    quantity = sized(BTC, Side.LONG, exchange.marks[BTC]).quantity
    exchange.by_hand(BTC, OrderSide.BUY, quantity)
    exchange.reads.clear()

    with capture_logs() as logs:
        await ticks(exchange, keeper, 3)
        assert BTC not in keeper.positions  # the mirror alone: nothing to see
        await ticks(exchange, keeper, 1)  # 40 s: the position check

    # The check's read, and the positions read again after the account's trades (the
    # adoption's replay from flat read them: keeper/reads.py `positions_moved`).
    assert exchange.reads == {"positions": 2, "orders": 1}
    assert [e for e in logs if e["event"] == "stream_mirror_differs"]
    assert keeper.positions[BTC].side is Side.LONG
    [stop] = open_stops(exchange)
    assert (stop.side, stop.quantity) == (OrderSide.SELL, quantity)


async def test_a_flip_the_mirror_missed_is_found_by_the_position_check_and_covered() -> None:
    """A person sells twice the long; the mirror still shows the long. The position check
    finds the difference: REST is read in full (the mirror's orders are not taken from a
    read of positions alone), the mirror reseeded, and the short gets a stop of ours in that
    same tick — within 4 ticks of the flip, not at the next full check."""
    exchange, mirror, keeper = await keeper_on_mirror()
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), T0)
    await ticks(exchange, keeper, 4)  # 20 s: the position check has just run
    mirror.stale = {p.symbol: p for p in await exchange.fetch_positions()}
    _, quantity, _ = exchange.held[BTC]
    exchange.by_hand(BTC, OrderSide.SELL, 2 * quantity)
    exchange.reads.clear()

    with capture_logs() as logs:
        await ticks(exchange, keeper, 3)
        assert exchange.reads == {}  # the mirror alone: the long still looks covered
        await ticks(exchange, keeper, 1)  # 40 s: the position check

    # The check's read, and the positions read again after the flip's trades were read.
    assert exchange.reads == {"positions": 2, "orders": 1}
    [differs] = [e for e in logs if e["event"] == "stream_mirror_differs"]
    assert "positions stream" in differs["detail"]
    assert mirror.reseeded[-1].open_conditional_orders  # reseeded from the full read
    assert exchange.held[BTC][:2] == (Side.SHORT, quantity)
    assert keeper.positions[BTC].side is Side.SHORT
    [stop] = open_stops(exchange)
    assert (stop.side, stop.quantity) == (OrderSide.BUY, quantity)


async def test_a_position_check_that_fails_leaves_the_mirror_and_is_made_at_the_next_tick() -> None:
    exchange, _, keeper = await keeper_on_mirror()
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), T0)
    await ticks(exchange, keeper, 3)
    exchange.reads.clear()
    exchange.reads_down_until = exchange.now + 2 * TICK  # only the 20 s tick's read fails

    with capture_logs() as logs:
        await ticks(exchange, keeper, 1)
    assert "position_check_failed" in [e["event"] for e in logs if e["log_level"] == "warning"]
    assert BTC in keeper.positions  # the tick went on from the mirror
    assert exchange.reads == {"positions": 1}

    await ticks(exchange, keeper, 1)  # made again at once, and then not before 45 s
    assert exchange.reads == {"positions": 2, "orders of a symbol": 1}
    await ticks(exchange, keeper, 3)
    assert exchange.reads == {"positions": 2, "orders of a symbol": 1}
