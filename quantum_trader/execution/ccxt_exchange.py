"""The Exchange port on Binance USD-M, coded to Binance's published REST API.

Every call goes to a raw endpoint through `binance_client.BinanceRest` (ccxt's signing and
transport; recvWindow, Retry-After and time resync there) and is parsed by `binance_wire`
into Decimal domain objects. Routes: market orders POST /fapi/v1/order (newOrderRespType
RESULT, so the answer carries status and executed quantity); STOP_MARKET / TAKE_PROFIT_MARKET
go to the Algo Order API (POST/GET/DELETE /fapi/v1/algoOrder, GET /fapi/v1/openAlgoOrders,
algoType CONDITIONAL, our id as clientAlgoId); positions GET /fapi/v3/positionRisk with the
leverage from GET /fapi/v1/symbolConfig (v3 rows carry none); listen keys /fapi/v1/listenKey.

Trigger price: conditional orders are sent with workingType=MARK_PRICE and priceProtect=FALSE.
The keeper and the monitor reason in mark price (the stream they read is the mark price),
liquidation is computed on it, and a thin book's last-price wick cannot fire a stop on it;
price protection stays off because it can hold a triggered stop back exactly when last and
mark prices part, which is when a protective stop must not wait.

A triggered stop (FINISHED) is booked from its actual order (GET /fapi/v1/order by
actualOrderId: its status, executedQty and avgPrice, read whether or not userTrades lists its
trades yet) or, when Binance reports no actual order id, from the trades on its side in the
trigger's time window (GET /fapi/v1/userTrades); while that is not known yet the lookup fails
(RetryLater), never reading as EXPIRED with nothing executed. A commission Binance charged in
BNB is valued in USDT at BNBUSDT's 1m close of its minute (fee_prices.py). Only idempotent reads are
retried, a few times with backoff; orders and cancels are sent once (a -1021 refusal is resent
by BinanceRest: it executed nothing), and a cancel is done only when Binance says "success".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np

from quantum_trader.clock import LiveClock, ms_from_utc
from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import (
    ZERO,
    Balance,
    Bars,
    ExchangeMode,
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    Fill,
    FloatArray,
    IntArray,
    MarketRules,
    Order,
    OrderRequest,
    OrderSide,
    ReasonCode,
    SnapshotSource,
)
from quantum_trader.errors import (
    MarketDataError,
    OperatorActionRequired,
    OrderRejected,
    OrderStateUnknown,
    RateLimited,
    RetryLater,
)
from quantum_trader.execution import binance_fills as trades
from quantum_trader.execution import binance_wire as wire
from quantum_trader.execution.binance_account_trades import TRADES_PAGE, account_trades
from quantum_trader.execution.binance_brackets import BracketAnswer, parse_brackets
from quantum_trader.execution.binance_client import (
    BinanceRest,
    Operation,
    RequestObserver,
    build_rest_client,
    translate_error,
)
from quantum_trader.execution.binance_force_orders import force_orders
from quantum_trader.execution.binance_requests import order_params, to_wire
from quantum_trader.execution.fee_prices import KLINES_ENDPOINT, CommissionPrices, fills_in_usdt
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import TIMEFRAME_MS
from quantum_trader.ports import Clock

__all__ = ["CcxtExchange", "Operation", "to_wire", "translate_error"]

log = get_logger("ccxt_exchange")
T = TypeVar("T")
DEFAULT_RETRY_DELAYS_S = (0.5, 2.0)
KLINES_MAX_LIMIT = 1500
FUNDING_MAX_LIMIT = 1000
TRIGGER_SLACK_MS = 5_000
# A FINISHED stop reported without its actual order id whose window lists no trade this long
# after it finished executed nothing (before, its trades may not be listed yet).
TRADES_LISTED_WITHIN_MS = 60_000
# Binance's order query no longer finds an order that ended CANCELED or EXPIRED with no
# filled trade 3 days after it was created (GET /fapi/v1/order, "These orders will not be found").
FORGOTTEN_AFTER_MS = 3 * 86_400_000
INCOME_PAGE = 1_000  # GET /fapi/v1/income: default 100, at most 1,000
INCOME_KEPT = timedelta(days=90)  # "only contains data for the last three months"
NOT_FOUND = frozenset({-2013, -2011})  # "Order does not exist", "Unknown order sent"
LISTEN_KEY_MISSING = frozenset({-1125})
MARGIN_TYPE_ALREADY_SET = frozenset({-4046})
# Binance refuses to change the leverage of a symbol that holds a position: -4161 (lower it in
# isolated margin), -2028 (lower it: margin insufficient), -2027 (raise it past the bracket).
LEVERAGE_HELD = frozenset({-4161, -2027, -2028})


class CcxtExchange:
    """Binance USD-M futures (demo trading for mode=testnet, production for mode=live)."""

    def __init__(self, rest: BinanceRest, mode: ExchangeMode, retry_delays_s: Sequence[float]):
        self._rest = rest
        self._mode = mode
        self._retry_delays_s = tuple(retry_delays_s)
        self._rules: dict[str, MarketRules] = {}
        self._id_by_symbol: dict[str, str] = {}
        self._symbol_by_id: dict[str, str] = {}
        self._leverage: dict[str, int] = {}
        self._fee_prices = CommissionPrices(
            lambda params: self._read(Operation.DATA, KLINES_ENDPOINT, params)
        )

    @classmethod
    def create(
        cls,
        settings: ExchangeSettings,
        *,
        api_urls: Mapping[str, str] | None = None,
        retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
        rate_limit: bool = True,
        clock: Clock | None = None,
    ) -> CcxtExchange:
        """Build the adapter: Binance, or `exchange.rest_url` (a stand-in or proxy), or
        `api_urls` (ccxt REST base URLs by name). `rate_limit` keeps ccxt's client throttle;
        `clock` (default real time) times Retry-After and bans."""
        client = build_rest_client(settings, api_urls, rate_limit)
        rest = BinanceRest(client, clock or LiveClock(), settings.recv_window_ms)
        return cls(rest, settings.mode, retry_delays_s)

    @property
    def on_request(self) -> RequestObserver | None:
        """Told about every request and the weight Binance says this IP used (metrics)."""
        return self._rest.on_request

    @on_request.setter
    def on_request(self, observer: RequestObserver | None) -> None:
        self._rest.on_request = observer

    def __repr__(self) -> str:
        return f"CcxtExchange(mode={self._mode}, markets={len(self._rules)})"

    @property
    def recv_window_s(self) -> float:
        """Binance refuses a signed request older than this: one lost longer never executes."""
        return self._rest.recv_window_s

    @property
    def id_by_symbol(self) -> Mapping[str, str]:
        """Binance market ids by ccxt symbol (BTC/USDT:USDT → BTCUSDT), once markets loaded."""
        return self._id_by_symbol

    @property
    def symbol_by_id(self) -> Mapping[str, str]:
        """ccxt symbols by Binance market id (BTCUSDT → BTC/USDT:USDT), once markets loaded."""
        return self._symbol_by_id

    def leverage_by_symbol(self) -> dict[str, int]:
        """The leverage of each symbol as last set or read (POST leverage, symbolConfig)."""
        return {self._symbol_by_id[i]: lev for i, lev in self._leverage.items()
                if i in self._symbol_by_id}  # fmt: skip

    # -- calls -------------------------------------------------------------------------------

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent call, retrying transient failures (not rate limits) with backoff."""
        for delay in (*self._retry_delays_s, None):
            try:
                return await call()
            except RetryLater as error:
                if delay is None or isinstance(error, RateLimited):
                    raise
                log.warning("exchange_retry", delay_s=delay, error=str(error))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(
        self,
        operation: Operation,
        endpoint: str,
        params: Mapping[str, Any],
        absent: frozenset[int] = frozenset(),
        *,
        lookup: bool = False,
    ) -> Any:
        """An idempotent raw endpoint call (e.g. "fapiPublicGetKlines") with retries;
        `lookup`: one order or its trades (see `BinanceRest.call`)."""
        return await self._retrying(
            lambda: self._rest.call(endpoint, params, operation, absent=absent, lookup=lookup)
        )

    # -- markets -----------------------------------------------------------------------------

    async def load_markets(self, reload: bool = False) -> Mapping[str, MarketRules]:
        """Rules of every trading USDT-settled perpetual, by ccxt symbol (`reload`: fresh
        from Binance, not ccxt's cache)."""
        markets = await self._retrying(lambda: self._rest.load_markets(reload))
        for symbol, market in markets.items():
            if market.get("swap") and market.get("linear") and market.get("settle") == "USDT":
                self._rules[symbol] = wire.parse_market_rules(symbol, market["info"])
                self._id_by_symbol[symbol] = market["id"]
                self._symbol_by_id[market["id"]] = symbol
        return dict(self._rules)

    def adopt_rules(self, rules: Mapping[str, MarketRules]) -> None:
        """Round and format orders with `rules` from now on: the universe's reading of
        exchangeInfo at each refresh (so a tick or step Binance changes reaches the orders
        too, not only the sizer and the keeper, without a new start)."""
        self._rules.update({s: r for s, r in rules.items() if s in self._id_by_symbol})

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

    async def fetch_leverage_brackets(self) -> BracketAnswer:
        """Every symbol's leverage brackets (GET /fapi/v1/leverageBracket, signed, weight 1);
        MarketDataError when the answer is not Binance's documented shape."""
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateGetLeverageBracket", {})
        return parse_brackets(payload)

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
        """Up to `limit` bars opening at or after `since_ms`; the last may still be forming.

        Bars opening before `since_ms` (a server that ignores startTime) are dropped.
        """
        if timeframe not in TIMEFRAME_MS:
            raise MarketDataError(f"unsupported timeframe {timeframe!r}")
        market_id = await self._market_id(symbol, Operation.DATA)
        params = {
            "symbol": market_id,
            "interval": timeframe,
            "startTime": since_ms,
            "limit": min(limit, KLINES_MAX_LIMIT),
        }
        payload = await self._read(Operation.DATA, KLINES_ENDPOINT, params)
        bars = wire.parse_klines(payload, symbol, TIMEFRAME_MS[timeframe])
        first = int(np.searchsorted(bars.time_ms, since_ms, side="left"))
        return bars.slice(first, len(bars)) if first else bars

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
        """Non-zero positions (GET /fapi/v3/positionRisk, weight 5). The leverage comes from
        what we set, or one GET /fapi/v1/symbolConfig when a position's symbol is new to us."""
        if not self._rules:
            await self.load_markets()
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateV3GetPositionRisk", {})
        held = {
            str(row.get("symbol"))
            for row in wire.as_list(payload, "positionRisk")
            if str(row.get("positionAmt", "0")).strip("0.-")
            and row.get("symbol") in self._symbol_by_id
        }
        if held - self._leverage.keys():
            config = await self._read(Operation.ACCOUNT, "fapiPrivateGetSymbolConfig", {})
            self._leverage.update(wire.parse_leverages(config))
        return wire.parse_positions(payload, self._symbol_by_id, self._leverage)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._set_leverage(symbol, leverage, frozenset())

    async def _set_leverage(self, symbol: str, leverage: int, refused: frozenset[int]) -> bool:
        """POST leverage; False when Binance answered one of the `refused` codes."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {"symbol": market_id, "leverage": leverage}
        answer = await self._read(Operation.ACCOUNT, "fapiPrivatePostLeverage", params, refused)
        if answer is None:
            return False
        self._leverage.update(wire.parse_leverages(answer))
        return True

    async def prepare_account(
        self, symbols: Sequence[str], leverage: int, caps: Mapping[str, int] | None = None
    ) -> None:
        """Check one-way and single-asset modes, then set ISOLATED margin and `leverage`
        (at most `caps[symbol]`, the exchange's ceiling for the symbol, when given).

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
            await self.prepare_symbol(symbol, min(leverage, (caps or {}).get(symbol, leverage)))
        log.info("exchange_account_prepared", symbols=len(symbols), leverage=leverage)

    async def prepare_symbol(self, symbol: str, leverage: int) -> None:
        """Set ISOLATED margin and `leverage` on one symbol (a symbol joining the universe).

        A symbol holding a position whose leverage Binance refuses to change (`LEVERAGE_HELD`,
        e.g. a restart with a lower `sizing.default_leverage`) keeps the leverage it has,
        read back and logged (`leverage_kept`): the daemon starts and manages the position;
        the next entry on the symbol sets its own leverage."""
        await self._set_isolated(symbol)
        if await self._set_leverage(symbol, leverage, LEVERAGE_HELD):
            return
        market_id = self._id_by_symbol[symbol]
        params = {"symbol": market_id}
        config = await self._read(Operation.ACCOUNT, "fapiPrivateGetSymbolConfig", params)
        self._leverage.update(wire.parse_leverages(config))
        log.warning(
            "leverage_kept",
            symbol=symbol,
            wanted=leverage,
            kept=self._leverage.get(market_id),
            detail="Binance refuses to change the leverage of a symbol holding a position",
        )

    async def _set_isolated(self, symbol: str) -> None:
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        params = {"symbol": market_id, "marginType": "ISOLATED"}
        try:
            await self._read(
                Operation.ACCOUNT, "fapiPrivatePostMarginType", params, MARGIN_TYPE_ALREADY_SET
            )
        except OperatorActionRequired as error:
            message = f"cannot set ISOLATED margin on {symbol}: {error}"
            raise OperatorActionRequired(message) from error

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        """Funding paid on `symbol` since `since` (positive = paid): every settlement Binance
        lists, a page of INCOME_PAGE at a time from the oldest (a symbol settling hourly
        settles 1,000 times in 42 days). Binance keeps three months of income history: for a
        position open longer, what it kept, with a `funding_history_short` warning."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        kept_from = self._rest.now() - INCOME_KEPT
        if since < kept_from:
            log.warning(
                "funding_history_short",
                symbol=symbol,
                opened_at=since.isoformat(),
                kept_from=kept_from.isoformat(),
                detail="Binance keeps three months of income history: funding settled before "
                "kept_from is not counted in this trade",
            )
        params = {"symbol": market_id, "incomeType": "FUNDING_FEE", "limit": INCOME_PAGE}
        start, rows, seen = ms_from_utc(since), list[Any](), set[tuple[object, ...]]()
        while True:
            page = await self._read(
                Operation.ACCOUNT, "fapiPrivateGetIncome", {**params, "startTime": start}
            )
            listed = wire.as_list(page, "income")
            # tranId is unique per income type: a settlement on a page boundary counts once.
            new = [r for r in listed if _new_income(r, seen)]
            rows += new
            # A full page with nothing new: an answer that ignores startTime, not more pages.
            if len(listed) < INCOME_PAGE or not new:
                return wire.parse_funding_income(rows)
            # From the last time listed again (its other rows may be on the next page); past
            # it when a whole page shares it.
            latest = max(wire.int_field(r, "time", "income") for r in listed)
            start = latest if latest > start else start + 1

    async def fetch_snapshot(self, taken_at: datetime) -> ExchangeSnapshot:
        """Positions and every open conditional order from REST (weight 5 + 40), as the
        account stood at `taken_at`: pass the time before the first read is sent."""
        positions = await self.fetch_positions()
        conditional = await self.fetch_open_conditional_orders()
        return ExchangeSnapshot(
            taken_at=taken_at,
            source=SnapshotSource.REST,
            positions={p.symbol: p for p in positions},
            open_conditional_orders=tuple(conditional),
        )

    # -- listen keys (the user-data stream) ----------------------------------------------------

    async def create_listen_key(self) -> str:
        """POST /fapi/v1/listenKey: the account's listen key (the active one if any), valid
        for 60 minutes."""
        answer = await self._read(Operation.ACCOUNT, "fapiPrivatePostListenKey", {})
        return str(wire.field(answer, "listenKey", "listenKey"))

    async def keep_alive_listen_key(self) -> bool:
        """PUT /fapi/v1/listenKey: extend the active key by 60 minutes; False if it is gone."""
        answer = await self._read(
            Operation.ACCOUNT, "fapiPrivatePutListenKey", {}, LISTEN_KEY_MISSING
        )
        return answer is not None

    async def close_listen_key(self) -> None:
        await self._read(Operation.ACCOUNT, "fapiPrivateDeleteListenKey", {}, LISTEN_KEY_MISSING)

    # -- orders ------------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """Send once. OrderRejected if refused; OrderStateUnknown if the answer is lost or
        the client id exists already; RetryLater if Binance executed nothing (rate limit)."""
        rules = await self._rules_for(request.symbol)
        quantity = rules.round_quantity_down(request.quantity)
        if quantity <= 0:
            raise OrderRejected(ReasonCode.BELOW_MIN_QUANTITY, f"{request.quantity} rounds to 0")
        params = order_params(request, self._id_by_symbol[request.symbol], quantity, rules)
        endpoint = "fapiPrivatePostAlgoOrder" if request.kind.is_conditional else (
            "fapiPrivatePostOrder"
        )  # fmt: skip
        answer = await self._rest.call(
            endpoint, params, Operation.ORDER, client_order_id=request.client_order_id
        )
        try:
            if request.kind.is_conditional:
                return wire.parse_algo_order(answer, request.symbol)
            return wire.parse_order(answer, request.symbol)
        except (MarketDataError, KeyError, TypeError, ValueError) as error:
            raise OrderStateUnknown(
                request.client_order_id, f"unreadable answer to an order request: {error}"
            ) from error

    async def _rules_for(self, symbol: str) -> MarketRules:
        await self._market_id(symbol, Operation.ORDER)
        return self._rules[symbol]

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        """Look up a plain order, then a conditional (algo) order, by our client id."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        plain = await self._plain_order(market_id, {"origClientOrderId": client_order_id})
        if plain is not None:
            return wire.parse_order(plain, symbol)
        algo = await self._algo_order(client_order_id)
        if algo is None:
            return None
        execution = None
        if algo.get("algoStatus") == wire.ALGO_FINISHED:
            execution = await self._triggered_execution(symbol, client_order_id, algo)
        return wire.parse_algo_order(algo, symbol, execution)

    async def _plain_order(self, market_id: str, key: Mapping[str, str]) -> Any:
        params = {"symbol": market_id, **key}
        return await self._read(
            Operation.ACCOUNT, "fapiPrivateGetOrder", params, NOT_FOUND, lookup=True
        )

    async def _algo_order(self, client_order_id: str) -> Any:
        params = {"clientAlgoId": client_order_id}
        return await self._read(
            Operation.ACCOUNT, "fapiPrivateGetAlgoOrder", params, NOT_FOUND, lookup=True
        )

    async def _trades(self, params: Mapping[str, Any]) -> Any:
        """GET /fapi/v1/userTrades, as many as Binance lists at once (its default is 500)."""
        paged = {**params, "limit": TRADES_PAGE}
        return await self._read(Operation.ACCOUNT, "fapiPrivateGetUserTrades", paged, lookup=True)

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        """Open STOP_MARKET / TAKE_PROFIT_MARKET algo orders, of one symbol (weight 1) or all
        (weight 40). Orders of other types and unknown symbols are left out."""
        params = {}
        if symbol is not None:
            params["symbol"] = await self._market_id(symbol, Operation.ACCOUNT)
        elif not self._rules:
            await self.load_markets()
        payload = await self._read(Operation.ACCOUNT, "fapiPrivateGetOpenAlgoOrders", params)
        orders = []
        for row in wire.as_list(payload, "openAlgoOrders"):
            known = self._symbol_by_id.get(str(wire.field(row, "symbol", "openAlgoOrders")))
            if known is not None and row.get("orderType") in wire.CONDITIONAL_KINDS:
                orders.append(wire.parse_algo_order(row, known))
        return orders

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        """Cancel once. Returns when Binance answered "success". Raises OrderRejected when the
        order is no longer open (final — it may have filled just before —, or unknown to
        Binance): it was not cancelled, and the caller learns how it ended from a lookup;
        OrderStateUnknown otherwise (a stop that is triggering, an answer not a success)."""
        await self._market_id(symbol, Operation.CANCEL)
        answer = await self._rest.call(
            "fapiPrivateDeleteAlgoOrder",
            {"clientAlgoId": client_order_id},
            Operation.CANCEL,
            client_order_id=client_order_id,
            absent=NOT_FOUND,
        )
        if answer is not None and wire.is_cancel_success(answer):
            return
        if answer is not None:
            raise OrderStateUnknown(client_order_id, f"cancel not confirmed: {answer!r}")
        order = await self.fetch_order(symbol, client_order_id)
        if order is not None and not order.status.is_final:
            raise OrderStateUnknown(client_order_id, f"cancel refused while {order.status}")
        ended = order.status if order is not None else "unknown to Binance"
        raise OrderRejected(ReasonCode.ORDER_REJECTED, f"{client_order_id} is already {ended}")

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        """Executions of our order (for a triggered stop: of the market order it started)."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        plain = await self._plain_order(market_id, {"origClientOrderId": client_order_id})
        if plain is not None:
            params = {"symbol": market_id, "orderId": plain["orderId"]}
            fills = await self._fills_of(await self._trades(params), symbol, client_order_id)
            _say_if_short(fills, plain, client_order_id)
            return fills
        algo = await self._algo_order(client_order_id)
        if algo is None or algo.get("algoStatus") not in ("TRIGGERED", wire.ALGO_FINISHED):
            return []
        return await self._fills_of(
            await self._triggered_trades(symbol, algo), symbol, client_order_id
        )

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        """GET /fapi/v1/userTrades in the window (weight 5 a page): each order's trades under
        `order-<its Binance order id>`. Rows of another symbol are left out, said once."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
        rows = await account_trades(self._trades, symbol, market_id, start_ms, end_ms)
        what = f"userTrades {symbol}"
        own = [r for r in rows if str(wire.field(r, "symbol", what)) == market_id]
        if len(own) < len(rows):
            log.warning("account_trades_other_symbol", symbol=symbol, rows=len(rows) - len(own))
        by_order = wire.trades_by_order(own, what)
        fills = [
            f
            for oid, of in by_order.items()
            for f in await self._fills_of(of, symbol, f"order-{oid}")
        ]
        return sorted(fills, key=lambda fill: fill.time)

    async def fetch_force_orders(
        self, symbol: str, start: datetime, end: datetime
    ) -> dict[str, ExitReason]:
        """GET /fapi/v1/forceOrders in the window, LIQUIDATION then ADL (weight 20 each; a
        failed request is not retried), under the ids `fetch_account_fills` gives their
        trades (`order-<Binance order id>`)."""
        market_id = await self._market_id(symbol, Operation.ACCOUNT)
        start_ms, end_ms = ms_from_utc(start), ms_from_utc(end)
        found = await force_orders(self._force_orders, symbol, market_id, start_ms, end_ms)
        return {f"order-{oid}": reason for oid, reason in found.items()}

    async def _force_orders(self, params: Mapping[str, Any]) -> Any:
        """Asked once, never retried: it only names a close booked meanwhile as MANUAL, so a
        failure must not hold the keeper's tick back (keeper/forced.py)."""
        return await self._rest.call("fapiPrivateGetForceOrders", params, Operation.ACCOUNT)

    async def _fills_of(self, payload: Any, symbol: str, client_order_id: str) -> list[Fill]:
        """The order's fills, a commission in BNB valued in USDT (fee_prices.py)."""
        return await fills_in_usdt(
            payload, symbol, client_order_id, self._fee_prices, self._symbol_by_id
        )

    async def _triggered_execution(
        self, symbol: str, client_order_id: str, algo: Any
    ) -> wire.Execution:
        """What a FINISHED algo order's market order executed: that order's own executedQty
        and avgPrice (GET /fapi/v1/order by actualOrderId, weight 1), which do not wait for
        userTrades to list its trades; without an actual order id, its trades on the stop's
        side in the trigger's window. RetryLater while that is not known yet: the order still
        working, or not found though Binance keeps it (the last 3 days), or no trade listed in
        the window yet (`TRADES_LISTED_WITHIN_MS` after the stop finished) — never nothing
        executed for want of a read."""
        actual = str(algo.get("actualOrderId") or "")
        finished = wire.int_field(algo, "updateTime", "algoOrder")
        age_ms = ms_from_utc(self._rest.now()) - finished
        if not actual:
            rows = await self._triggered_trades(symbol, algo)
            if not wire.as_list(rows, "userTrades") and age_ms <= TRADES_LISTED_WITHIN_MS:
                raise RetryLater(f"{client_order_id} finished: no trade listed yet")
            return trades.execution_of_trades(rows, symbol)
        params = {"orderId": actual}
        payload = await self._plain_order(self._id_by_symbol[symbol], params)
        if payload is None and age_ms > FORGOTTEN_AFTER_MS:
            return wire.Execution(ZERO, None)  # forgotten: it ended with no filled trade
        if payload is None:
            raise RetryLater(f"{client_order_id} finished: its order {actual} not found yet")
        final, execution = trades.actual_order_execution(payload, symbol)
        if not final:
            status = wire.field(payload, "status", "order")
            raise RetryLater(f"{client_order_id} finished: its order {actual} still {status}")
        return execution

    async def _triggered_trades(self, symbol: str, algo: Any) -> Any:
        """Trades of a triggered algo order's market order: by its actual order id, or by
        side in the trigger's time window when Binance did not report the id."""
        market_id = self._id_by_symbol[symbol]
        actual = str(algo.get("actualOrderId") or "")
        if actual:
            return await self._trades({"symbol": market_id, "orderId": actual})
        start_ms, end_ms = wire.trigger_window_ms(algo, TRIGGER_SLACK_MS)
        params = {"symbol": market_id, "startTime": start_ms, "endTime": end_ms}
        payload = await self._trades(params)
        side = OrderSide(wire.field(algo, "side", "algoOrder"))
        return wire.pick_triggered_trades(payload, side, start_ms + TRIGGER_SLACK_MS)

    async def close(self) -> None:
        await self._rest.close()


def _say_if_short(fills: Sequence[Fill], order: Any, client_order_id: str) -> None:
    """One warning when Binance listed fewer trades than the order executed (more than
    TRADES_PAGE trades, or older than its 7-day window): it is booked from the order's own
    executed quantity and average price (keeper/booking.py `execution_of`)."""
    if not fills or not isinstance(order, dict) or "executedQty" not in order:
        return  # only a warning: the order's own parse says what is missing
    executed = wire.decimal_field(order, "executedQty", "order")
    read = sum((f.quantity for f in fills), Decimal(0))
    if read < executed:
        log.warning(
            "fills_incomplete",
            client_order_id=client_order_id,
            trades=len(fills),
            executed=str(executed),
            in_trades=str(read),
            detail="booked from the order's executed quantity and average price; "
            "its fee is the listed trades' scaled up to that quantity",
        )


def _new_income(row: Any, seen: set[tuple[object, ...]]) -> bool:
    """Whether income `row` was not read before (and note it); a row that is not an object
    is left for the parser to refuse."""
    if not isinstance(row, dict):
        return True
    key = (row.get("tranId"), row.get("time"), row.get("income"))
    if key in seen:
        return False
    seen.add(key)
    return True


def _flag(payload: Any, name: str) -> bool:
    value = wire.field(payload, name, name)
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "false"}:
        return str(value).lower() == "true"
    raise MarketDataError(f"{name}: expected true or false, got {value!r}")
