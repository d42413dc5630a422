"""A close-all stop (Binance's closePosition) through the ccxt adapter, on the stand-in.

Binance's New Algo Order: `closePosition` "true" is Close-All, used with STOP_MARKET or
TAKE_PROFIT_MARKET, and cannot be sent with `quantity` (nor `reduceOnly`); its answers and
ALGO_UPDATE events carry `closePosition` / `cp` true and a quantity of 0. One per symbol and
side: a second is refused with -4130. The keeper places one for a position no stop of its
quantity can cover (keeper/protect.py `fits_quantity_stop`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from loopback import Fault, LoopbackBinance
from loopback.fixtures import settle
from loopback.payloads import algo_update
from standin_keeper import BTC_MARKET, EnteringKeeper, keeper_on_streams
from structlog.testing import capture_logs

from quantum_trader.domain import (
    ZERO,
    ExitReason,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    ReasonCode,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.execution.binance_events import AlgoUpdate, parse_user_event
from quantum_trader.execution.ccxt_exchange import CcxtExchange

BTC = "BTC/USDT:USDT"


def close_all(client_id: str = "qt-s-BTC-1", trigger: str = "95000") -> OrderRequest:
    return OrderRequest(
        client_id, BTC, OrderSide.SELL, OrderKind.STOP_MARKET, ZERO,
        trigger_price=Decimal(trigger), reduce_only=True, close_position=True,
    )  # fmt: skip


async def hold_btc(exchange: CcxtExchange, quantity: str) -> None:
    entry = OrderRequest("qt-e-BTC-1", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(quantity))
    await exchange.place_order(entry)


async def test_a_close_all_stop_is_sent_without_a_quantity_and_read_back_as_one(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await hold_btc(exchange, "0.010")
    placed = await exchange.place_order(close_all())

    method, path, params = loopback.requests[-1]
    assert (method, path) == ("POST", "/fapi/v1/algoOrder")
    assert params["closePosition"] == "true"
    assert "quantity" not in params
    assert "reduceOnly" not in params
    for order in (placed, *await exchange.fetch_open_conditional_orders(BTC)):
        assert order.close_position
        assert order.reduce_only is True
        assert order.quantity == ZERO
        assert order.status is OrderStatus.OPEN


async def test_a_second_close_all_stop_on_the_same_side_is_refused(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await hold_btc(exchange, "0.010")
    await exchange.place_order(close_all("qt-s-BTC-1"))
    with pytest.raises(OrderRejected, match="-4130") as refused:
        await exchange.place_order(close_all("qt-s-BTC-2", "96000"))
    assert refused.value.reason is ReasonCode.CLOSE_ALL_EXISTS
    await exchange.cancel_conditional_order(BTC, "qt-s-BTC-1")
    await exchange.place_order(close_all("qt-s-BTC-2", "96000"))  # once the first is gone


async def test_a_close_all_stop_needs_a_position_and_ends_with_it(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    with pytest.raises(OrderRejected, match="-4509") as refused:
        await exchange.place_order(close_all())
    assert refused.value.reason is ReasonCode.NO_POSITION_FOR_CLOSE_ALL
    await hold_btc(exchange, "0.010")
    await exchange.place_order(close_all())
    close = OrderRequest(
        "web-1", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal("0.010"), reduce_only=True
    )
    await exchange.place_order(close)  # closed by hand: Binance ends the close-all with it
    ended = await exchange.fetch_order(BTC, "qt-s-BTC-1")
    assert ended is not None
    assert ended.status is OrderStatus.EXPIRED
    assert await exchange.fetch_open_conditional_orders(BTC) == []


async def test_a_close_all_stop_that_fires_closes_whatever_is_held(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await hold_btc(exchange, "0.010")
    await exchange.place_order(close_all())
    more = OrderRequest("qt-e-BTC-2", BTC, OrderSide.BUY, OrderKind.MARKET, Decimal("0.007"))
    await exchange.place_order(more)  # held after the stop was placed: closed too
    loopback.state.marks["BTCUSDT"] = Decimal("94000.0")

    fired = await exchange.fetch_order(BTC, "qt-s-BTC-1")
    assert fired is not None
    assert fired.status is OrderStatus.FILLED
    assert fired.close_position
    assert fired.filled_quantity == Decimal("0.017")
    assert await exchange.fetch_positions() == []


def test_an_algo_update_of_a_close_all_order_reads_as_one(loopback: LoopbackBinance) -> None:
    loopback.state.holding("BTCUSDT").amount = Decimal("0.010")
    params = {"type": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL", "triggerPrice": "95000"}
    algo = loopback.engine.place_algo_order(  # the stand-in's own REST shape of one
        {**params, "algoType": "CONDITIONAL", "closePosition": "true", "clientAlgoId": "qt-s-1"}
    )
    event = parse_user_event(algo_update(algo, 1), {"BTCUSDT": BTC})
    assert isinstance(event, AlgoUpdate)
    assert event.order.close_position
    assert event.order.quantity == ZERO
    assert event.order.reduce_only is True


def minimum_raised(*, strict: bool) -> Callable[[LoopbackBinance], None]:
    """BTC's minimum raised to 0.002 on the stand-in, `strict` its `strict_reduce_only` (which
    keeps Binance's exemption of reduce-only market orders larger than the position)."""

    def setup(server: LoopbackBinance) -> None:
        server.engine.strict_reduce_only = strict
        markets = server.state.markets
        markets[BTC_MARKET] = replace(markets[BTC_MARKET], min_quantity="0.002")

    return setup


