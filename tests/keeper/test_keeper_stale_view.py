"""A position the keeper booked closed is not adopted again from a view older than the close,
and a closed position's trades are never taken for the close of a later one.

Found by the campaign with a person trading by hand (seed 30079, 2026-12-03): a person closed
an entry of ours 0.2 s after it filled. The tick read REST (the mirror was due its check),
booked the close at the person's trade and reseeded the mirror — which then re-applied the
entry's ACCOUNT_UPDATE, received after the tick's `now` but older than the REST read (the
close's own event was dropped). The next tick read that mirror, adopted the position again,
and the tick after booked its close again at the same trade: its fee counted twice and a
closed trade that never was. The trades the position was reduced by are remembered only
while it is held; the adopted one's window (5 min before the adoption) held the old close.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_properties import KEEPER, PRICES, RULES, SYMBOLS, T0, TICK, sized
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
