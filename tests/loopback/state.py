"""The in-memory Binance USD-M account and market behind the loopback server.

Each public method answers one endpoint with the JSON shape Binance documents (numbers as
strings), or raises BinanceError with Binance's code and message. Orders are placed and
conditional orders triggered by the `Engine` (engine.py); this module holds the account, the
reads, the listen keys and the user-data events (handed to `sinks`, the stream hub).

Time: `now_ms` follows `clock` when one is given (a ManualClock or SimulatedClock in-process,
LiveClock for a daemon in a subprocess), else it is a plain number tests set. Mark prices are
the markets' rest prices, or `mark_path`'s prices, unless a test pinned one (`marks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from quantum_trader.clock import ms_from_utc
from quantum_trader.ports import Clock

from .markets import (
    DEFAULT_MARKETS,
    LoopbackMarket,
    MarkPath,
    kline,
    leverage_brackets,
    symbol_info,
)
from .payloads import BNB_DISCOUNT, MAKER_FEE, TAKER_FEE

FIVE_MINUTES_MS = 300_000
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000}
FUNDING_INTERVAL_MS = 8 * 3_600_000
DAY_MS = 86_400_000
INCOME_KEPT_MS = 90 * DAY_MS  # Binance: "only contains data for the last three months"
LISTEN_KEY_VALIDITY_MS = 60 * 60_000
START_MS = 1_762_000_000_000 - 1_762_000_000_000 % FIVE_MINUTES_MS  # 2025-11-01 12:25 UTC

UserEventSink = Callable[[dict[str, Any]], None]


class BinanceError(Exception):
    """An error answer: HTTP `status` with body {"code": code, "msg": msg}."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass
class Holding:
    amount: Decimal = Decimal(0)  # signed: > 0 long, < 0 short
    entry: Decimal = Decimal(0)
    leverage: int = 20
    margin_type: str = "cross"
    update_ms: int = 0


