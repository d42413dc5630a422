"""A user-data stream that missed an event must not close a position the exchange holds, nor
leave one without its stop.

Binance's streams can drop an event (a reconnect gap, a dropped frame): the mirror then lacks a
position the account holds. Booking it closed would free the symbol for a second entry while
the first is still on the exchange, so a position gone "with no order of ours to explain it" is
only booked from a REST snapshot.

Until the stream echoes an order booked from its answer (an entry), the keeper does not
reconcile that symbol from the mirror (up to `stream_echo_timeout_s`). A position booked from
that answer whose stop failed is still protected by the next tick; one whose stop went through
is not protected twice because the mirror does not list that stop yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from model_exchange import ModelExchange
from test_keeper_properties import KEEPER, PRICES, RULES, SYMBOLS, T0, TICK, sized

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    Order,
    OrderKind,
    OrderSide,
    OrderStatus,
    Side,
    SnapshotSource,
    StreamHealth,
    StreamMoves,
)
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]


class UsableMirror:
    """The streams' side a keeper reads, connected and usable, never updating by itself and
    without mark prices; subclasses say what it holds (`snapshot`)."""

    def __init__(self) -> None:
        self._updated = asyncio.Event()
        self.reseeded: list[ExchangeSnapshot] = []
        self.looked_up: list[dict[str, Order | None]] = []

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    @property
    def updated(self) -> asyncio.Event:
        return self._updated

    def health(self) -> StreamHealth:
        return StreamHealth(connected=True, usable=True)

    def mark_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal] | None:
        return None

    def now(self) -> datetime:
        """It receives no events, so its reseeds compare no receipt with a read's stamp: its
        clock stands at the tests' start."""
        return T0

    def moved(self) -> StreamMoves:
        return StreamMoves()

    def reseed(self, snapshot: ExchangeSnapshot) -> None:
        self.reseeded.append(snapshot)

    def apply_lookups(self, found: Mapping[str, Order | None]) -> None:
        self.looked_up.append(dict(found))


class MirrorThatMissedTheEntry(UsableMirror):
    """A usable mirror holding no position and no order: every event since seeding was lost."""

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        return ExchangeSnapshot(now, SnapshotSource.STREAM, {}, ())


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


class LaggingMirror(UsableMirror):
    """A usable mirror behind the exchange: `positions`, the positions it holds (else none);
    `listed`, the conditional orders it lists (else none); `echoes`, how our orders ended
    (else none of their events arrived, as after a reseed that lost them; "stops": only how
    our stops ended)."""

    def __init__(
        self, exchange: ModelExchange, *, positions: bool, listed: bool, echoes: bool | str
    ) -> None:
        super().__init__()
        self._exchange = exchange
        self._shows = (positions, listed, echoes)
        self.read = 0

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        self.read += 1
        positions, listed, echoes = self._shows
        x = self._exchange
        held = {s: ExchangePosition(s, side, q, e, 3) for s, (side, q, e) in x.held.items()}
        ended = {
            c: o
            for c, o in x.orders.items()
            if o.status.is_final and (echoes != "stops" or o.kind is OrderKind.STOP_MARKET)
        }
        return ExchangeSnapshot(
            now,
            SnapshotSource.STREAM,
            held if positions else {},
            tuple(open_stops(x)) if listed else (),
            ended if echoes else {},
        )


def open_stops(exchange: ModelExchange) -> list[Order]:
    return [
        o
        for o in exchange.orders.values()
        if o.kind is OrderKind.STOP_MARKET and o.status is OrderStatus.OPEN and o.reduce_only
    ]


async def entered_with_lagging_mirror(
    *,
    stop_lost: bool,
    positions: bool = True,
    listed: bool = True,
    echoes: bool | str = False,
    stop_cancelled: bool = False,
    mark: Decimal | None = None,
) -> tuple[ModelExchange, PositionKeeper, datetime]:
    """An entry that filled (booked from its answer), its stop request lost before it arrived
    when `stop_lost` (the stop stays unsettled), or the stop cancelled on the exchange when
    `stop_cancelled` (by hand, or by Binance); the mark moved to `mark`, if given (a stop it
    crosses fills); then one 5 s tick on a lagging mirror."""
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    exchange.drop_next_stop = stop_lost
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    mirror = LaggingMirror(exchange, positions=positions, listed=listed, echoes=echoes)
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=mirror
    )
    await keeper.tick(T0, rest=True)
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), T0)
    assert len(open_stops(exchange)) == (0 if stop_lost else 1)
    if stop_cancelled:
        [stop] = open_stops(exchange)
        await exchange.cancel_conditional_order(BTC, stop.client_order_id)
    if mark is not None:
        exchange.move(BTC, mark)
    # within stream_echo_timeout_s and rest_check_interval_s: the tick reads the mirror
    assert TICK.total_seconds() < min(KEEPER.stream_echo_timeout_s, KEEPER.rest_check_interval_s)
    now = T0 + TICK
    exchange.now = now
    await keeper.tick(now)
    assert mirror.read >= 1
    return exchange, keeper, now


