"""REST only, a held symbol whose open orders could not be read on its own this tick
(keeper/reads.py): the tick plans nothing of that symbol — no stop placed or cancelled, the
position not booked from a list it did not get — and the next tick that reads them does.

Taking the unread symbol's orders as booked instead would book a stop that fired meanwhile as a
close by hand (MANUAL), its stop still "listed"; taking them as none would place a second stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, opened
from test_keeper_properties import PRICES, RULES, T0, Harness, keeper_on

from quantum_trader.domain import ExitReason, Order, OrderKind, OrderStatus
from quantum_trader.errors import RetryLater
from quantum_trader.storage.memory import InMemoryRepository


@dataclass
class SymbolReadsFail(ModelExchange):
    """The model exchange whose open orders of the `unreadable` symbols, read alone, fail (the
    read of every symbol's still answers)."""

    unreadable: set[str] = field(default_factory=set)

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        if symbol in self.unreadable:
            raise RetryLater(f"openAlgoOrders {symbol}: 503 (loopback model)")
        return await super().fetch_open_conditional_orders(symbol)


async def holding_btc() -> tuple[Harness, SymbolReadsFail]:
    exchange = SymbolReadsFail(RULES, dict(PRICES), T0)
    repository = InMemoryRepository()
    harness = Harness(exchange, repository, await keeper_on(exchange, repository, T0), T0)
    await opened(harness)
    return harness, exchange


def open_stops(exchange: ModelExchange) -> list[Order]:
    return [
        o
        for o in exchange.orders.values()
        if o.kind is OrderKind.STOP_MARKET and o.status is OrderStatus.OPEN
    ]


async def test_a_stop_that_fired_while_its_symbols_orders_were_unread_is_booked_as_a_stop() -> None:
    harness, exchange = await holding_btc()
    [stop] = open_stops(exchange)
    assert stop.trigger_price is not None
    exchange.unreadable.add(BTC)
    exchange.move(BTC, stop.trigger_price - 1)  # the stop fires: the position is gone
    sent = len(exchange.received)

    with capture_logs() as logs:
        assert await harness.tick()

    assert BTC in harness.keeper.positions  # not booked from a list never read
    assert len(exchange.received) == sent
    assert await harness.repository.closed_trades() == []
    [failed] = [e for e in logs if e["event"] == "open_orders_read_failed"]
    assert failed["symbols"] == [BTC]

    exchange.unreadable.clear()
    assert await harness.tick()

    assert harness.keeper.positions == {}
    [trade] = await harness.repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT
    assert trade.exit_price == stop.trigger_price


async def test_a_stop_cancelled_by_hand_while_unread_is_placed_once_when_read() -> None:
    harness, exchange = await holding_btc()
    [stop] = open_stops(exchange)
    await exchange.cancel_conditional_order(BTC, stop.client_order_id)
    exchange.unreadable.add(BTC)

    for _ in range(3):
        assert await harness.tick()
    assert open_stops(exchange) == []  # the tick did not act on BTC's orders

    exchange.unreadable.clear()
    assert await harness.tick()
    [again] = open_stops(exchange)
    assert again.client_order_id != stop.client_order_id
    assert again.quantity == harness.keeper.positions[BTC].quantity
    assert again.trigger_price == harness.keeper.positions[BTC].stop_price
