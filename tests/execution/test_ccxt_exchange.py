"""CcxtExchange against the loopback Binance stand-in: the Exchange port over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import pytest
import structlog
from loopback import Fault, LoopbackBinance
from loopback.fixtures import API_KEY, API_SECRET, connect

from quantum_trader.domain import (
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    ReasonCode,
    Side,
)
from quantum_trader.errors import (
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    RetryLater,
)
from quantum_trader.execution.ccxt_exchange import CcxtExchange

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BNB/USDT:USDT"]


def entry(client_id: str = "qteBTC1", quantity: str = "0.010") -> OrderRequest:
    return OrderRequest(client_id, BTC, OrderSide.BUY, OrderKind.MARKET, Decimal(quantity))


def stop(client_id: str = "qtsBTC1", trigger: str = "95000.04") -> OrderRequest:
    return OrderRequest(
        client_id,
        BTC,
        OrderSide.SELL,
        OrderKind.STOP_MARKET,
        Decimal("0.010"),
        trigger_price=Decimal(trigger),
        reduce_only=True,
    )


async def test_market_rules_come_from_exchange_info(exchange: CcxtExchange) -> None:
    rules = await exchange.load_markets()
    assert rules[BTC].tick_size == Decimal("0.10")
    assert rules[BTC].step_size == Decimal("0.001")
    assert rules[BTC].min_notional == Decimal("100")
    assert rules[BTC].max_quantity == Decimal("1000")  # LOT_SIZE: limit orders
    assert rules[BTC].market_lot_size.max_quantity == Decimal("120")  # MARKET_LOT_SIZE
    assert len(rules) == 8


async def test_mark_prices_of_a_few_symbols_are_one_request_each(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    """Weight 1 each with `symbol`, 10 for all: four symbols cost 4 (binance_marks.py)."""
    prices = await exchange.fetch_mark_prices(SYMBOLS)
    assert prices[BTC] == Decimal("100000.0")
    assert set(prices) == set(SYMBOLS)
    assert sorted((m, p, q["symbol"]) for m, p, q in loopback.requests) == [
        ("GET", "/fapi/v1/premiumIndex", market_id)
        for market_id in ("BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT")
    ]
    assert loopback.weight == 4


async def test_market_order_goes_in_with_our_client_id_and_fills(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    order = await exchange.place_order(entry())
    assert order.client_order_id == "qteBTC1"
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == Decimal("0.010")
    assert order.average_price == Decimal("100000.0")
    sent = loopback.requests[-1]
    assert sent[:2] == ("POST", "/fapi/v1/order")
    assert sent[2]["newClientOrderId"] == "qteBTC1"
    assert sent[2]["quantity"] == "0.01"


async def test_balance_positions_fills_after_an_entry(exchange: CcxtExchange) -> None:
    await exchange.set_leverage(BTC, 10)
    await exchange.place_order(entry())
    balance = await exchange.fetch_balance()
    assert balance.used_margin_usdt == Decimal("100")
    assert balance.wallet_usdt == Decimal("10000") - Decimal("0.4")
    [position] = await exchange.fetch_positions()
    assert (position.symbol, position.side, position.quantity) == (BTC, Side.LONG, Decimal("0.01"))
    assert position.leverage == 10
    [fill] = await exchange.fetch_fills(BTC, "qteBTC1")
    assert (fill.price, fill.fee_usdt) == (Decimal("100000.0"), Decimal("0.4"))
    assert await exchange.fetch_fills(BTC, "never-sent") == []


async def test_stop_goes_through_the_algo_order_api(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    placed = await exchange.place_order(stop())
    method, path, params = loopback.requests[-1]
    assert (method, path) == ("POST", "/fapi/v1/algoOrder")
    assert params["algoType"] == "CONDITIONAL"
    assert params["type"] == "STOP_MARKET"
    assert params["clientAlgoId"] == "qtsBTC1"
    assert params["triggerPrice"] == "95000"  # rounded to the 0.10 tick
    assert params["reduceOnly"] == "true"
    assert params["workingType"] == "MARK_PRICE"  # the price the keeper reasons in
    assert params["priceProtect"] == "FALSE"
    assert params["recvWindow"] == "5000"
    assert placed.status is OrderStatus.OPEN
    assert placed.trigger_price == Decimal("95000.0")
    assert placed.kind is OrderKind.STOP_MARKET


async def test_list_and_cancel_conditional_orders(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await exchange.place_order(stop("qtsBTC1"))
    take_profit = OrderRequest(
        "qttBTC1", BTC, OrderSide.SELL, OrderKind.TAKE_PROFIT_MARKET, Decimal("0.01"),
        trigger_price=Decimal("110000"), reduce_only=True,
    )  # fmt: skip
    await exchange.place_order(take_profit)
    listed = await exchange.fetch_open_conditional_orders(BTC)
    assert {o.client_order_id for o in listed} == {"qtsBTC1", "qttBTC1"}
    assert loopback.requests[-1][1] == "/fapi/v1/openAlgoOrders"
    await exchange.cancel_conditional_order(BTC, "qtsBTC1")
    assert loopback.requests[-1][:2] == ("DELETE", "/fapi/v1/algoOrder")
    remaining = await exchange.fetch_open_conditional_orders()
    assert [o.client_order_id for o in remaining] == ["qttBTC1"]
    with pytest.raises(OrderRejected, match="qtsBTC1 is already CANCELED"):
        await exchange.cancel_conditional_order(BTC, "qtsBTC1")  # not cancelled again


async def test_a_cancel_of_a_stop_that_filled_just_before_says_so(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    """The stop triggered and filled between the keeper's read and its cancel (a replacement
    racing the market): the cancel is refused, never taken for a cancellation, so the fill
    is booked from the lookup."""
    await exchange.place_order(entry(quantity="0.010"))
    await exchange.place_order(stop("qtsBTC1", "95000"))
    loopback.state.marks["BTCUSDT"] = Decimal("94000.0")  # triggers before the cancel is served
    with pytest.raises(OrderRejected, match="qtsBTC1 is already FILLED"):
        await exchange.cancel_conditional_order(BTC, "qtsBTC1")
    order = await exchange.fetch_order(BTC, "qtsBTC1")
    assert order is not None
    assert order.status is OrderStatus.FILLED


async def test_fetch_order_by_client_id_finds_both_kinds(exchange: CcxtExchange) -> None:
    await exchange.place_order(entry())
    await exchange.place_order(stop())
    plain = await exchange.fetch_order(BTC, "qteBTC1")
    conditional = await exchange.fetch_order(BTC, "qtsBTC1")
    assert plain is not None
    assert plain.kind is OrderKind.MARKET
    assert conditional is not None
    assert conditional.kind is OrderKind.STOP_MARKET
    assert conditional.status is OrderStatus.OPEN
    assert await exchange.fetch_order(BTC, "unknown-id") is None


async def test_prepare_account_sets_isolated_margin_and_leverage(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await exchange.prepare_account([BTC, ETH], leverage=5)
    await exchange.prepare_account([BTC, ETH], leverage=5)  # already isolated: still fine
    holdings = loopback.state.holdings
    assert holdings["BTCUSDT"].margin_type == "isolated"
    assert holdings["ETHUSDT"].leverage == 5


async def test_prepare_account_refuses_a_hedge_mode_account(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.state.dual_side_position = True
    with pytest.raises(OperatorActionRequired, match="hedge mode"):
        await exchange.prepare_account([BTC], leverage=5)


async def test_prepare_account_refuses_multi_assets_margin(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.state.multi_assets_margin = True
    with pytest.raises(OperatorActionRequired, match="multi-assets"):
        await exchange.prepare_account([BTC], leverage=5)


async def test_timeout_during_place_order_is_unknown_then_found_by_client_id(
    loopback: LoopbackBinance,
) -> None:
    slow = connect(loopback, timeout_s=0.3)
    try:
        loopback.inject(Fault(path="/fapi/v1/order", delay_s=1.0))
        with pytest.raises(OrderStateUnknown) as raised:
            await slow.place_order(entry("qteLOST"))
        assert raised.value.client_order_id == "qteLOST"
        assert loopback.count("/fapi/v1/order", "POST") == 1  # never resent
        found = await slow.fetch_order(BTC, "qteLOST")
        assert found is not None
        assert found.status is OrderStatus.FILLED
    finally:
        await slow.close()


async def test_rejections_carry_stable_reason_codes(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    with pytest.raises(OrderRejected) as below:
        await exchange.place_order(entry(quantity="0.0009"))  # rounds down to zero
    assert below.value.reason is ReasonCode.BELOW_MIN_QUANTITY
    small_eth = OrderRequest("qteETH", ETH, OrderSide.BUY, OrderKind.MARKET, Decimal("0.005"))
    with pytest.raises(OrderRejected) as small:
        await exchange.place_order(small_eth)  # 17.5 USDT < the 20 USDT minimum notional
    assert small.value.reason is ReasonCode.BELOW_MIN_NOTIONAL
    with pytest.raises(OrderRejected) as margin:
        await exchange.place_order(entry(quantity="5"))
    assert margin.value.reason is ReasonCode.INSUFFICIENT_FREE_BALANCE
    unknown = OrderRequest("x", "NOPE/USDT:USDT", OrderSide.BUY, OrderKind.MARKET, Decimal(1))
    with pytest.raises(OrderRejected) as symbol:
        await exchange.place_order(unknown)
    assert symbol.value.reason is ReasonCode.UNKNOWN_SYMBOL


async def test_a_market_order_above_the_market_maximum_is_refused_with_its_reason(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    # Binance: -4005 "Quantity greater than max quantity." above MARKET_LOT_SIZE maxQty (120
    # BTC), for an entry and for a reduce-only close alike; nothing executed.
    close = OrderRequest(
        "qtxBTC", BTC, OrderSide.SELL, OrderKind.MARKET, Decimal("120.001"), reduce_only=True
    )
    for request in (entry(quantity="120.001"), close):
        with pytest.raises(OrderRejected) as refused:
            await exchange.place_order(request)
        assert refused.value.reason is ReasonCode.ABOVE_MAX_QUANTITY
        assert "-4005" in str(refused.value)
    assert loopback.count("/fapi/v1/order", "POST") == 2
    assert await exchange.fetch_positions() == []


async def test_idempotent_reads_retry_transient_failures(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.inject(Fault(path="/fapi/v3/account", status=503, body="Service Unavailable"))
    loopback.inject(Fault(path="/fapi/v3/account", status=502, body="Bad Gateway"))
    balance = await exchange.fetch_balance()
    assert balance.wallet_usdt == Decimal("10000")
    assert loopback.count("/fapi/v3/account") == 3


async def test_reads_give_up_after_bounded_retries(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    for _ in range(3):
        loopback.inject(Fault(path="/fapi/v1/premiumIndex", status=503, body="busy"))
    with pytest.raises(RetryLater):
        await exchange.fetch_mark_prices([BTC])
    assert loopback.count("/fapi/v1/premiumIndex") == 3


async def test_place_order_is_never_retried(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.inject(Fault(path="/fapi/v1/order", status=503, body="Service Unavailable"))
    with pytest.raises(OrderStateUnknown):
        await exchange.place_order(entry())
    assert loopback.count("/fapi/v1/order", "POST") == 1


async def test_rejected_api_key_needs_an_operator(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.inject(Fault(path="/fapi/v3/account", status=401, code=-2015, msg="Invalid API-key"))
    with pytest.raises(OperatorActionRequired):
        await exchange.fetch_balance()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('[{"symbol": "BTCUSDT"}]', "markPrice"),
        ('[{"symbol": "BTCUSDT", "markPrice": "abc"}]', "markPrice"),
        ('[{"symbol": "BTCUSDT", "markPrice": "NaN"}]', "markPrice"),
        ('[{"symbol": "BTCUSDT", "markPrice": "-1"}]', "markPrice"),
        ('{"unexpected": true}', "missing field 'symbol'"),
        ('"text"', "expected a list"),
    ],
)
async def test_malformed_mark_prices_name_the_field(
    exchange: CcxtExchange, loopback: LoopbackBinance, body: str, field: str
) -> None:
    loopback.inject(Fault(path="/fapi/v1/premiumIndex", status=200, body=body))
    with pytest.raises(MarketDataError, match=field):
        await exchange.fetch_mark_prices([BTC])


async def test_malformed_balance_names_the_field(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.inject(Fault(path="/fapi/v3/account", status=200, body='{"totalWalletBalance": "1"}'))
    with pytest.raises(MarketDataError, match="availableBalance"):
        await exchange.fetch_balance()


async def test_secrets_stay_out_of_repr_and_logs(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    with structlog.testing.capture_logs() as logs:
        loopback.inject(Fault(path="/fapi/v3/account", status=503, body="busy"))
        await exchange.fetch_balance()
        await exchange.place_order(stop())
        await exchange.cancel_conditional_order(BTC, "qtsBTC1")
    text = repr(exchange) + str(logs)
    assert logs  # the retry was logged
    assert API_KEY not in text
    assert API_SECRET not in text
