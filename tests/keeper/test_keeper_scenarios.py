"""Named cases from issue 10 on the model exchange, with the keeper ticking every 5 s.

The same cases run end to end against the loopback Binance stand-in in tests/campaign; here
they run in milliseconds and show each step.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

import pytest
from model_exchange import ModelExchange
from structlog.testing import capture_logs
from test_keeper_properties import SYMBOLS, TICK, Harness, sized

from quantum_trader.domain import (
    ExitReason,
    OrderKind,
    OrderSide,
    OrderStatus,
    ReasonCode,
    Side,
    SizedOrder,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.keeper.ids import Purpose, is_ours, purpose_of
from quantum_trader.keeper.settings import KeeperSettings

BTC = SYMBOLS[0]


def ours(exchange: ModelExchange, purpose: Purpose) -> list[str]:
    return [
        r.client_order_id for r in exchange.received if purpose_of(r.client_order_id) is purpose
    ]


def open_stops(exchange: ModelExchange, symbol: str) -> list[tuple[Decimal, Decimal | None]]:
    return [
        (o.quantity, o.trigger_price)
        for o in exchange.orders.values()
        if o.symbol == symbol
        and o.kind is OrderKind.STOP_MARKET
        and o.status is OrderStatus.OPEN
        and is_ours(o.client_order_id)
    ]


async def test_a_lost_entry_answer_then_a_20_s_read_outage_enters_once_and_stays_protected() -> (
    None
):
    harness = await Harness.start()
    exchange = harness.exchange
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.lose_next = True  # the entry executes; its answer is lost
    exchange.reads_down_until = harness.now + timedelta(seconds=20)

    result = await harness.keeper.enter(order, harness.now)

    assert result.unknown
    assert BTC in harness.keeper.view().blocked
    assert open_stops(exchange, BTC) == [(order.quantity, order.stop_price)]  # placed blind
    for _ in range(8):  # the executor keeps trying every tick; the monitor keeps ticking
        with pytest.raises(OrderRejected) as refused:
            await harness.keeper.enter(order, harness.now)
        expected = (ReasonCode.ORDER_UNSETTLED, ReasonCode.POSITION_ALREADY_OPEN)
        assert refused.value.reason in expected
        await harness.tick()
    assert len(ours(exchange, Purpose.ENTRY)) == 1
    assert exchange.held[BTC][:2] == (Side.LONG, order.quantity)
    position = harness.keeper.positions[BTC]
    assert (position.quantity, position.stop_price) == (order.quantity, order.stop_price)
    assert open_stops(exchange, BTC) == [(order.quantity, order.stop_price)]
    assert harness.keeper.view().blocked == {}
    [entry] = [o for o in await harness.repository.orders() if "-e-" in o.client_order_id]
    assert entry.status is OrderStatus.FILLED
    assert entry.filled_quantity == order.quantity


async def test_a_market_entry_expired_with_half_executed_is_booked_and_protected() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    order = sized(BTC, Side.SHORT, exchange.marks[BTC])
    exchange.half_next = True

    result = await harness.keeper.enter(order, harness.now)

    half = (order.quantity / 2).quantize(Decimal("0.001"), rounding="ROUND_DOWN")
    assert result.position is not None
    assert result.position.quantity == half
    assert open_stops(exchange, BTC) == [(half, order.stop_price)]
    await harness.tick()
    assert harness.keeper.positions[BTC].quantity == exchange.held[BTC][1] == half
    [entry] = [o for o in await harness.repository.orders() if "-e-" in o.client_order_id]
    assert (entry.status, entry.filled_quantity) == (OrderStatus.EXPIRED, half)


async def entered_long(harness: Harness) -> tuple[SizedOrder, str]:
    """Enter BTC long at the mark; the order and the id of the stop protecting it."""
    order = sized(BTC, Side.LONG, harness.exchange.marks[BTC])
    await harness.keeper.enter(order, harness.now)
    stop_id = harness.keeper.positions[BTC].stop_order_id
    assert stop_id is not None
    return order, stop_id


async def test_a_stop_placement_whose_answer_is_lost_is_found_working_not_duplicated() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    _, stop_id = await entered_long(harness)
    await exchange.cancel_conditional_order(BTC, stop_id)  # a person cancels it
    exchange.lose_next = True  # the replacement is placed but its answer is lost
    await harness.tick()
    await harness.tick()
    assert len(open_stops(exchange, BTC)) == 1
    assert harness.keeper.positions[BTC].stop_order_id in exchange.orders


async def test_a_protective_stop_cancelled_on_the_exchange_is_said_and_replaced_at_once() -> None:
    """Binance's demo trading has cancelled stops about a minute after placing them; a person
    can too. The next tick says so (an error line) and puts a new stop on; the stops the
    keeper replaces itself (it moved) are not reported."""
    harness = await Harness.start()
    exchange = harness.exchange
    _, stop_id = await entered_long(harness)
    with capture_logs() as logs:
        exchange.move(BTC, exchange.marks[BTC] * Decimal("1.03"))  # trails: ours replaced
        for _ in range(3):
            await harness.tick()
            harness.now += timedelta(minutes=2)
        moved_id = harness.keeper.positions[BTC].stop_order_id
        assert moved_id != stop_id
        assert [e for e in logs if e["event"] == "protective_stop_gone"] == []
        await exchange.cancel_conditional_order(BTC, str(moved_id))  # not by the keeper
        await harness.tick()
    [gone] = [e for e in logs if e["event"] == "protective_stop_gone"]
    assert gone["log_level"] == "error"
    assert f"{moved_id} CANCELED" in gone["detail"]
    assert len(open_stops(exchange, BTC)) == 1
    assert harness.keeper.positions[BTC].stop_order_id not in (stop_id, moved_id)


async def test_an_entry_request_that_never_arrived_unblocks_after_the_grace_period() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    order = sized(BTC, Side.LONG, exchange.marks[BTC])
    exchange.drop_next = True
    result = await harness.keeper.enter(order, harness.now)
    assert result.unknown
    assert BTC not in exchange.held
    for _ in range(7):
        await harness.tick()
    assert harness.keeper.view().blocked == {}
    assert open_stops(exchange, BTC) == []  # the blind stop, with nothing to protect, is gone
    [entry] = [o for o in await harness.repository.orders() if "-e-" in o.client_order_id]
    assert entry.status is OrderStatus.EXPIRED
    await harness.keeper.enter(order, harness.now + TICK)  # now it may try again
    assert len(ours(exchange, Purpose.ENTRY)) == 2


async def test_a_stop_filled_during_a_read_outage_then_a_reopen_by_hand_books_both() -> None:
    harness = await Harness.start()
    exchange = harness.exchange
    order, stop_id = await entered_long(harness)
    exchange.reads_down_until = harness.now + timedelta(seconds=12)
    await harness.tick()  # cannot read
    exchange.move(BTC, order.stop_price)  # the stop fills for the whole position
    exchange.by_hand(BTC, OrderSide.BUY, order.quantity)  # a person buys the same again
    assert exchange.held[BTC][:2] == (Side.LONG, order.quantity)  # looks unchanged
    await harness.tick()  # cannot read
    await harness.tick()

    [trade] = await harness.repository.closed_trades()
    assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, order.stop_price)
    stop = await harness.repository.get_order(stop_id)
    assert stop is not None
    assert stop.status is OrderStatus.FILLED
    position = harness.keeper.positions[BTC]  # the quantity bought by hand, adopted
    assert (position.quantity, position.entry_price) == (order.quantity, order.stop_price)
    assert position.entry_order_id.startswith("adopted-")
    assert open_stops(exchange, BTC) == [(order.quantity, position.stop_price)]
    assert ours(exchange, Purpose.EXIT) == []  # nothing sold what the person bought


async def test_a_stop_the_mark_has_reached_while_an_exit_is_in_flight_goes_beyond_the_mark() -> (
    None
):
    harness = await Harness.start()
    exchange = harness.exchange
    exchange.by_hand(BTC, OrderSide.BUY, Decimal("1.5"))  # adopted with the default 3 % stop
    exchange.reject_next = True  # its stop is refused: the keeper closes it at market …
    exchange.drop_next = True  # … and that exit's request is lost
    await harness.tick()
    assert BTC in harness.keeper.view().blocked
    assert open_stops(exchange, BTC) == []
    exchange.move(BTC, Decimal(97))  # the mark reaches the stop (97.00): -2021 there

    await harness.tick()

    gap = Decimal(repr(KeeperSettings().refused_exit_stop_gap_pct))
    beyond = (Decimal(97) * (1 - gap)).quantize(Decimal("0.01"), ROUND_FLOOR)  # on the tick
    assert open_stops(exchange, BTC) == [(Decimal("1.5"), beyond)]
    assert len(ours(exchange, Purpose.EXIT)) == 1  # no exit sent twice