@dataclass
class LoopbackState:
    markets: dict[str, LoopbackMarket] = field(
        default_factory=lambda: {m.market_id: m for m in DEFAULT_MARKETS}
    )
    clock: Clock | None = None
    mark_path: MarkPath | None = None
    wallet: Decimal = Decimal(10_000)
    dual_side_position: bool = False
    multi_assets_margin: bool = False
    holdings: dict[str, Holding] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by client order id
    algo_orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by client algo id
    trades: list[dict[str, Any]] = field(default_factory=list)
    # The exchange's own orders (force_orders.py): each with its autoCloseType.
    force_orders: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    income: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, Decimal] = field(default_factory=dict)  # pinned mark prices
    tickers_24h: list[dict[str, Any]] = field(default_factory=list)  # a recorded answer, as set
    brackets_answer: Any = None  # a recorded leverageBracket answer; None: from the markets
    listen_keys: dict[str, int] = field(default_factory=dict)  # key → expiry (ms)
    sinks: list[UserEventSink] = field(default_factory=list)
    next_id: int = 1000
    manual_ms: int = START_MS
    # "USDT", or "BNB": the account pays fees with BNB (its discounted rate, valued at the
    # close of BNBUSDT's 1m candle of the trade's minute: Binance does not say at what price).
    commission_asset: str = "USDT"
    # Whether GET openAlgoOrders lists orders that met their trigger and are not done
    # (TRIGGERING, TRIGGERED); Binance's documentation does not say, so tests try both.
    lists_firing: bool = False
    # How long after a trade GET userTrades first lists it (ms). Binance documents no such
    # bound; trades have been seen missing just after an order ended (BAD_INPUTS.md), while
    # GET /fapi/v1/order already reports the order's status, executedQty and avgPrice.
    trades_lag_ms: int = 0

    @property
    def now_ms(self) -> int:
        return ms_from_utc(self.clock.now()) if self.clock is not None else self.manual_ms

    @now_ms.setter
    def now_ms(self, value: int) -> None:
        if self.clock is not None:
            raise ValueError("this stand-in follows a clock: move the clock instead")
        self.manual_ms = value

    # -- helpers ------------------------------------------------------------------------------

    def market(self, params: dict[str, str]) -> LoopbackMarket:
        market = self.markets.get(params.get("symbol", ""))
        if market is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    def mark(self, market_id: str) -> Decimal:
        """The mark price of `market_id` now."""
        if market_id in self.marks:
            return self.marks[market_id]
        market = self.markets[market_id]
        if self.mark_path is None:
            return market.mark_price
        return self.mark_path.price(market, self.now_ms)

    def holding(self, market_id: str) -> Holding:
        return self.holdings.setdefault(market_id, Holding())

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def commission(self, quote: Decimal, maker: bool = False) -> tuple[str, str]:
        """(commission, commissionAsset) of a taker (or `maker`) trade worth `quote` USDT now."""
        fee = quote * (MAKER_FEE if maker else TAKER_FEE)
        if self.commission_asset == "USDT":
            return str(fee), "USDT"
        now = self.now_ms  # read once: a running clock moves between two reads
        minute = now - now % INTERVAL_MS["1m"]
        params = {"symbol": f"{self.commission_asset}USDT", "interval": "1m"}
        [candle] = self.klines({**params, "startTime": str(minute), "limit": "1"})
        in_asset = fee * BNB_DISCOUNT / Decimal(candle[4])
        return str(in_asset.quantize(Decimal("0.00000001"))), self.commission_asset

    def emit(self, event: dict[str, Any]) -> None:
        """Hand a user-data event to every sink (the stream hub)."""
        for sink in self.sinks:
            sink(event)

    def position_row(self, market_id: str) -> dict[str, str]:
        """The ACCOUNT_UPDATE `P` row of one symbol."""
        h = self.holding(market_id)
        return {
            "s": market_id,
            "pa": str(h.amount),
            "ep": str(h.entry),
            "bep": str(h.entry),
            "cr": "0",
            "up": str(self._pnl(market_id, h)),
            "mt": h.margin_type,
            "iw": str(self._margin(h)),
            "ps": "BOTH",
            "ma": "USDT",
        }

    # -- market data ---------------------------------------------------------------------------

    def exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms,
            "symbols": [symbol_info(m) for m in self.markets.values()],
        }

    def next_funding_ms(self) -> int:
        now = self.now_ms
        return now - now % FUNDING_INTERVAL_MS + FUNDING_INTERVAL_MS

    def premium_index(self, params: dict[str, str]) -> Any:
        rows = [
            {
                "symbol": m.market_id,
                "markPrice": str(self.mark(m.market_id)),
                "indexPrice": str(self.mark(m.market_id)),
                "lastFundingRate": "0.00010000",
                "nextFundingTime": self.next_funding_ms(),
                "time": self.now_ms,
            }
            for m in self.markets.values()
        ]
        if "symbol" in params:
            return next(r for r in rows if r["symbol"] == self.market(params).market_id)
        return rows

    def klines(self, params: dict[str, str]) -> list[list[Any]]:
        market = self.market(params)
        step = INTERVAL_MS[params["interval"]]
        start = int(params.get("startTime", self.now_ms - 499 * step))
        first = -(-start // step) * step
        limit = int(params.get("limit", 500))
        opens = range(first, self.now_ms + 1, step)[:limit]
        if self.mark_path is not None:  # candles of the prices the marks move along
            return [self.mark_path.kline(market, t, step, self.now_ms) for t in opens]
        return [kline(market, t, step) for t in opens]

    def funding_rates(self, params: dict[str, str]) -> list[dict[str, Any]]:
        market = self.market(params)
        start = int(params.get("startTime", self.now_ms - 100 * FUNDING_INTERVAL_MS))
        first = -(-start // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
        limit = min(int(params.get("limit", 100)), 1000)  # Binance's default and maximum
        times = range(first, self.now_ms + 1, FUNDING_INTERVAL_MS)[:limit]
        return [
            {
                "symbol": market.market_id,
                "fundingTime": t,
                "fundingRate": f"{0.0001 * (1 + math.sin(t / FUNDING_INTERVAL_MS) / 2):.8f}",
                "markPrice": str(self.mark(market.market_id)),
            }
            for t in times
        ]

    # -- account -------------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        margin = sum((self._margin(h) for h in self.holdings.values()), Decimal(0))
        pnl = sum((self._pnl(i, h) for i, h in self.holdings.items()), Decimal(0))
        return {
            "totalWalletBalance": str(self.wallet),
            "totalUnrealizedProfit": str(pnl),
            "totalInitialMargin": str(margin),
            "totalMarginBalance": str(self.wallet + pnl),
            "availableBalance": str(self.wallet + pnl - margin),
            "assets": [],
            "positions": [],
        }

    def _margin(self, holding: Holding) -> Decimal:
        return abs(holding.amount) * holding.entry / holding.leverage

    def _pnl(self, market_id: str, holding: Holding) -> Decimal:
        return (self.mark(market_id) - holding.entry) * holding.amount

    def position_risk(self) -> list[dict[str, Any]]:
        """GET /fapi/v2/positionRisk (kept for old clients)."""
        return [
            {
                "symbol": market_id,
                "positionAmt": str(h.amount),
                "entryPrice": str(h.entry),
                "markPrice": str(self.mark(market_id)),
                "unRealizedProfit": str(self._pnl(market_id, h)),
                "leverage": str(h.leverage),
                "isolatedMargin": str(self._margin(h)),
                "marginType": h.margin_type,
                "positionSide": "BOTH",
            }
            for market_id, h in self.holdings.items()
        ]

    def position_risk_v3(self) -> list[dict[str, Any]]:
        """GET /fapi/v3/positionRisk: symbols with a position or open orders; no leverage."""
        open_symbols = {o["symbol"] for o in self.algo_orders.values() if o["algoStatus"] == "NEW"}
        rows = []
        for market_id, h in self.holdings.items():
            if h.amount == 0 and market_id not in open_symbols:
                continue
            mark = self.mark(market_id)
            margin = self._margin(h)
            rows.append({
                "symbol": market_id, "positionSide": "BOTH", "positionAmt": str(h.amount),
                "entryPrice": str(h.entry), "breakEvenPrice": str(h.entry),
                "markPrice": str(mark), "unRealizedProfit": str(self._pnl(market_id, h)),
                "liquidationPrice": "0", "isolatedMargin": str(margin),
                "notional": str(h.amount * mark), "marginAsset": "USDT",
                "isolatedWallet": str(margin), "initialMargin": str(margin),
                "maintMargin": "0", "positionInitialMargin": str(margin),
                "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0",
                "askNotional": "0", "updateTime": h.update_ms,
            })  # fmt: skip
        return rows

    def symbol_config(self, params: dict[str, str]) -> list[dict[str, Any]]:
        wanted = [self.market(params)] if "symbol" in params else list(self.markets.values())
        return [
            {
                "symbol": m.market_id,
                "marginType": "ISOLATED" if self.holding(m.market_id).margin_type == "isolated"
                else "CROSSED",
                "isAutoAddMargin": "false",
                "leverage": self.holding(m.market_id).leverage,
                "maxNotionalValue": "1000000",
            }
            for m in wanted
        ]  # fmt: skip

    def leverage_brackets(self, params: dict[str, str]) -> Any:
        """GET /fapi/v1/leverageBracket: every market's rows (one object for one symbol)."""
        if self.brackets_answer is not None:
            return self.brackets_answer
        if "symbol" in params:
            return leverage_brackets(self.market(params))
        return [leverage_brackets(m) for m in self.markets.values()]

    def set_leverage(self, params: dict[str, str]) -> dict[str, Any]:
        market = self.market(params)
        leverage = int(params["leverage"])
        if not 1 <= leverage <= market.max_leverage:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        holding = self.holding(market.market_id)
        lowered = leverage < holding.leverage
        if holding.amount != 0 and holding.margin_type == "isolated" and lowered:
            raise BinanceError(
                -4161,
                "Leverage reduction is not supported in Isolated Margin Mode with open positions.",
            )
        holding.leverage = leverage
        self.emit({"e": "ACCOUNT_CONFIG_UPDATE", "E": self.now_ms, "T": self.now_ms,
                   "ac": {"s": market.market_id, "l": leverage}})  # fmt: skip
        return {"symbol": market.market_id, "leverage": leverage, "maxNotionalValue": "1000000"}

    def set_margin_type(self, params: dict[str, str]) -> dict[str, Any]:
        holding = self.holding(self.market(params).market_id)
        wanted = params["marginType"].lower()
        if holding.margin_type == wanted:
            raise BinanceError(-4046, "No need to change margin type.")
        if holding.amount != 0:
            raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
        holding.margin_type = wanted
        return {"code": 200, "msg": "success"}

    def user_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /fapi/v1/userTrades as documented: `limit` rows (default 500, at most 1,000),
        the oldest first; by `orderId`, from trade id `fromId` (not with startTime or endTime),
        or in startTime..endTime inclusive, at most 7 days apart (neither: the last 7 days;
        one alone: the 7 days from or to it)."""
        market = self.market(params)
        limit = int(params.get("limit", 500))
        if not 1 <= limit <= 1000:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        timed = "startTime" in params or "endTime" in params
        if "fromId" in params and timed:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        now = self.now_ms  # once: two reads of a running clock were > 7 days apart (-1127)
        start, end = now - 7 * DAY_MS, now
        if "startTime" in params:
            start = int(params["startTime"])
            end = int(params.get("endTime", start + 7 * DAY_MS))
        elif "endTime" in params:
            end = int(params["endTime"])
            start = end - 7 * DAY_MS
        if end - start > 7 * DAY_MS:
            raise BinanceError(-1127, "More than 7 days between startTime and endTime.")
        order_id, from_id = params.get("orderId"), params.get("fromId")

        def listed(t: dict[str, Any]) -> bool:
            if from_id is not None:
                return int(t["id"]) >= int(from_id)
            if order_id is not None and not timed:
                return True  # an order's trades, whenever
            return bool(start <= t["time"] <= end)

        rows = [
            t
            for t in self.trades
            if t["symbol"] == market.market_id
            and (order_id is None or str(t["orderId"]) == order_id)
            and listed(t)
            and t["time"] + self.trades_lag_ms <= self.now_ms
        ]
        return sorted(rows, key=lambda t: int(t["id"]))[:limit]

    def income_history(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /fapi/v1/income as documented: startTime and endTime inclusive (neither: the
        last 7 days), the oldest first, `limit` rows (default 100, at most 1,000), and only
        the last three months kept."""
        limit = int(params.get("limit", 100))
        if not 1 <= limit <= 1000:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        now = self.now_ms
        if "startTime" not in params and "endTime" not in params:
            start, end = now - 7 * DAY_MS, now
        else:
            start, end = int(params.get("startTime", 0)), int(params.get("endTime", now))
        start = max(start, now - INCOME_KEPT_MS)
        rows = [
            row
            for row in self.income
            if row["symbol"] == params.get("symbol", row["symbol"])
            and row["incomeType"] == params.get("incomeType", row["incomeType"])
            and start <= row["time"] <= end
        ]
        return sorted(rows, key=lambda row: row["time"])[:limit]

    def book_funding(self, market_id: str, income: Decimal, time_ms: int) -> None:
        """A funding settlement of `income` USDT (negative: paid) on `market_id` at `time_ms`."""
        self.wallet += income
        row = {
            "symbol": market_id,
            "incomeType": "FUNDING_FEE",
            "income": str(income),
            "asset": "USDT",
            "info": "FUNDING_FEE",
            "time": time_ms,
            "tranId": self.new_id(),
            "tradeId": "",
        }
        self.income.append(row)

    # -- order reads ---------------------------------------------------------------------------

    def get_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None and "orderId" in params:
            order = next(
                (o for o in self.orders.values() if str(o["orderId"]) == params["orderId"]), None
            )
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def get_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.algo_orders.get(params.get("clientAlgoId", ""))
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def open_algo_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        wanted = self.market(params).market_id if "symbol" in params else None
        return [
            o
            for o in self.algo_orders.values()
            if o["algoStatus"] in self._listed_algo_statuses and wanted in (None, o["symbol"])
        ]

    @property
    def _listed_algo_statuses(self) -> tuple[str, ...]:
        return ("NEW", "TRIGGERING", "TRIGGERED") if self.lists_firing else ("NEW",)

    # -- listen keys ---------------------------------------------------------------------------

    def create_listen_key(self) -> dict[str, str]:
        """POST: the active key (extended by 60 minutes), or a new one."""
        for key, expiry in self.listen_keys.items():
            if expiry > self.now_ms:
                self.listen_keys[key] = self.now_ms + LISTEN_KEY_VALIDITY_MS
                return {"listenKey": key}
        key = f"loopbackListenKey{self.new_id():06d}".ljust(64, "x")
        self.listen_keys[key] = self.now_ms + LISTEN_KEY_VALIDITY_MS
        return {"listenKey": key}

    def keep_alive_listen_key(self) -> dict[str, str]:
        """PUT: extend the active key, or -1125 when there is none."""
        for key, expiry in self.listen_keys.items():
            if expiry > self.now_ms:
                self.listen_keys[key] = self.now_ms + LISTEN_KEY_VALIDITY_MS
                return {"listenKey": key}
        raise BinanceError(-1125, "This listenKey does not exist.")

    def close_listen_key(self) -> dict[str, str]:
        for key in list(self.listen_keys):
            self.listen_keys[key] = self.now_ms - 1
        return {}

    def expired_listen_keys(self) -> list[str]:
        """Forget the keys past their validity and return them (their streams must end)."""
        gone = [key for key, expiry in self.listen_keys.items() if expiry <= self.now_ms]
        for key in gone:
            del self.listen_keys[key]
        return gone
