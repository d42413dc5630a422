"""Binance USD-M through ccxt: the one module that imports ccxt.

It builds ccxt's async REST client and ccxt.pro's websocket client for binanceusdm, points
them at Binance (demo trading in testnet mode, production in live mode) or at a
Binance-compatible stand-in or proxy (`exchange.rest_url`, `exchange.ws_url`: base addresses;
the paths stay Binance's), and translates every ccxt error into ours by what the caller must
do (`translate_error`). The rest of the program never sees a ccxt object or exception.

Sending discipline (`BinanceRest.call`): every signed request carries `recvWindow`
(`exchange.recv_window_ms`), so a request that reaches Binance later than that is refused and
can never execute late. -1021 (timestamp outside recvWindow: not executed) resyncs ccxt's time
offset and resends once. An HTTP 5XX answer leaves the execution status unknown, as Binance
documents, whatever Binance code its body carries (an order is then looked up, never taken for
refused), unless the code says nothing executed (-1008 throttled). HTTP 429 and 418 are read
with their Retry-After: after a 429 nothing is sent until it has passed; after a 418 (IP
banned) nothing is sent until the ban ends, said in one log line; calls in the meantime fail
at once with RateLimited / IpBanned.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import ccxt.pro as ccxt_pro

from quantum_trader.clock import LiveClock, utc_from_ms
from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import ExchangeMode, ReasonCode
from quantum_trader.errors import (
    ConfigurationError,
    IpBanned,
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    QuantumTraderError,
    RateLimited,
    RetryLater,
)
from quantum_trader.log import get_logger
from quantum_trader.ports import Clock

log = get_logger("binance_client")
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
RequestObserver = Callable[[str, int | None], None]
_BINANCE_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")
_REJECTION_BY_CODE = {
    -4164: ReasonCode.BELOW_MIN_NOTIONAL,
    -4005: ReasonCode.ABOVE_MAX_QUANTITY,  # "Quantity greater than max quantity."
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
REST_API_NAMES = ("fapiPublic", "fapiPublicV2", "fapiPublicV3", "fapiPrivate", "fapiPrivateV2",
                  "fapiPrivateV3")  # fmt: skip


_THROTTLED = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)  # HTTP 418 / 429


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
    if isinstance(error, _THROTTLED):
        return _throttled(error, now or LiveClock().now())
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
    if isinstance(error, ccxt.InvalidOrder | ccxt.BadRequest):
        if operation is Operation.ACCOUNT:
            return OperatorActionRequired(f"the exchange refused an account request: {error}")
        return OrderRejected(
            _REJECTION_BY_CODE.get(code or 0, ReasonCode.ORDER_REJECTED), str(error)
        )
    if operation is Operation.ORDER:
        return OrderRejected(ReasonCode.ORDER_REJECTED, str(error))
    return RetryLater(f"exchange error: {error}")


def _transient(error: Exception, operation: Operation, client_order_id: str) -> QuantumTraderError:
    if operation is Operation.ORDER:
        return OrderStateUnknown(client_order_id, f"no reliable answer from the exchange: {error}")
    if isinstance(error, ccxt.BadResponse):
        return MarketDataError(f"malformed answer from the exchange: {error}")
    return RetryLater(f"exchange temporarily unavailable: {error}")


def _throttled(error: Exception, now: datetime) -> RateLimited:
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


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _client_class(base: type[Any], custom_bases: Sequence[str]) -> type[Any]:
    """A binanceusdm class that keeps Retry-After and classifies errors from custom base
    addresses with Binance's USD-M (fapi) table, as it does for Binance's own hosts."""

    class _Client(base):  # type: ignore[misc]
        def get_exceptions_by_url(self, url: str | None, exact_or_broad: str) -> Any:
            if url is not None and custom_bases and url.startswith(tuple(custom_bases)):
                return self.safe_dict(self.exceptions["linear"], exact_or_broad, {})
            return super().get_exceptions_by_url(url, exact_or_broad)

        def handle_errors(
            self, code: int, reason: str, url: str, method: str, headers: Any, body: str,
            response: Any, request_headers: Any, request_body: Any,
        ) -> Any:  # fmt: skip
            if code in (418, 429):
                message = f"{self.id} {code} {reason} {body}"
                raise Throttled(message, code, _retry_after(headers))
            if code >= 500:  # Binance: the execution status is unknown, whatever the body says
                raise ccxt.ExchangeNotAvailable(f"{self.id} {code} {reason} {body}")
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )

    return _Client


def rest_api_urls(rest_url: str) -> dict[str, str]:
    """ccxt's USD-M REST API names → paths under a base address (Binance's paths)."""
    versions = {"fapiPublic": "v1", "fapiPrivate": "v1"}
    return {
        name: f"{rest_url}/fapi/{versions.get(name, name[-2:].lower())}" for name in REST_API_NAMES
    }


def _credentials(settings: ExchangeSettings) -> dict[str, str]:
    if settings.api_key is None or settings.api_secret is None:
        raise ConfigurationError(["exchange.api_key and exchange.api_secret are required"])
    return {
        "apiKey": settings.api_key.get_secret_value(),
        "secret": settings.api_secret.get_secret_value(),
    }


def build_rest_client(
    settings: ExchangeSettings, api_urls: Mapping[str, str] | None, rate_limit: bool
) -> Any:
    """ccxt's async binanceusdm for `settings` (URLs: `api_urls` by ccxt API name, else
    `exchange.rest_url`, else Binance). `rate_limit` keeps ccxt's client-side throttle."""
    if settings.mode is ExchangeMode.PAPER:
        raise ConfigurationError(["exchange.mode: paper does not use the ccxt exchange"])
    urls = dict(api_urls or (rest_api_urls(settings.rest_url) if settings.rest_url else {}))
    factory = _client_class(ccxt.binanceusdm, sorted(set(urls.values())))
    client = factory(
        {
            **_credentials(settings),
            "timeout": round(settings.request_timeout_s * 1000),
            "enableRateLimit": rate_limit,
            "options": {
                "fetchCurrencies": False,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
                "recvWindow": settings.recv_window_ms,
            },
        }
    )
    if settings.mode is ExchangeMode.TESTNET:
        client.enable_demo_trading(True)
    unknown = sorted(set(urls) - set(client.urls["api"]))
    if unknown:
        raise ConfigurationError([f"unknown ccxt API names in api_urls: {unknown}"])
    client.urls["api"].update(urls)
    return client


