"""A protective stop that fired while Binance does not list its trades yet.

Our stops are Binance Algo orders. Once one fires and its market order ends in the matching
engine, Binance reports it FINISHED ("filled or canceled in the matching engine": ALGO_UPDATE,
Binance's USD-M user-data stream docs) with `actualOrderId`, the order it placed; the order
query (GET /fapi/v1/order, by orderId) reports that order's status, executedQty and avgPrice.
userTrades may not list its trades yet just after it ended (BAD_INPUTS.md). The lookup of
the stop reads the actual order, so it is never taken for EXPIRED with nothing executed while
the trades are missing (was: booked from the trades alone, none listed → EXPIRED, 0); when
the outcome cannot be known yet, the lookup fails (`RetryLater`) and the keeper asks again.
Against the loopback stand-in, its userTrades lagging by `trades_lag_ms`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from loopback import Fault, FillPlan, LoopbackBinance
from loopback.fixtures import connect
from loopback.state import START_MS
from test_ccxt_exchange import BTC
from test_ccxt_wire import QTY, trigger_stop

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.domain import OrderStatus
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.execution import binance_fills as trades
from quantum_trader.execution.ccxt_exchange import CcxtExchange

LAG = timedelta(seconds=30)
STOP_PRICE = Decimal("94900.0")  # the mark that crossed the trigger: its fill price


@asynccontextmanager
async def fired_stop(
    executed: str = "1", *, actual_id: bool = True
) -> AsyncIterator[tuple[LoopbackBinance, CcxtExchange, ManualClock]]:
    """BTC long 0.010 whose stop (qtsBTC1) fired and executed `executed` of its quantity;
    userTrades lists its trades only `LAG` later. The adapter and the stand-in on one clock."""
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(report_actual_order=actual_id, clock=clock) as server:
        server.state.trades_lag_ms = int(LAG.total_seconds() * 1000)
        if executed != "1":
            server.engine.triggered_fill = FillPlan(Decimal(executed))
        exchange = connect(server)
        try:
            await trigger_stop(exchange, server)
            server.sync()  # the stand-in triggers it on the new mark
            assert server.state.algo_orders["qtsBTC1"]["algoStatus"] == "FINISHED"
            yield server, exchange, clock
        finally:
            await exchange.close()


@pytest.mark.parametrize(
    ("executed", "status"),
    [("1", OrderStatus.FILLED), ("0.4", OrderStatus.EXPIRED), ("0", OrderStatus.EXPIRED)],
    ids=["whole", "part", "nothing"],
)
async def test_a_fired_stop_whose_trades_are_not_listed_yet_is_settled_from_its_actual_order(
    executed: str, status: OrderStatus
) -> None:
    async with fired_stop(executed) as (server, exchange, clock):
        order = await exchange.fetch_order(BTC, "qtsBTC1")
        assert await exchange.fetch_fills(BTC, "qtsBTC1") == []  # none listed yet
        closed = QTY * Decimal(executed)
        assert order is not None
        assert (order.status, order.filled_quantity) == (status, closed)
        assert order.average_price == (STOP_PRICE if closed else None)
        looked_up = [p for m, path, p in server.requests if path == "/fapi/v1/order"]
        actual = server.state.algo_orders["qtsBTC1"]["actualOrderId"]
        assert {"orderId": actual} in [{"orderId": p.get("orderId")} for p in looked_up]

        clock.set(clock.now() + LAG)  # now listed: the same outcome, and its fills
        assert await exchange.fetch_order(BTC, "qtsBTC1") == order
        fills = await exchange.fetch_fills(BTC, "qtsBTC1")
        assert sum((f.quantity for f in fills), Decimal(0)) == closed


async def test_a_fired_stop_whose_trades_are_listed_reads_as_before() -> None:
    async with fired_stop() as (_server, exchange, clock):
        clock.set(clock.now() + LAG)
        order = await exchange.fetch_order(BTC, "qtsBTC1")
        assert order is not None
        assert (order.status, order.filled_quantity, order.average_price) == (
            OrderStatus.FILLED,
            QTY,
            STOP_PRICE,
        )
        [fill] = await exchange.fetch_fills(BTC, "qtsBTC1")
        assert (fill.quantity, fill.price, fill.client_order_id) == (QTY, STOP_PRICE, "qtsBTC1")


async def test_a_fired_stop_whose_actual_order_cannot_be_read_is_not_known_yet() -> None:
    """The plain lookup of the stop's id answers -2013 (it is an algo order), then every read
    of its actual order fails: the lookup fails, it does not say EXPIRED with nothing."""
    async with fired_stop() as (server, exchange, _clock):
        server.inject(
            Fault("/fapi/v1/order", code=-2013, msg="Order does not exist.", method="GET")
        )
        for _ in range(3):  # the first read and its two retries
            server.inject(Fault("/fapi/v1/order", status=503, body="busy", method="GET"))
        with pytest.raises(RetryLater):
            await exchange.fetch_order(BTC, "qtsBTC1")


async def test_a_fired_stop_whose_actual_order_still_works_is_not_known_yet() -> None:
    """FINISHED, yet the order query still shows the market order working (NEW): not known
    yet, never EXPIRED with what it executed so far."""
    async with fired_stop() as (server, exchange, _clock):
        actual_id = server.state.algo_orders["qtsBTC1"]["actualOrderId"]
        actual = server.state.get_order({"orderId": actual_id})
        working = {**actual, "status": "NEW", "executedQty": "0", "avgPrice": "0"}
        server.inject(
            Fault("/fapi/v1/order", code=-2013, msg="Order does not exist.", method="GET")
        )
        server.inject(Fault("/fapi/v1/order", status=200, body=json.dumps(working), method="GET"))
        with pytest.raises(RetryLater, match="NEW"):
            await exchange.fetch_order(BTC, "qtsBTC1")


async def test_a_fired_stops_actual_order_binance_no_longer_keeps_executed_nothing() -> None:
    """Binance's order query forgets an order only once it ended CANCELED or EXPIRED with no
    filled trade and is older than 3 days (or older than 90 days, when the algo order is
    gone too): an actual order not found then executed nothing; before, it is not known yet."""
    async with fired_stop("0") as (server, exchange, clock):
        actual = server.state.algo_orders["qtsBTC1"]["actualOrderId"]
        del server.state.orders[server.state.get_order({"orderId": actual})["clientOrderId"]]
        with pytest.raises(RetryLater):
            await exchange.fetch_order(BTC, "qtsBTC1")
        clock.set(clock.now() + timedelta(days=3, milliseconds=1))
        order = await exchange.fetch_order(BTC, "qtsBTC1")
        assert order is not None
        assert (order.status, order.filled_quantity) == (OrderStatus.EXPIRED, Decimal(0))


async def test_a_fired_stop_without_an_actual_order_id_waits_for_its_trades() -> None:
    """Binance reports no actualOrderId: the stop is booked from the trades on its side in
    the trigger's window; while none is listed its outcome is not known yet (the lookup
    fails), and once they are, it is booked from them."""
    async with fired_stop(actual_id=False) as (_server, exchange, clock):
        with pytest.raises(RetryLater, match="no trade listed yet"):
            await exchange.fetch_order(BTC, "qtsBTC1")
        clock.set(clock.now() + LAG)
        order = await exchange.fetch_order(BTC, "qtsBTC1")
        assert order is not None
        assert (order.status, order.filled_quantity, order.average_price) == (
            OrderStatus.FILLED,
            QTY,
            STOP_PRICE,
        )


async def test_a_fired_stop_without_an_actual_order_id_and_no_trade_executed_nothing() -> None:
    """No actualOrderId and no trade in its window a minute after it finished: its market
    order executed nothing (EXPIRED, 0), as before; a protective stop is not waited on for
    good."""
    async with fired_stop("0", actual_id=False) as (_server, exchange, clock):
        with pytest.raises(RetryLater):
            await exchange.fetch_order(BTC, "qtsBTC1")
        clock.set(clock.now() + timedelta(seconds=60, milliseconds=1))
        order = await exchange.fetch_order(BTC, "qtsBTC1")
        assert order is not None
        assert (order.status, order.filled_quantity) == (OrderStatus.EXPIRED, Decimal(0))


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"status": "CALCULATED", "executedQty": "0.010", "avgPrice": "1"}, "unknown status"),
        ({"status": "FILLED", "executedQty": "0.010", "avgPrice": "0"}, "without an avgPrice"),
        ({"status": "FILLED", "avgPrice": "94900"}, "executedQty"),
        ({"status": "FILLED", "executedQty": "NaN", "avgPrice": "94900"}, "executedQty"),
    ],
    ids=["unknown-status", "no-price", "no-quantity", "nan-quantity"],
)
def test_an_actual_order_answer_that_cannot_say_what_executed_is_malformed(
    answer: dict[str, str], said: str
) -> None:
    """Never read as nothing executed: the lookup fails with the field named."""
    with pytest.raises(MarketDataError, match=said):
        trades.actual_order_execution(answer, BTC)
