"""The Exchange port on Binance USD-M through ccxt's async client. The only module importing ccxt.

Routing (ccxt 4.5.90, binanceusdm): market orders go to POST /fapi/v1/order; STOP_MARKET and
TAKE_PROFIT_MARKET go through ccxt's unified `create_order` with `stopLossPrice` /
`takeProfitPrice`, which ccxt sends to Binance's Algo Order API (POST /fapi/v1/algoOrder,
algoType=CONDITIONAL, our id as `clientAlgoId`, `triggerPrice`). With `trigger=True` ccxt's
`fetch_order`, `fetch_open_orders` and `cancel_order` use GET /fapi/v1/algoOrder,
GET /fapi/v1/openAlgoOrders and DELETE /fapi/v1/algoOrder. Market data and account reads call
the raw endpoints (premiumIndex, klines, fundingRate, v3 account, v2 positionRisk, userTrades,
income) and are parsed by `binance_wire` into Decimal domain objects.

Errors are translated at this boundary (`translate_error`). Only idempotent calls are retried,
a few times with backoff; `place_order` and `cancel_conditional_order` are sent exactly once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from quantum_trader.clock import ms_from_utc
from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import (
    Balance,
    Bars,
    ExchangeMode,
    ExchangePosition,
    Fill,
    FloatArray,
    IntArray,
    MarketRules,
    Order,
    OrderKind,
    OrderRequest,
    ReasonCode,
)
from quantum_trader.errors import (
    ConfigurationError,
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    QuantumTraderError,
    RetryLater,
)
from quantum_trader.execution import binance_wire as wire
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import TIMEFRAME_MS

log = get_logger("ccxt_exchange")
T = TypeVar("T")
DEFAULT_RETRY_DELAYS_S = (0.5, 2.0)
KLINES_MAX_LIMIT = 1500
FUNDING_MAX_LIMIT = 1000
_BINANCE_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')
_REJECTION_BY_CODE = {
    -4164: ReasonCode.BELOW_MIN_NOTIONAL,
    -1111: ReasonCode.BAD_PRECISION,
    -2019: ReasonCode.INSUFFICIENT_FREE_BALANCE,
    -1121: ReasonCode.UNKNOWN_SYMBOL,
}


class Operation(StrEnum):
    """What kind of call failed: decides how an error is translated."""

    DATA = "data"  # market data: bad answers are MarketDataError
    ACCOUNT = "account"  # idempotent account reads and settings
    ORDER = "order"  # place_order: a lost answer means the order state is unknown
    CANCEL = "cancel"


def binance_code(error: BaseException) -> int | None:
    """The Binance error code quoted in a ccxt error message, if any."""
    found = _BINANCE_CODE.search(str(error))
    return int(found.group(1)) if found else None


def translate_error(
    error: Exception, operation: Operation, client_order_id: str = ""
) -> QuantumTraderError:
    """Map a ccxt error to ours by what the caller must do. Authentication first."""
    if isinstance(error, ccxt.AuthenticationError):
        return OperatorActionRequired(f"the exchange refused the API key: {error}")
    if isinstance(error, ccxt.OperationFailed):
        return _transient(error, operation, client_order_id)
    if isinstance(error, ccxt.InsufficientFunds):
        return OrderRejected(ReasonCode.INSUFFICIENT_FREE_BALANCE, str(error))
    if isinstance(error, ccxt.BadSymbol) and operation is not Operation.DATA:
        return OrderRejected(ReasonCode.UNKNOWN_SYMBOL, str(error))
    if operation is Operation.DATA:
        return MarketDataError(f"market data request failed: {error}")
    if isinstance(error, ccxt.InvalidOrder | ccxt.BadRequest):
        if operation is Operation.ACCOUNT:
            return OperatorActionRequired(f"the exchange refused an account request: {error}")
        code = binance_code(error)
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


def _loopback_client(bases: Sequence[str]) -> Any:
    """binanceusdm that classifies errors from overridden base URLs as USD-M (fapi) errors.

    ccxt picks its per-market error table from the URL's host; without this, a stand-in server
    on 127.0.0.1 would get the generic table and translate differently than production.
    """

    class _Client(ccxt.binanceusdm):  # type: ignore[misc]
        def get_exceptions_by_url(self, url: str | None, exact_or_broad: str) -> Any:
            if url is not None and url.startswith(tuple(bases)):
                return self.safe_dict(self.exceptions["linear"], exact_or_broad, {})
            return super().get_exceptions_by_url(url, exact_or_broad)

    return _Client


def to_wire(value: Decimal) -> str:
    """A Decimal as a plain decimal string (no exponent), as Binance expects."""
    return format(value.normalize(), "f")


class CcxtExchange:
    """Binance USD-M futures (demo trading for mode=testnet, production for mode=live)."""

    def __init__(self, client: Any, mode: ExchangeMode, retry_delays_s: Sequence[float]) -> None:
        self._client = client
        self._mode = mode
        self._retry_delays_s = tuple(retry_delays_s)
        self._rules: dict[str, MarketRules] = {}
        self._id_by_symbol: dict[str, str] = {}
        self._symbol_by_id: dict[str, str] = {}

    @classmethod
    def create(
        cls,
        settings: ExchangeSettings,
        *,
        api_urls: Mapping[str, str] | None = None,
        retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
        rate_limit: bool = True,
    ) -> CcxtExchange:
        """Build the adapter. `api_urls` replaces ccxt REST base URLs by name (e.g.
        "fapiPrivate"), for the loopback stand-in; `rate_limit` keeps ccxt's client throttle."""
        if settings.mode is ExchangeMode.PAPER:
            raise ConfigurationError(["exchange.mode: paper does not use the ccxt exchange"])
        if settings.api_key is None or settings.api_secret is None:
            raise ConfigurationError(["exchange.api_key and exchange.api_secret are required"])
        factory = _loopback_client(list(api_urls.values())) if api_urls else ccxt.binanceusdm
        client = factory(
            {
                "apiKey": settings.api_key.get_secret_value(),
                "secret": settings.api_secret.get_secret_value(),
                "timeout": round(settings.request_timeout_s * 1000),
                "enableRateLimit": rate_limit,
                "options": {"fetchCurrencies": False, "warnOnFetchOpenOrdersWithoutSymbol": False},
            }
        )
        if settings.mode is ExchangeMode.TESTNET:
            client.enable_demo_trading(True)
        if api_urls:
            _override_urls(client, api_urls)
        return cls(client, settings.mode, retry_delays_s)

    def __repr__(self) -> str:
        return f"CcxtExchange(mode={self._mode}, markets={len(self._rules)})"

    # -- calls -------------------------------------------------------------------------------

    async def _retrying(self, operation: Operation, call: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent call, retrying transient failures with backoff."""
        for delay in (*self._retry_delays_s, None):
            try:
                return await call()
            except ccxt.BaseError as error:
                translated = translate_error(error, operation)
                if delay is None or not isinstance(translated, RetryLater):
                    raise translated from error
                log.warning("exchange_retry", operation=operation, delay_s=delay, error=str(error))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, operation: Operation, method: str, params: Mapping[str, Any]) -> Any:
        """Call a raw ccxt endpoint method (e.g. "fapiPublicGetKlines") with retries."""
        endpoint = getattr(self._client, method)
        return await self._retrying(operation, lambda: endpoint(dict(params)))

    # -- markets -----------------------------------------------------------------------------

    async def load_markets(self) -> Mapping[str, MarketRules]:
        """Rules of every trading USDT-settled perpetual, by ccxt symbol."""
        markets = await self._retrying(Operation.DATA, self._client.load_markets)
        for symbol, market in markets.items():
            if market.get("swap") and market.get("linear") and market.get("settle") == "USDT":
                self._rules[symbol] = wire.parse_market_rules(symbol, market["info"])
                self._id_by_symbol[symbol] = market["id"]
                self._symbol_by_id[market["id"]] = symbol
        return dict(self._rules)

    async def fetch_exchange_info(self) -> dict[str, Any]:
        """Binance's GET /fapi/v1/exchangeInfo answer as sent (for the saved market rules)."""
        payload = await self._read(Operation.DATA, "fapiPublicGetExchangeInfo", {})
        if not isinstance(payload, dict):
            raise MarketDataError("exchangeInfo: expected a JSON object")
        return payload

    async def fetch_tickers_24h(self) -> list[Any]:
        """Binance's GET /fapi/v1/ticker/24hr answer for every symbol (one request, weight 40)."""
        payload = await self._read(Operation.DATA, "fapiPublicGetTicker24hr", {})
        return list(wire.as_list(payload, "ticker/24hr"))

    async def _market_id(self, symbol: str, operation: Operation) -> str:
        if not self._rules:
            await self.load_markets()
        if symbol in self._id_by_symbol:
            return self._id_by_symbol[symbol]
        if operation is Operation.DATA:
            raise MarketDataError(f"unknown symbol {symbol!r} on Binance USD-M")
        raise OrderRejected(ReasonCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")

    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """Mark prices of `symbols` from ONE premiumIndex request for all symbols."""
        for symbol in symbols:
            await self._market_id(symbol, Operation.DATA)
        payload = await self._read(Operation.DATA, "fapiPublicGetPremiumIndex", {})
        return wire.parse_mark_prices(payload, self._symbol_by_id, symbols)

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> Bars:
        """Up to `limit` bars opening at or after `since_ms`; the last may still be forming."""
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(f"unsupported timeframe {timeframe!r}")
        market_id = await self._market_id(symbol, Operation.DATA)
        params = {
            "symbol": market_id,
            "interval": timeframe,
            "startTime": since_ms,
            "limit": min(limit, KLINES_MAX_LIMIT),
        }
        payload = await self._read(Operation.DATA, "fapiPublicGetKlines", params)
        return wire.parse_klines(payload, symbol, TIMEFRAME_MS[timeframe])

    async def fetch_funding_rates(self, symbol: str, since_ms: int) -> tuple[IntArray, FloatArray]:
        """Funding settlements (time ms, rate) from `since_ms`, at most 1000, oldest first."""
        market_id = await self._market_id(symbol, Operation.DATA)
        params = {"symbol": market_id, "startTime": since_ms, "limit": FUNDING_MAX_LIMIT}
        payload = await self._read(Operation.DATA, "fapiPublicGetFundingRate", params)
        return wire.parse_funding_rates(payload, symbol)

    # -- account -----------------------------------------------------------------------------

    async def fetch_balance(self) -> Balance:
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateV3GetAccount", {})
        return wire.parse_balance(payload)

    async def fetch_positions(self) -> list[ExchangePosition]:
        if not self._rules:
            await self.load_markets()
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateV2GetPositionRisk", {})
        return wire.parse_positions(payload, self._symbol_by_id)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {"symbol": market_id, "leverage": leverage}
        await self._read(Operation.ACCOUNT, "fapiPrivatePostLeverage", params)

    async def prepare_account(self, symbols: Sequence[str], leverage: int) -> None:
        """Check one-way and single-asset modes, then set ISOLATED margin and `leverage`.

        Raises OperatorActionRequired, naming what to change, when the account is not usable.
        """
        dual = await self._read(Operation.ACCOUNT, "fapiPrivateGetPositionSideDual", {})
        if _flag(dual, "dualSidePosition"):
            raise OperatorActionRequired(
                "the Binance futures account is in hedge mode; switch it to one-way position "
                "mode (Preferences → Position Mode) before starting"
            )
        multi = await self._read(Operation.ACCOUNT, "fapiPrivateGetMultiAssetsMargin", {})
        if _flag(multi, "multiAssetsMargin"):
            raise OperatorActionRequired(
                "the Binance futures account uses multi-assets margin; switch it to "
                "single-asset mode before starting"
            )
        for symbol in symbols:
            await self._set_isolated(symbol)
            await self.set_leverage(symbol, leverage)
        log.info("exchange_account_prepared", symbols=len(symbols), leverage=leverage)

    async def _set_isolated(self, symbol: str) -> None:
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {"symbol": market_id, "marginType": "ISOLATED"}

        async def set_isolated() -> None:
            try:
                await self._client.fapiPrivatePostMarginType(params)
            except ccxt.MarginModeAlreadySet:
                return

        try:
            await self._retrying(Operation.ACCOUNT, set_isolated)
        except OperatorActionRequired as error:
            raise OperatorActionRequired(
                f"cannot set ISOLATED margin on {symbol} (an open position or order may "
                f"block it): {error}"
            ) from error

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        """Funding paid on `symbol` since `since` (positive = paid), from up to 1000 settlements."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {
            "symbol": market_id,
            "incomeType": "FUNDING_FEE",
            "startTime": ms_from_utc(since),
            "limit": 1000,
        }
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateGetIncome", params)
        return wire.parse_funding_income(payload)

    # -- orders ------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """Send once. OrderRejected if refused; OrderStateUnknown if the answer is lost."""
        rules = await self._rules_for(request.symbol)
        quantity = rules.round_quantity_down(request.quantity)
        if quantity <= 0:
            raise OrderRejected(ReasonCode.BELOW_MIN_QUANTITY, f"{request.quantity} rounds to 0")
        params = _order_params(request, rules)
        try:
            result = await self._client.create_order(
                request.symbol, "market", request.side.lower(), to_wire(quantity), None, params
            )
            return _parse_placed(result["info"], request)
        except ccxt.BaseError as error:
            raise translate_error(error, Operation.ORDER, request.client_order_id) from error
        except (MarketDataError, KeyError, TypeError, ValueError) as error:
            raise OrderStateUnknown(
                request.client_order_id, f"unreadable answer to an order request: {error}"
            ) from error

    async def _rules_for(self, symbol: str) -> MarketRules:
        await self._market_id(symbol, Operation.ORDER)
        return self._rules[symbol]

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        """Look up a plain order, then a conditional (algo) order, by our client id."""
        await self._market_id(symbol, Operation.ACCOUNT)
        for conditional in (False, True):
            info = await self._lookup(symbol, client_order_id, conditional)
            if info is not None:
                parse = wire.parse_algo_order if conditional else wire.parse_order
                return parse(info, symbol)
        return None

    async def _lookup(self, symbol: str, client_order_id: str, conditional: bool) -> Any:
        params = {"clientOrderId": client_order_id, "trigger": conditional}

        async def lookup() -> Any:
            try:
                result = await self._client.fetch_order("", symbol, params)
            except ccxt.OrderNotFound:
                return None
            return result["info"]

        return await self._retrying(Operation.ACCOUNT, lookup)

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        """Open STOP_MARKET / TAKE_PROFIT_MARKET algo orders, of one symbol or all."""
        if symbol is not None:
            await self._market_id(symbol, Operation.ACCOUNT)
        elif not self._rules:
            await self.load_markets()
        results = await self._retrying(
            Operation.ACCOUNT,
            lambda: self._client.fetch_open_orders(symbol, None, None, {"trigger": True}),
        )
        orders = []
        for result in results:
            market_id = str(wire.field(result["info"], "symbol", "openAlgoOrders"))
            if market_id in self._symbol_by_id:
                orders.append(wire.parse_algo_order(result["info"], self._symbol_by_id[market_id]))
        return orders

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel once; an order the exchange no longer knows (filled, cancelled) is fine."""
        await self._market_id(symbol, Operation.CANCEL)
        params = {"clientOrderId": client_order_id, "trigger": True}
        try:
            await self._client.cancel_order("", symbol, params)
        except ccxt.OrderNotFound:
            log.info(
                "conditional_order_already_gone", symbol=symbol, client_order_id=client_order_id
            )
        except ccxt.BaseError as error:
            raise translate_error(error, Operation.CANCEL, client_order_id) from error

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        """Executions of our order (for a triggered stop: of the market order it started)."""
        order = await self.fetch_order(symbol, client_order_id)
        exchange_id = None
        if order is not None:
            exchange_id = order.detail if order.kind.is_conditional else order.exchange_order_id
        if not exchange_id:
            return []
        params = {"symbol": self._id_by_symbol[symbol], "orderId": exchange_id}
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateGetUserTrades", params)
        return wire.parse_fills(payload, symbol, client_order_id)

    async def close(self) -> None:
        await self._client.close()


def _override_urls(client: Any, api_urls: Mapping[str, str]) -> None:
    unknown = sorted(set(api_urls) - set(client.urls["api"]))
    if unknown:
        raise ConfigurationError([f"unknown ccxt API names in api_urls: {unknown}"])
    client.urls["api"].update(api_urls)


def _flag(payload: Any, name: str) -> bool:
    value = wire.field(payload, name, name)
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "false"}:
        return str(value).lower() == "true"
    raise MarketDataError(f"{name}: expected true or false, got {value!r}")


def _order_params(request: OrderRequest, rules: MarketRules) -> dict[str, Any]:
    params: dict[str, Any] = {"clientOrderId": request.client_order_id}
    if request.reduce_only:
        params["reduceOnly"] = True
    if request.kind.is_conditional:
        if request.trigger_price is None or request.trigger_price <= 0:
            raise OrderRejected(ReasonCode.ORDER_REJECTED, "a conditional order needs a trigger")
        key = "stopLossPrice" if request.kind is OrderKind.STOP_MARKET else "takeProfitPrice"
        params[key] = to_wire(rules.round_price(request.trigger_price))
    return params


def _parse_placed(info: Any, request: OrderRequest) -> Order:
    if request.kind.is_conditional:
        return wire.parse_algo_order(info, request.symbol)
    return wire.parse_order(info, request.symbol)
