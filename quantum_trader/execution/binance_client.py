"""Binance USD-M REST through ccxt (with binance_errors.py and binance_sockets.py, the only
modules that import ccxt).

It builds ccxt's async REST client for binanceusdm (the websocket client: binance_sockets.py),
points it at Binance (demo trading in testnet mode, production in live mode) or at a
Binance-compatible stand-in or proxy (`exchange.rest_url`: a base address; the paths stay
Binance's), and translates every ccxt error into ours by what the caller must do
(`binance_errors.translate_error`). The rest of the program never sees a ccxt object or
exception.

Sending discipline (`BinanceRest.call`): every signed request carries `recvWindow`
(`exchange.recv_window_ms`), so a request that reaches Binance later than that is refused and
can never execute late. -1021 (timestamp outside recvWindow: not executed) resyncs ccxt's time
offset and resends once. An HTTP 5XX answer leaves the execution status unknown, as Binance
documents, whatever Binance code its body carries (an order is then looked up, never taken for
refused), unless the code says nothing executed (-1008 throttled). HTTP 429 and 418 are read
with their Retry-After: after a 429 nothing is sent until it has passed; after a 418 (IP
banned) nothing is sent until the ban ends, said in one log line; calls in the meantime fail
at once with RateLimited / IpBanned. A connection the event loop refuses because a closed
socket's file descriptor is still held by its old transport (a known race of uvloop and
asyncio under aiohttp) is a network failure like any other, not a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import ccxt.async_support as ccxt

from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import ExchangeMode
from quantum_trader.errors import (
    ConfigurationError,
    IpBanned,
    OperatorActionRequired,
    QuantumTraderError,
    RateLimited,
    RetryLater,
    socket_race,
)
from quantum_trader.execution.binance_errors import (
    THROTTLED,
    TIMESTAMP_OUTSIDE_RECV_WINDOW,
    Operation,
    Throttled,
    binance_code,
    throttled,
    translate_error,
)
from quantum_trader.log import get_logger
from quantum_trader.ports import Clock

log = get_logger("binance_client")
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
RequestObserver = Callable[[str, int | None], None]
REST_API_NAMES = ("fapiPublic", "fapiPublicV2", "fapiPublicV3", "fapiPrivate", "fapiPrivateV2",
                  "fapiPrivateV3")  # fmt: skip


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
        async def fetch(
            self, url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            try:
                return await super().fetch(url, method, headers, body)
            except RuntimeError as error:
                if not socket_race(error):  # ccxt wraps aiohttp's errors, not this one
                    raise
                raise ccxt.ExchangeNotAvailable(f"{self.id} {method} {url} {error}") from error

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
        if isinstance(error, THROTTLED):
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
        translated = throttled(error, self._clock.now())
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