class BinanceRest:
    """One ccxt REST client behind the sending discipline of the module docstring."""

    def __init__(self, client: Any, clock: Clock, recv_window_ms: int) -> None:
        self._client = client
        self._clock = clock
        self.recv_window_s = recv_window_ms / 1000
        self._blocked_until: datetime | None = None
        self._block: RateLimited | None = None
        # Told about every request and the weight Binance says this IP used (metrics).
        self.on_request: RequestObserver | None = None

    def now(self) -> datetime:
        """The time by the clock the client was given (real time unless a test's)."""
        return self._clock.now()

    def _note_request(self, operation: Operation) -> None:
        if self.on_request is None:
            return
        headers = self._client.last_response_headers or {}
        used = next((str(v) for k, v in headers.items() if k.lower() == USED_WEIGHT_HEADER), "")
        self.on_request(operation.value, int(used) if used.isdigit() else None)

    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        """ccxt's markets (exchangeInfo), by unified symbol; `reload` asks Binance again
        instead of ccxt's cache (a symbol listed since start)."""
        self._check_gate()
        try:
            markets: dict[str, Any] = await self._client.load_markets(reload)
        except ccxt.BaseError as error:
            raise self._translate(error, Operation.DATA, "") from error
        return markets

    async def call(
        self,
        endpoint: str,
        params: Mapping[str, Any],
        operation: Operation,
        *,
        client_order_id: str = "",
        absent: frozenset[int] = frozenset(),
        lookup: bool = False,
    ) -> Any:
        """Send one request to a raw ccxt endpoint method (e.g. "fapiPrivatePostOrder").

        Returns Binance's JSON, or None when it answered with one of the `absent` codes
        (e.g. -2013, order does not exist). Raises our errors (`translate_error`). A `lookup`
        (an order or its trades, read by client id) that Binance refuses with a code other
        than `absent` and not for the API key is RetryLater, not OperatorActionRequired: a
        person cannot fix one order's lookup, and the caller then acts as for a read outage.
        """
        method = getattr(self._client, endpoint)
        for attempt in (1, 2):
            self._check_gate()
            try:
                return await method(dict(params))
            except ccxt.BaseError as error:
                code = binance_code(error)
                if code is not None and code in absent:
                    return None
                timestamp = code == TIMESTAMP_OUTSIDE_RECV_WINDOW or isinstance(
                    error, ccxt.InvalidNonce
                )
                if not (timestamp and attempt == 1):
                    raise self._translate(error, operation, client_order_id, lookup) from error
            finally:
                self._note_request(operation)
            await self._resync_time()
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(
        self, error: Exception, operation: Operation, client_order_id: str, lookup: bool = False
    ) -> QuantumTraderError:
        if isinstance(error, _THROTTLED):
            return self._hold_off(error)
        translated = translate_error(error, operation, client_order_id, self._clock.now())
        refused = isinstance(translated, OperatorActionRequired)
        if lookup and refused and not isinstance(error, ccxt.AuthenticationError):
            return RetryLater(f"the exchange refused an order lookup: {error}")
        return translated

    def _check_gate(self) -> None:
        if self._blocked_until is None or self._block is None:
            return
        if self._clock.now() >= self._blocked_until:
            self._blocked_until = self._block = None
            return
        raise self._block

    def _hold_off(self, error: Exception) -> RateLimited:
        translated = _throttled(error, self._clock.now())
        if isinstance(translated, IpBanned):
            if self._blocked_until != translated.until:
                log.error("exchange_ip_banned", until=translated.until.isoformat())
            self._blocked_until, self._block = translated.until, translated
        elif translated.retry_after_s:
            until = self._clock.now() + timedelta(seconds=translated.retry_after_s)
            log.warning("exchange_rate_limited", retry_after_s=translated.retry_after_s)
            self._blocked_until, self._block = until, translated
        return translated

    async def _resync_time(self) -> None:
        try:
            offset_ms = await self._client.load_time_difference({"type": "future"})
        except ccxt.BaseError as error:
            raise self._translate(error, Operation.ACCOUNT, "") from error
        log.warning("exchange_time_resynced", offset_ms=offset_ms)

    async def close(self) -> None:
        await self._client.close()


