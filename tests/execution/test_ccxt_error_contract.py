"""The error contract: every ccxt error class and the Binance codes that decide what the caller
must do map to one of ours, by translation alone and over HTTP from the stand-in."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import cast

import aiohttp
import ccxt.async_support as ccxt
import pytest
from loopback import Fault, LoopbackBinance
from loopback.fixtures import connect, loopback_settings
from loopback.state import START_MS
from socket_race import RacingConnector
from structlog.testing import capture_logs
from test_ccxt_exchange import BTC, entry, stop

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.domain import ExchangeMode, OrderStatus, ReasonCode
from quantum_trader.errors import (
    IpBanned,
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    QuantumTraderError,
    RateLimited,
    RetryLater,
)
from quantum_trader.execution.binance_client import BinanceRest, build_rest_client
from quantum_trader.execution.ccxt_exchange import CcxtExchange, Operation, translate_error

ORDER, DATA, ACCOUNT, CANCEL = Operation.ORDER, Operation.DATA, Operation.ACCOUNT, Operation.CANCEL

CONTRACT: list[tuple[type[Exception], Operation, type[QuantumTraderError]]] = [
    (ccxt.AuthenticationError, ORDER, OperatorActionRequired),
    (ccxt.AuthenticationError, DATA, OperatorActionRequired),
    (ccxt.PermissionDenied, ACCOUNT, OperatorActionRequired),
    (ccxt.AccountSuspended, ORDER, OperatorActionRequired),
    (ccxt.AccountNotEnabled, ACCOUNT, OperatorActionRequired),
    (ccxt.InsufficientFunds, ORDER, OrderRejected),
    (ccxt.InvalidOrder, ORDER, OrderRejected),
    (ccxt.BadRequest, ORDER, OrderRejected),
    (ccxt.BadSymbol, ORDER, OrderRejected),
    (ccxt.BadSymbol, DATA, MarketDataError),
    (ccxt.BadRequest, DATA, MarketDataError),
    (ccxt.BadRequest, ACCOUNT, OperatorActionRequired),
    (ccxt.DDoSProtection, DATA, RateLimited),
    (ccxt.DDoSProtection, ORDER, RateLimited),  # refused by the rate limiter: not executed
    (ccxt.RateLimitExceeded, ACCOUNT, RateLimited),
    (ccxt.RateLimitExceeded, ORDER, RateLimited),
    (ccxt.InvalidNonce, ORDER, RetryLater),  # -1021: refused for its timestamp
    (ccxt.InvalidNonce, ACCOUNT, RetryLater),
    (ccxt.ExchangeNotAvailable, DATA, RetryLater),
    (ccxt.OnMaintenance, ACCOUNT, RetryLater),
    (ccxt.RequestTimeout, DATA, RetryLater),
    (ccxt.NetworkError, ACCOUNT, RetryLater),
    (ccxt.NetworkError, CANCEL, RetryLater),
    (ccxt.RequestTimeout, ORDER, OrderStateUnknown),
    (ccxt.NetworkError, ORDER, OrderStateUnknown),
    (ccxt.ExchangeNotAvailable, ORDER, OrderStateUnknown),
    (ccxt.BadResponse, ORDER, OrderStateUnknown),
    (ccxt.BadResponse, DATA, MarketDataError),
    (ccxt.ExchangeError, ORDER, OrderRejected),
    (ccxt.ExchangeError, DATA, MarketDataError),
    (ccxt.ExchangeError, ACCOUNT, RetryLater),
    (ccxt.ExchangeError, CANCEL, OrderStateUnknown),  # a cancel not answered with success
    (ccxt.InvalidOrder, CANCEL, OrderStateUnknown),
    (ccxt.BadRequest, CANCEL, OrderStateUnknown),
]

# Binance codes whose meaning overrides the class ccxt gives them.
BY_CODE: list[tuple[type[Exception], int, Operation, type[QuantumTraderError]]] = [
    (ccxt.InvalidOrder, -4116, ORDER, OrderStateUnknown),  # duplicate client id: it exists
    (ccxt.ExchangeError, -4116, ORDER, OrderStateUnknown),
    (ccxt.OperationRejected, -4048, ACCOUNT, OperatorActionRequired),  # margin type locked
    (ccxt.BadRequest, -4048, ORDER, OperatorActionRequired),
    (ccxt.InvalidNonce, -1021, ORDER, RetryLater),
    (ccxt.BadRequest, -1021, ORDER, RetryLater),
    (ccxt.OperationFailed, -1008, ORDER, RetryLater),  # throttled: not executed
    (ccxt.InvalidOrder, -5028, ORDER, RetryLater),  # late at the matching engine: not executed
    (ccxt.OperationRejected, -4061, ORDER, OperatorActionRequired),  # switched to hedge mode
    (ccxt.RateLimitExceeded, -1003, ORDER, RateLimited),
    (ccxt.ExchangeError, -1003, ACCOUNT, RetryLater),
]


@pytest.mark.parametrize(("ccxt_error", "operation", "ours"), CONTRACT)
def test_every_ccxt_error_maps_to_ours(
    ccxt_error: type[Exception], operation: Operation, ours: type[QuantumTraderError]
) -> None:
    translated = translate_error(ccxt_error("binanceusdm boom"), operation, "qte1")
    assert type(translated) is ours
    if isinstance(translated, OrderStateUnknown):
        assert translated.client_order_id == "qte1"


@pytest.mark.parametrize(("ccxt_error", "code", "operation", "ours"), BY_CODE)
def test_binance_codes_decide_over_the_ccxt_class(
    ccxt_error: type[Exception], code: int, operation: Operation, ours: type[QuantumTraderError]
) -> None:
    error = ccxt_error(f'binanceusdm {{"code":{code},"msg":"refused"}}')
    translated = translate_error(error, operation, "qte1")
    assert isinstance(translated, ours)


def _ccxt_error_classes() -> list[type[Exception]]:
    classes = [
        cast(type[Exception], c)
        for _, c in inspect.getmembers(ccxt, inspect.isclass)
        if issubclass(c, ccxt.BaseError)
    ]
    return sorted(classes, key=lambda c: c.__name__)


@pytest.mark.parametrize("operation", list(Operation))
def test_no_ccxt_error_class_escapes_untranslated(operation: Operation) -> None:
    classes = _ccxt_error_classes()
    assert len(classes) > 40
    for ccxt_error in classes:
        assert isinstance(translate_error(ccxt_error("boom"), operation), QuantumTraderError)


def test_an_ip_ban_carries_the_time_it_ends() -> None:
    now = datetime(2025, 11, 1, tzinfo=UTC)
    from_message = ccxt.DDoSProtection(
        'binanceusdm 418 I\'m a teapot {"code":-1003,"msg":"Way too much request weight used; '
        'IP banned until 1762000300000. Please use WebSocket Streams."}'
    )
    banned = translate_error(from_message, ACCOUNT, now=now)
    assert isinstance(banned, IpBanned)
    assert banned.until == utc_from_ms(1762000300000)
    bare = translate_error(ccxt.DDoSProtection("binanceusdm 418 I'm a teapot"), DATA, now=now)
    assert isinstance(bare, IpBanned)
    assert bare.until == now + timedelta(minutes=2)  # Binance's shortest ban


@pytest.mark.parametrize(
    ("ccxt_error", "code", "reason"),
    [
        (ccxt.InvalidOrder, -4164, ReasonCode.BELOW_MIN_NOTIONAL),
        (ccxt.BadRequest, -1111, ReasonCode.BAD_PRECISION),
        (ccxt.InvalidOrder, -2022, ReasonCode.ORDER_REJECTED),
        (ccxt.InsufficientFunds, -2019, ReasonCode.INSUFFICIENT_FREE_BALANCE),
        (ccxt.BadSymbol, -1121, ReasonCode.UNKNOWN_SYMBOL),
    ],
)
def test_rejection_reason_follows_the_binance_code(
    ccxt_error: type[Exception], code: int, reason: ReasonCode
) -> None:
    error = ccxt_error(f'binanceusdm {{"code":{code},"msg":"refused"}}')
    translated = translate_error(error, ORDER)
    assert isinstance(translated, OrderRejected)
    assert translated.reason is reason


@pytest.mark.parametrize(
    ("status", "code", "expected", "reason"),
    [
        (400, -1111, OrderRejected, ReasonCode.BAD_PRECISION),
        (400, -4164, OrderRejected, ReasonCode.BELOW_MIN_NOTIONAL),
        (400, -2019, OrderRejected, ReasonCode.INSUFFICIENT_FREE_BALANCE),
        (400, -2022, OrderRejected, ReasonCode.ORDER_REJECTED),
        (401, -2015, OperatorActionRequired, None),
        (400, -4061, OperatorActionRequired, None),  # hedge mode since the start
        (429, -1003, RateLimited, None),
        (503, -1001, OrderStateUnknown, None),
    ],
)
async def test_binance_answers_to_place_order_over_http(
    exchange: CcxtExchange,
    loopback: LoopbackBinance,
    status: int,
    code: int,
    expected: type[QuantumTraderError],
    reason: ReasonCode | None,
) -> None:
    loopback.inject(Fault(path="/fapi/v1/order", status=status, code=code, msg="refused"))
    with pytest.raises(expected) as raised:
        await exchange.place_order(entry())
    if reason is not None:
        assert isinstance(raised.value, OrderRejected)
        assert raised.value.reason is reason
    assert loopback.count("/fapi/v1/order", "POST") == 1
    assert await exchange.fetch_order(BTC, "qteBTC1") is None


async def test_a_duplicate_client_id_means_the_order_exists(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await exchange.place_order(entry("qteDUP"))
    with pytest.raises(OrderStateUnknown, match="look it up") as raised:
        await exchange.place_order(entry("qteDUP"))  # -4116
    assert raised.value.client_order_id == "qteDUP"
    found = await exchange.fetch_order(BTC, "qteDUP")
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert loopback.state.holdings["BTCUSDT"].amount == entry().quantity  # one entry, not two


async def test_a_locked_margin_type_needs_an_operator(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    await exchange.place_order(entry())  # a position: Binance answers -4048
    with pytest.raises(OperatorActionRequired, match="ISOLATED"):
        await exchange.prepare_account([BTC], leverage=5)


async def test_a_timestamp_refusal_resyncs_the_clock_and_resends_once(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.inject(
        Fault(path="/fapi/v1/order", code=-1021, msg="Timestamp for this request is outside "
              "of the recvWindow.")
    )  # fmt: skip
    with capture_logs() as logs:
        order = await exchange.place_order(entry("qteSKEW"))
    assert order.status is OrderStatus.FILLED
    assert loopback.count("/fapi/v1/order", "POST") == 2  # the refused one executed nothing
    assert loopback.count("/fapi/v1/time", "GET") == 1
    assert [e["event"] for e in logs if e["event"] == "exchange_time_resynced"] == [
        "exchange_time_resynced"
    ]
    assert loopback.state.holdings["BTCUSDT"].amount == entry().quantity


async def test_rate_limit_holds_every_request_until_retry_after() -> None:
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        try:
            await exchange.load_markets()
            server.inject(Fault(path="/fapi/v3/account", status=429, code=-1003,
                                msg="Too many requests.", retry_after_s=30))  # fmt: skip
            with pytest.raises(RateLimited) as raised:
                await exchange.fetch_balance()
            assert raised.value.retry_after_s == 30
            sent = len(server.requests)
            with pytest.raises(RateLimited):
                await exchange.place_order(entry())  # refused here: nothing is sent
            assert len(server.requests) == sent
            clock.advance(30)
            assert (await exchange.fetch_balance()).wallet_usdt > 0
        finally:
            await exchange.close()


async def test_an_ip_ban_stops_all_sending_until_it_ends_and_says_so_once() -> None:
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        try:
            await exchange.load_markets()
            server.ban(START_MS + 120_000)
            with capture_logs() as logs:
                with pytest.raises(IpBanned) as raised:
                    await exchange.fetch_positions()
                for _ in range(3):
                    with pytest.raises(IpBanned):
                        await exchange.fetch_balance()
            assert raised.value.until == utc_from_ms(START_MS + 120_000)
            assert server.count("/fapi/v3/account") == 0  # nothing sent while banned
            bans = [e for e in logs if e["event"] == "exchange_ip_banned"]
            assert len(bans) == 1
            assert bans[0]["until"] == raised.value.until.isoformat()
            clock.advance(120)
            assert (await exchange.fetch_balance()).wallet_usdt > 0
        finally:
            await exchange.close()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, -1016),  # "This service is no longer available." (ccxt: BadRequest)
        (500, -4999),  # a code ccxt does not know (ccxt: ExchangeError)
        (503, -2019),  # a refusal's code on a 5XX: Binance says the outcome is unknown
    ],
)
@pytest.mark.parametrize("kind", ["market", "stop"])
async def test_a_5xx_answer_leaves_an_order_unknown_whatever_code_it_carries(
    exchange: CcxtExchange, loopback: LoopbackBinance, status: int, code: int, kind: str
) -> None:
    """Binance: a 5XX answer means "the execution status is UNKNOWN and could have been a
    success". Booked as refused, an order that executed would be lost track of (an entry
    sent again; a protective stop taken for refused and its position closed at market)."""
    await exchange.place_order(entry("qteHELD"))  # a position for the stop to protect
    request = entry("qte5XX") if kind == "market" else stop("qts5XX", trigger="90000")
    path = "/fapi/v1/order" if kind == "market" else "/fapi/v1/algoOrder"
    loopback.inject(Fault(path=path, method="POST", status=status, code=code,
                          msg="Unknown error, please check your request or try again later.",
                          processed=True))  # fmt: skip
    with pytest.raises(OrderStateUnknown) as raised:
        await exchange.place_order(request)
    assert raised.value.client_order_id == request.client_order_id
    found = await exchange.fetch_order(BTC, request.client_order_id)
    assert found is not None  # it executed: the lookup the keeper makes finds it
    expected = OrderStatus.FILLED if kind == "market" else OrderStatus.OPEN
    assert found.status is expected


async def test_a_5xx_answer_whose_code_says_throttled_executed_nothing(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    loopback.inject(Fault(path="/fapi/v1/order", status=503, code=-1008,
                          msg="Request throttled by system-level protection. Reduce-only/"
                              "close-position orders are exempt. Please try again."))  # fmt: skip
    with pytest.raises(RetryLater) as raised:
        await exchange.place_order(entry())
    assert not isinstance(raised.value, OrderStateUnknown | OrderRejected)
    assert await exchange.fetch_order(BTC, "qteBTC1") is None


async def test_an_account_switched_to_hedge_mode_after_the_start_needs_an_operator(
    exchange: CcxtExchange, loopback: LoopbackBinance
) -> None:
    """prepare_account checks one-way mode at the start only. Switched to hedge mode later
    (Binance allows it while flat), every order is refused -4061: an operator's matter, so
    the governor halts entries and says why, not one ORDER_REJECTED per signal."""
    loopback.state.dual_side_position = True
    for request in (entry(), stop()):
        with pytest.raises(OperatorActionRequired, match="one-way"):
            await exchange.place_order(request)
    assert loopback.state.orders == {}
    assert loopback.state.algo_orders == {}


@asynccontextmanager
async def racing(
    server: LoopbackBinance, connector: RacingConnector
) -> AsyncIterator[CcxtExchange]:
    """A CcxtExchange on `server` whose HTTP connections go through `connector`."""
    settings = loopback_settings(2.0, server)
    client = build_rest_client(settings, None, rate_limit=False)
    client.session = aiohttp.ClientSession(connector=connector)
    clock = ManualClock(utc_from_ms(START_MS))
    exchange = CcxtExchange(
        BinanceRest(client, clock, settings.recv_window_ms), ExchangeMode.TESTNET, (0.01, 0.02)
    )
    try:
        yield exchange
    finally:
        await exchange.close()


async def test_the_event_loops_socket_race_is_a_network_failure_a_read_retries(
    loopback: LoopbackBinance,
) -> None:
    """Seen once in the suite: the race raised through the user stream's listen-key request
    and ended the daemon. Two refusals, then the third attempt of the read gets its answer;
    three (every attempt) are RetryLater, which every loop of the daemon waits out."""
    async with racing(loopback, RacingConnector(2)) as exchange:
        assert await exchange.create_listen_key()
    async with racing(loopback, RacingConnector(3)) as exchange:
        with pytest.raises(RetryLater, match="is used by transport"):
            await exchange.create_listen_key()


async def test_the_event_loops_socket_race_leaves_an_order_unknown(
    loopback: LoopbackBinance,
) -> None:
    """Raised at connect, so nothing was sent; the answer stays the conservative one of any
    network failure on an order: look it up before anything else is sent for it."""
    connector = RacingConnector(0)
    async with racing(loopback, connector) as exchange:
        await exchange.load_markets()
        loopback.reset_counts()
        connector.refusals = 1
        with pytest.raises(OrderStateUnknown) as raised:
            await exchange.place_order(entry("qteRACE"))
        assert raised.value.client_order_id == "qteRACE"
        assert loopback.count("/fapi/v1/order", "POST") == 0
        assert await exchange.fetch_order(BTC, "qteRACE") is None


async def test_any_other_runtime_error_is_not_taken_for_a_network_failure(
    loopback: LoopbackBinance,
) -> None:
    """Only the race's message is translated: another RuntimeError is a fault of ours and stays
    loud."""
    async with racing(loopback, RacingConnector(1, "Session is closed")) as exchange:
        with pytest.raises(RuntimeError, match="Session is closed"):
            await exchange.create_listen_key()
