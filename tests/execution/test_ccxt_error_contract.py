"""The error contract: every ccxt error class the adapter can meet maps to one of ours."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest
from loopback import Fault, LoopbackBinance
from test_ccxt_exchange import BTC, entry

from quantum_trader.domain import ReasonCode
from quantum_trader.errors import (
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    QuantumTraderError,
    RetryLater,
)
from quantum_trader.execution.ccxt_exchange import CcxtExchange, Operation, translate_error

ORDER, DATA, ACCOUNT = Operation.ORDER, Operation.DATA, Operation.ACCOUNT

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
    (ccxt.DDoSProtection, DATA, RetryLater),
    (ccxt.RateLimitExceeded, ACCOUNT, RetryLater),
    (ccxt.ExchangeNotAvailable, DATA, RetryLater),
    (ccxt.OnMaintenance, ACCOUNT, RetryLater),
    (ccxt.RequestTimeout, DATA, RetryLater),
    (ccxt.NetworkError, ACCOUNT, RetryLater),
    (ccxt.RequestTimeout, ORDER, OrderStateUnknown),
    (ccxt.NetworkError, ORDER, OrderStateUnknown),
    (ccxt.ExchangeNotAvailable, ORDER, OrderStateUnknown),
    (ccxt.DDoSProtection, ORDER, OrderStateUnknown),
    (ccxt.RateLimitExceeded, ORDER, OrderStateUnknown),
    (ccxt.BadResponse, ORDER, OrderStateUnknown),
    (ccxt.BadResponse, DATA, MarketDataError),
    (ccxt.ExchangeError, ORDER, OrderRejected),
    (ccxt.ExchangeError, DATA, MarketDataError),
    (ccxt.ExchangeError, ACCOUNT, RetryLater),
]


@pytest.mark.parametrize(("ccxt_error", "operation", "ours"), CONTRACT)
def test_every_ccxt_error_maps_to_ours(
    ccxt_error: type[Exception], operation: Operation, ours: type[QuantumTraderError]
) -> None:
    translated = translate_error(ccxt_error("binanceusdm boom"), operation, "qte1")
    assert type(translated) is ours
    if isinstance(translated, OrderStateUnknown):
        assert translated.client_order_id == "qte1"


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
        (429, -1003, OrderStateUnknown, None),
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
