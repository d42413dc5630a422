"""The Exchange port on Binance USD-M, coded to Binance's published REST API.

Every call goes to a raw endpoint through `binance_client.BinanceRest` (ccxt's signing and
transport; recvWindow, Retry-After and time resync there) and is parsed by `binance_wire`
into Decimal domain objects. This module holds the markets and the account: positions GET
/fapi/v3/positionRisk with the leverage from GET /fapi/v1/symbolConfig (v3 rows carry none),
listen keys /fapi/v1/listenKey; the orders, their lookups and fills are `OrderCalls`
(binance_orders.py), and the account's modes, margin type and leverage `AccountSetup`
(binance_account_setup.py), which the adapter inherits.

Trigger price: conditional orders are sent with workingType=MARK_PRICE and priceProtect=FALSE.
The keeper and the monitor reason in mark price (the stream they read is the mark price),
liquidation is computed on it, and a thin book's last-price wick cannot fire a stop on it;
price protection stays off because it can hold a triggered stop back exactly when last and
mark prices part, which is when a protective stop must not wait.

Only idempotent reads are retried, a few times with backoff; orders and cancels are sent once
(a -1021 refusal is resent by BinanceRest: it executed nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np

from quantum_trader.clock import LiveClock, ms_from_utc
from quantum_trader.config import ExchangeSettings
from quantum_trader.domain import (
    Balance,
    Bars,
    ExchangeMode,
    ExchangePosition,
    ExchangeSnapshot,
    FloatArray,
    IntArray,
    MarketRules,
    ReasonCode,
    SnapshotSource,
)
from quantum_trader.errors import (
    MarketDataError,
    OrderRejected,
    RateLimited,
    RetryLater,
)
from quantum_trader.execution import binance_wire as wire
from quantum_trader.execution.binance_account_setup import AccountSetup
from quantum_trader.execution.binance_brackets import BracketAnswer, parse_brackets
from quantum_trader.execution.binance_client import BinanceRest, RequestObserver, build_rest_client
from quantum_trader.execution.binance_errors import Operation, translate_error
from quantum_trader.execution.binance_income import INCOME_KEPT, funding_rows
from quantum_trader.execution.binance_marks import MarkPriceReads
from quantum_trader.execution.binance_orders import OrderCalls
from quantum_trader.execution.binance_requests import to_wire
from quantum_trader.execution.fee_prices import KLINES_ENDPOINT, CommissionPrices
from quantum_trader.log import get_logger
from quantum_trader.market.candle_store import TIMEFRAME_MS
from quantum_trader.ports import Clock

__all__ = ["CcxtExchange", "Operation", "to_wire", "translate_error"]

log = get_logger("ccxt_exchange")
T = TypeVar("T")
DEFAULT_RETRY_DELAYS_S = (0.5, 2.0)
KLINES_MAX_LIMIT = 1500
FUNDING_MAX_LIMIT = 1000
LISTEN_KEY_MISSING = frozenset({-1125})


class CcxtExchange(OrderCalls, AccountSetup):
    """Binance USD-M futures (demo trading for mode=testnet, production for mode=live)."""

    def __init__(self, rest: BinanceRest, mode: ExchangeMode, retry_delays_s: Sequence[float]):
        self._rest = rest
        self._mode = mode
        self._retry_delays_s = tuple(retry_delays_s)
        self._rules: dict[str, MarketRules] = {}
        self._id_by_symbol: dict[str, str] = {}
        self._symbol_by_id: dict[str, str] = {}
        self._leverage: dict[str, int] = {}
        self._marks = MarkPriceReads(
            lambda params: self._read(Operation.DATA, "fapiPublicGetPremiumIndex", params)
        )
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
        """Mark prices of `symbols` from premiumIndex, per symbol (weight 1 each) for a few,
        in one request for all (weight 10) for more (binance_marks.py). A symbol whose read
        fails or whose row cannot be read is left out, said once while it stays so; none read
        is MarketDataError (or the RetryLater why); a rate limit is RateLimited."""
        ids = {symbol: await self._market_id(symbol, Operation.DATA) for symbol in symbols}
        return await self._marks.read(ids, self._symbol_by_id)

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

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        """Funding paid on `symbol` since `since` (positive = paid): every settlement Binance
        lists (binance_income.py). Binance keeps three months of income history: for a
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
        rows = await funding_rows(
            lambda params: self._read(Operation.ACCOUNT, "fapiPrivateGetIncome", params),
            market_id,
            ms_from_utc(since),
        )
        return wire.parse_funding_income(rows)

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

    async def close(self) -> None:
        await self._rest.close()