async def held_below_the_minimum(rig: EnteringKeeper) -> None:
    """Our long of 0.003 BTC, of which a person sold 0.002: 0.001 held, the reduction booked
    and a close-all stop placed."""
    await rig.enter()
    await rig.tick()
    reduction = OrderRequest(
        "web_reduce_1", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal("0.002"),
        reduce_only=True,
    )  # fmt: skip
    await rig.exchange.place_order(reduction)
    await rig.tick(2)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
async def test_the_close_of_a_position_below_the_minimum_fits_and_closes_only_what_is_held(
    strict: bool,
) -> None:
    """The operator's close-all of our long a person reduced to 0.001 BTC, BTC's minimum
    raised to 0.002: the close of 0.001, refused (-4004), goes out again as a reduce-only
    market order of 0.002, the smallest that fits; the stand-in executes the 0.001 held and
    expires the rest, as Binance's FAQ exempts such an order from its refusal of reduce-only
    orders larger than the position (KEEPER.md). Was: refused, -4004, every time, the
    position left open."""
    async with keeper_on_streams(EnteringKeeper, minimum_raised(strict=strict)) as rig:
        await held_below_the_minimum(rig)
        assert rig.keeper.positions[BTC].quantity == Decimal("0.001")
        with capture_logs() as logs:
            await rig.keeper.close_all(ExitReason.EMERGENCY, rig.now())
            await settle(rig.server)
            await rig.tick(2)

        assert [e for e in logs if e["log_level"] == "error"] == []
        closes = [
            (p["quantity"], p["reduceOnly"]) for m, path, p in rig.server.requests
            if (m, path) == ("POST", "/fapi/v1/order") and p["newClientOrderId"].startswith("qt-x")
        ]  # fmt: skip
        assert closes == [("0.001", "true"), ("0.002", "true")]  # its own, refused; one that fits
        assert rig.server.state.holding(BTC_MARKET).amount == 0
        assert BTC not in rig.keeper.positions
        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.EMERGENCY
        assert trade.fees_usdt > 0


async def test_the_close_of_a_position_below_the_minimum_refused_in_both_forms_leaves_its_stop() -> (  # noqa: E501
    None
):
    """The same close where Binance refuses the second form too, for a reason of its own (-4131:
    the book too thin for a market order within PERCENT_PRICE): the 0.001 refused below the
    minimum, the 0.002 refused, one error line; the position stays under its close-all stop,
    which closes it when the mark reaches it."""
    async with keeper_on_streams(EnteringKeeper, minimum_raised(strict=False)) as rig:
        await held_below_the_minimum(rig)
        below = "Quantity less than min quantity."  # as the stand-in answers the 0.001
        thin = "The counterparty's best price does not meet the PERCENT_PRICE filter limit."
        for code, msg in ((-4004, below), (-4131, thin)):
            rig.server.inject(Fault("/fapi/v1/order", code=code, msg=msg, method="POST"))
        with capture_logs() as logs:
            await rig.keeper.close_all(ExitReason.EMERGENCY, rig.now())
            await settle(rig.server)
            await rig.tick(2)

        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["close_failed"]
        closes = [
            p["quantity"] for m, path, p in rig.server.requests
            if (m, path) == ("POST", "/fapi/v1/order") and p["newClientOrderId"].startswith("qt-x")
        ]  # fmt: skip
        assert closes == ["0.001", "0.002"]  # both refused
        assert rig.server.state.holding(BTC_MARKET).amount == Decimal("0.001")
        assert rig.open_orders() == [("STOP_MARKET", "SELL", "0", "97000")]  # close-all

        rig.server.state.marks[BTC_MARKET] = Decimal("96000")
        await rig.tick(2)
        assert rig.server.state.holding(BTC_MARKET).amount == 0
        assert BTC not in rig.keeper.positions
        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.SL_HIT
