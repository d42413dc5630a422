"""A position the keeper booked closed is not adopted again from a view older than the close,
and a closed position's trades are never taken for the close of a later one.

Found by the campaign with a person trading by hand (seed 30079, 2026-12-03): a person closed
an entry of ours 0.2 s after it filled. The tick read REST (the mirror was due its check),
booked the close at the person's trade and reseeded the mirror — which then re-applied the
entry's ACCOUNT_UPDATE, received after the tick's `now` but older than the REST read (the
close's own event was dropped). The next tick read that mirror, adopted the position again,
and the tick after booked its close again at the same trade: its fee counted twice and a
closed trade that never was. The trades the position was reduced by are remembered only
while it is held; the adopted one's window (5 min before the adoption) held the old close, so
the trades of the symbol's last position gone — a person's or our exit's — are left out too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_external_exits import by_hand, fee_paid, opened
from test_keeper_properties import KEEPER, PRICES, RULES, SYMBOLS, T0, TICK, Harness, sized
from test_keeper_stream_gap import UsableMirror

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    OrderKind,
    OrderRequest,
    OrderSide,
    Side,
    SnapshotSource,
)
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC = SYMBOLS[0]


class StaleMirror(UsableMirror):
    """A usable mirror showing the exchange's positions, but `stale` (by symbol) instead
    while set: an event older than the exchange's state applied after a reseed."""

    def __init__(self, exchange: ModelExchange) -> None:
        super().__init__()
        self._exchange = exchange
        self.stale: dict[str, ExchangePosition] = {}
        self.read = 0

    def snapshot(self, now: datetime) -> ExchangeSnapshot | None:
        self.read += 1
        held = {
            s: ExchangePosition(s, side, q, e, 3) for s, (side, q, e) in self._exchange.held.items()
        }
        return ExchangeSnapshot(now, SnapshotSource.STREAM, {**held, **self.stale}, ())


async def test_a_position_closed_by_hand_is_not_adopted_again_from_a_stale_mirror() -> None:
    exchange = ModelExchange(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    ledger = await Ledger.load(repository, Decimal(10_000), T0, PerformanceSettings())
    mirror = StaleMirror(exchange)
    keeper = await PositionKeeper.load(
        exchange, repository, ledger, RULES, KEEPER, MonitorSettings(), streams=mirror
    )
    now = T0
    await keeper.tick(now, rest=True)
    await keeper.enter(sized(BTC, Side.LONG, exchange.marks[BTC]), now)
    entered = keeper.positions[BTC]
    exchange.now = now + timedelta(milliseconds=200)
    exchange.move(BTC, Decimal(101))
    request_id = "web_closed_stale"
    await exchange.place_order(
        OrderRequest(request_id, BTC, OrderSide.SELL, OrderKind.MARKET, entered.quantity)
    )
    # the entry's event, re-applied after the reseed; the close's was dropped
    mirror.stale[BTC] = ExchangePosition(BTC, Side.LONG, entered.quantity, entered.entry_price, 3)
    with capture_logs() as logs:
        now += TICK
        exchange.now = now
        await keeper.tick(now, rest=True)  # the REST check: the close is booked
        assert BTC not in keeper.positions
        for _ in range(3):  # the mirror still shows the entry's position
            now += TICK
            exchange.now = now
            await keeper.tick(now)
        mirror.stale.clear()
        for _ in range(2):
            now += TICK
            exchange.now = now
            await keeper.tick(now)

    assert mirror.read >= 4
    assert [e for e in logs if e["event"] == "position_adopted"] == []
    [trade] = await repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.MANUAL, Decimal(101))
    paid = sum((f.fee_usdt for f in exchange.fills[request_id]), entered.fees_usdt)
    assert trade.fees_usdt == paid  # once
    assert keeper.positions == {}


async def test_a_closed_positions_trade_is_not_taken_for_the_close_of_one_adopted_after_it() -> (
    None
):
    """A person closed our long (booked at the trade), opened the same long by hand (the
    keeper adopts it), then closed it while Binance does not list that trade yet: the first
    close's trade lies in the adopted position's window and adds up; it must not be booked
    again (at the mark instead, the line saying why)."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(102))
    await by_hand(harness, "web_closed_first", OrderSide.SELL, quantity)
    await harness.tick()
    assert harness.keeper.positions == {}
    exchange.move(BTC, Decimal(101))
    await exchange.place_order(
        OrderRequest("web_opened_again", BTC, OrderSide.BUY, OrderKind.MARKET, quantity)
    )
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == quantity  # adopted
    exchange.move(BTC, Decimal(103))
    await by_hand(harness, "web_closed_second", OrderSide.SELL, quantity)
    lagging = exchange.fills.pop("web_closed_second")  # not listed yet
    exchange.move(BTC, Decimal("103.5"))
    with capture_logs() as logs:
        await harness.tick()
    exchange.fills["web_closed_second"] = lagging

    first, second = await harness.repository.closed_trades()
    assert first.exit_price == Decimal(102)
    assert second.exit_price == Decimal("103.5")  # the mark: its own trade not listed
    [note] = [e for e in logs if e["event"] == "position_closed_externally"]
    assert "do not add up" in str(note["detail"])
    assert first.fees_usdt > fee_paid(harness, "web_closed_first")  # with the entry's
    # Adopted with its own open's fee (replayed from flat: round_trip_settle.py); the first
    # close's fee not again.
    assert second.fees_usdt == fee_paid(harness, "web_opened_again")


async def test_our_exits_trade_is_not_taken_for_the_close_of_a_position_adopted_after_it() -> None:
    """The same with our exit's trade (booked from its answer) in the window: left out too."""
    harness = await Harness.start()
    exchange = harness.exchange
    quantity = await opened(harness)
    exchange.move(BTC, Decimal(103))
    await harness.keeper.close_all(ExitReason.MANUAL, harness.now)
    assert harness.keeper.positions == {}
    await exchange.place_order(
        OrderRequest("web_opened_after", BTC, OrderSide.BUY, OrderKind.MARKET, quantity)
    )
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == quantity  # adopted
    await by_hand(harness, "web_closed_after", OrderSide.SELL, quantity)
    exchange.fills.pop("web_closed_after")  # not listed yet
    exchange.move(BTC, Decimal("103.5"))
    await harness.tick()

    _, second = await harness.repository.closed_trades()
    assert (second.exit_price, second.fees_usdt) == (Decimal("103.5"), Decimal(0))  # the mark
