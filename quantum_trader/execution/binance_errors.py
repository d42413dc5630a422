"""Binance USD-M errors, as ccxt raises them, translated into ours by what the caller must
do (`translate_error`): codes first, authentication next.

An HTTP 5XX answer leaves the execution status unknown, as Binance documents, whatever Binance
code its body carries (an order is then looked up, never taken for refused), unless the code
says nothing executed (-1008 throttled). HTTP 429 and 418 (`THROTTLED`) are RateLimited and
IpBanned, with Binance's Retry-After or ban end; `binance_client.BinanceRest` holds off on them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum

import ccxt.async_support as ccxt

from quantum_trader.clock import LiveClock, utc_from_ms
from quantum_trader.domain import ReasonCode
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

_BINANCE_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
_REJECTION_BY_CODE = {
    -4164: ReasonCode.BELOW_MIN_NOTIONAL,
    -4005: ReasonCode.ABOVE_MAX_QUANTITY,  # "Quantity greater than max quantity."
    -4004: ReasonCode.BELOW_MIN_QUANTITY,  # "Quantity less than min quantity."
    -2027: ReasonCode.LEVERAGE_TOO_HIGH,  # "Exceeded the maximum allowable position at
    # current leverage."
    -4130: ReasonCode.CLOSE_ALL_EXISTS,  # "An open stop or take profit order with GTE and
    # closePosition in the direction is existing."
    -4509: ReasonCode.NO_POSITION_FOR_CLOSE_ALL,  # "TIF GTE can only be used with open positions"
    -1111: ReasonCode.BAD_PRECISION,
    -2019: ReasonCode.INSUFFICIENT_FREE_BALANCE,
    -1121: ReasonCode.UNKNOWN_SYMBOL,
}
# Refused before anything executed (Binance): the same request, same client id, may be resent.
_NOT_EXECUTED = {
    -1003: "request weight limit exceeded",
    -1008: "server throttled the request",
    -1021: "timestamp outside recvWindow",
    -5028: "timestamp outside the matching engine's recvWindow",
}
DUPLICATE_CLIENT_ID = -4116
MARGIN_TYPE_LOCKED = -4048
POSITION_SIDE_MISMATCH = -4061  # the account was switched to hedge mode after the start
TIMESTAMP_OUTSIDE_RECV_WINDOW = -1021

THROTTLED = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)  # HTTP 418 / 429


class Operation(StrEnum):
    """What kind of call failed: decides how an error is translated."""

    DATA = "data"  # market data: bad answers are MarketDataError
    ACCOUNT = "account"  # idempotent account reads and settings
    ORDER = "order"  # placing an order: a lost answer means the order state is unknown
    CANCEL = "cancel"


class Throttled(ccxt.DDoSProtection):  # type: ignore[misc]
    """HTTP 429 or 418 with the Retry-After header Binance sends (seconds), kept for us."""

    def __init__(self, message: str, status: int, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def binance_code(error: BaseException) -> int | None:
    """The Binance error code quoted in a ccxt error message, if any."""
    found = _BINANCE_CODE.search(str(error))
    return int(found.group(1)) if found else None


def translate_error(
    error: Exception, operation: Operation, client_order_id: str = "", now: datetime | None = None
) -> QuantumTraderError:
    """Map a ccxt error to ours by what the caller must do. Codes first, authentication next."""
    code = binance_code(error)
    if isinstance(error, THROTTLED):
        return throttled(error, now or LiveClock().now())
    if code == DUPLICATE_CLIENT_ID and operation is Operation.ORDER:
        return OrderStateUnknown(
            client_order_id, f"duplicate client order id: the order exists, look it up ({error})"
        )
    if code == POSITION_SIDE_MISMATCH:
        return OperatorActionRequired(
            "the Binance futures account is in hedge mode; switch it back to one-way position "
            f"mode (Preferences → Position Mode): every order is refused until then ({error})"
        )
    if code == MARGIN_TYPE_LOCKED:
        return OperatorActionRequired(
            "the margin type of a symbol cannot be changed while it has a position or open "
            f"orders: close them or set ISOLATED margin by hand ({error})"
        )
    if code in _NOT_EXECUTED or isinstance(error, ccxt.InvalidNonce):
        reason = _NOT_EXECUTED.get(code or 0, "request refused before execution")
        return RetryLater(f"the exchange did not execute the request ({reason}): {error}")
    if isinstance(error, ccxt.AuthenticationError):
        return OperatorActionRequired(f"the exchange refused the API key: {error}")
    if isinstance(error, ccxt.OperationFailed):
        return _transient(error, operation, client_order_id)
    return _refused(error, operation, code, client_order_id)


def _refused(
    error: Exception, operation: Operation, code: int | None, client_order_id: str
) -> QuantumTraderError:
    if operation is Operation.CANCEL:  # a cancel not answered with success is not done
        return OrderStateUnknown(client_order_id, f"cancel not confirmed: {error}")
    if isinstance(error, ccxt.InsufficientFunds):
        return OrderRejected(ReasonCode.INSUFFICIENT_FREE_BALANCE, str(error))
    if isinstance(error, ccxt.BadSymbol) and operation is not Operation.DATA:
        return OrderRejected(ReasonCode.UNKNOWN_SYMBOL, str(error))
    if operation is Operation.DATA:
        return MarketDataError(f"market data request failed: {error}")
    if isinstance(error, ccxt.InvalidOrder | ccxt.BadRequest) and operation is Operation.ACCOUNT:
        return OperatorActionRequired(f"the exchange refused an account request: {error}")
    if isinstance(error, ccxt.InvalidOrder | ccxt.BadRequest) or operation is Operation.ORDER:
        # The code says why, whichever class ccxt raised (-4130 and -4509 are no InvalidOrder).
        return OrderRejected(
            _REJECTION_BY_CODE.get(code or 0, ReasonCode.ORDER_REJECTED), str(error)
        )
    return RetryLater(f"exchange error: {error}")


def _transient(error: Exception, operation: Operation, client_order_id: str) -> QuantumTraderError:
    if operation is Operation.ORDER:
        return OrderStateUnknown(client_order_id, f"no reliable answer from the exchange: {error}")
    if isinstance(error, ccxt.BadResponse):
        return MarketDataError(f"malformed answer from the exchange: {error}")
    return RetryLater(f"exchange temporarily unavailable: {error}")


def throttled(error: Exception, now: datetime) -> RateLimited:
    status = getattr(error, "status", 429 if isinstance(error, ccxt.RateLimitExceeded) else 0)
    retry_after_s = getattr(error, "retry_after_s", None)
    if status != 418 and " 418 " not in str(error):
        return RateLimited(f"rate limited by the exchange: {error}", retry_after_s)
    found = _BANNED_UNTIL.search(str(error))
    if found is not None:
        until = utc_from_ms(int(found.group(1)))
    else:  # Binance's shortest ban is 2 minutes
        until = now + timedelta(seconds=retry_after_s if retry_after_s is not None else 120)
    return IpBanned(f"the exchange banned this IP until {until.isoformat()}: {error}", until)