def assert_stop_covers_the_position(exchange: ModelExchange, keeper: PositionKeeper) -> None:
    [stop] = open_stops(exchange)
    side, quantity, _ = exchange.held[BTC]
    assert stop.side is side.exit_order_side
    assert stop.quantity == quantity
    assert stop.trigger_price == keeper.positions[BTC].stop_price


async def test_a_position_whose_stop_failed_is_protected_by_the_next_tick_before_the_echo() -> None:
    exchange, keeper, _ = await entered_with_lagging_mirror(stop_lost=True)

    assert_stop_covers_the_position(exchange, keeper)


async def test_a_stop_the_lagging_mirror_does_not_list_yet_is_not_placed_twice() -> None:
    exchange, keeper, now = await entered_with_lagging_mirror(stop_lost=False, listed=False)
    now += TICK / 5  # a tick woken early, still within the echo timeout
    exchange.now = now
    await keeper.tick(now)

    assert len(open_stops(exchange)) == 1
    assert keeper.positions[BTC].stop_order_id == open_stops(exchange)[0].client_order_id


async def test_a_position_the_mirror_lost_while_its_stop_is_unsettled_is_protected() -> None:
    """The mirror echoed the entry but missed the position (a dropped ACCOUNT_UPDATE) while
    the stop's outcome is unknown: the reduction waits for that stop to settle (it might have
    triggered), and the position the exchange still holds is covered meanwhile."""
    exchange, keeper, _ = await entered_with_lagging_mirror(
        stop_lost=True, positions=False, echoes=True
    )

    assert BTC in keeper.positions  # only REST may say it is gone
    assert_stop_covers_the_position(exchange, keeper)


async def test_a_stop_the_stream_reports_ended_before_it_echoes_the_entry_is_replaced() -> None:
    """The stream reports the position's own stop cancelled (by hand, or by Binance) before it
    echoes the entry: that stop no longer counts, and the next tick places another."""
    exchange, keeper, _ = await entered_with_lagging_mirror(
        stop_lost=False, listed=False, echoes="stops", stop_cancelled=True
    )

    assert_stop_covers_the_position(exchange, keeper)


async def test_a_stop_filled_before_the_entry_is_echoed_gets_one_clear_of_the_mark() -> None:
    """The mark went through the position's stop, which filled; the stream reports that fill
    before it echoes the entry. The symbol is not reconciled from the stream yet, so the
    position stays booked and the filled stop no longer counts as its cover: a reduce-only stop
    for the quantity booked goes on, clear of the mark (at the managed stop, which the mark has
    passed, Binance would refuse it: -2021). It can close nothing more than the position; the
    REST read once the echo is overdue books the stop's fill and cancels it."""
    exchange, keeper, now = await entered_with_lagging_mirror(
        stop_lost=False, listed=False, echoes="stops", mark=Decimal("96.9")
    )
    assert BTC not in exchange.held  # the stop closed it
    booked = keeper.positions[BTC]
    [fresh] = open_stops(exchange)
    assert (fresh.side, fresh.quantity) == (OrderSide.SELL, booked.quantity)
    assert fresh.reduce_only
    assert KEEPER.refused_exit_stop_gap_pct == 0.002
    assert fresh.trigger_price == Decimal("96.70")  # 0.2 % below the mark, down to the tick
    assert booked.stop_price > Decimal("96.9")  # where Binance would have refused it

    now += timedelta(seconds=KEEPER.stream_echo_timeout_s)  # the echo is overdue: REST
    exchange.now = now
    await keeper.tick(now)
    assert BTC not in keeper.positions
    assert open_stops(exchange) == []