class StreamClosed(RetryLater):
    """A websocket stream ended (closed by the server, broken, refused or dropped by us)."""


MessageSink = Callable[[Any], None]


class BinanceSockets:
    """ccxt.pro's binanceusdm websocket client, reduced to what the streams need: open one
    stream and hand each decoded message to a callback, in arrival order."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ids = itertools.count(1)

    @classmethod
    def create(cls, settings: ExchangeSettings) -> BinanceSockets:
        """Websocket addresses of Binance (demo in testnet mode), or of `exchange.ws_url`.

        A connection is also declared dead when the server answers no ping for twice
        `exchange.stream_silence_s` (ccxt's keep-alive, in real time).
        """
        client = _socket_class()({"options": {"ws": {"cost": 0}}, "enableRateLimit": False})
        client.streaming["keepAlive"] = round(settings.stream_silence_s * 1000)
        if settings.mode is ExchangeMode.TESTNET:
            client.enable_demo_trading(True)
        if settings.ws_url:
            client.urls["api"]["ws"]["linear"] = f"{settings.ws_url}/ws"
        return cls(client)

    def market_url(self) -> str:
        """The market-data stream address (Binance's /market route), as ccxt builds it."""
        base = self._client.get_ws_url("linear", "market")
        return f"{base}/{self._client.stream('linear', 'quantum-trader-market')}"

    def user_url(self, listen_key: str, events: Sequence[str]) -> str:
        """The user-data stream of `listen_key` (/private route), filtered to `events`."""
        return f"{self._client.get_private_ws_url('linear', listen_key)}&events={'/'.join(events)}"

    async def open(
        self, url: str, subscribe: Sequence[str], sink: MessageSink
    ) -> asyncio.Task[None]:
        """Connect to `url`, sending SUBSCRIBE for `subscribe`; return once connected.

        Every message then goes to `sink`; the returned task ends with StreamClosed when the
        stream does. Raises StreamClosed when the connection cannot be made.
        """
        self._client.ws_dial_backoff = {}  # the caller backs off, on its own clock
        self._client.sinks[url] = sink
        request = None
        if subscribe:
            request = {"method": "SUBSCRIBE", "params": list(subscribe), "id": next(self._ids)}
        held = self._client.watch(url, _HOLD, request, _HOLD)
        connected = self._client.client(url).connected
        closed = asyncio.ensure_future(self._hold(url, held))
        try:
            await asyncio.wait({connected, closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            closed.cancel()
            raise
        if closed.done():
            await closed
        return closed

    async def _hold(self, url: str, held: Any) -> None:
        try:
            await held
        except (ccxt.BaseError, aiohttp.ClientError, OSError) as error:
            # ccxt wraps most failures in its own errors, but not a write to a connection
            # that is closing (aiohttp's ClientConnectionResetError, from SUBSCRIBE sent as
            # the server hangs up): the stream is closed all the same, and is reconnected.
            await self.drop(url)
            raise StreamClosed(f"stream closed: {type(error).__name__}") from None
        raise StreamClosed("stream closed")

    async def drop(self, url: str) -> None:
        """Close the connection to `url` now (a silent or untrusted stream)."""
        self._client.sinks.pop(url, None)
        client = self._client.clients.pop(url, None)
        if client is not None:
            client.reject(ccxt.NetworkError("dropped by quantum trader"))
            await client.close()

    async def close(self) -> None:
        await self._client.close()


_HOLD = "quantum-trader-hold"


def _socket_class() -> type[Any]:
    class _Sockets(ccxt_pro.binanceusdm):  # type: ignore[misc]
        """Every message goes to the sink of its connection; ccxt's own parsing is unused."""

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            self.sinks: dict[str, MessageSink] = {}

        def handle_message(self, client: Any, message: Any) -> None:
            if isinstance(message, dict) and "error" in message:
                client.reset(ccxt.NetworkError(f"stream error answer: {message['error']}"))
                return
            if isinstance(message, dict) and "result" in message and "id" in message:
                return  # the answer to our SUBSCRIBE
            sink = self.sinks.get(client.url)
            if sink is None:
                return
            try:
                sink(message)
            except Exception as error:  # the receive loop must not die
                log.error("stream_message_failed", error=str(error))
                client.reset(ccxt.NetworkError(f"message handler failed: {error}"))

    return _Sockets
