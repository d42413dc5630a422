"""The in-memory Binance USD-M account and market behind the loopback server.

Each public method answers one endpoint with the JSON shape Binance documents (numbers as
strings), or raises BinanceError with Binance's code and message. Market orders fill at once at
the mark price; conditional (algo) orders rest until cancelled. Candles and funding rates are a
deterministic function of the symbol and the time, with `now_ms` as the server's clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

FIVE_MINUTES_MS = 300_000
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000}
FUNDING_INTERVAL_MS = 8 * 3_600_000
TAKER_FEE = Decimal("0.0004")
START_MS = 1_762_000_000_000 - 1_762_000_000_000 % FIVE_MINUTES_MS  # 2025-11-01 12:25 UTC


class BinanceError(Exception):
    """An error answer: HTTP `status` with body {"code": code, "msg": msg}."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass(frozen=True, slots=True)
class LoopbackMarket:
    market_id: str
    base: str
    mark_price: Decimal
    tick_size: str
    step_size: str
    min_quantity: str = "0.001"
    min_notional: str = "5"
    onboard_ms: int = 1569398400000


DEFAULT_MARKETS = (
    LoopbackMarket("BTCUSDT", "BTC", Decimal("100000.0"), "0.10", "0.001", "0.001", "100"),
    LoopbackMarket("ETHUSDT", "ETH", Decimal("3500.00"), "0.01", "0.001", "0.001", "20"),
    LoopbackMarket("SOLUSDT", "SOL", Decimal("180.00"), "0.01", "1", "1"),
    LoopbackMarket("BNBUSDT", "BNB", Decimal("600.00"), "0.01", "0.01", "0.01"),
    LoopbackMarket("XRPUSDT", "XRP", Decimal("2.0000"), "0.0001", "0.1", "0.1"),
    LoopbackMarket("DOGEUSDT", "DOGE", Decimal("0.200000"), "0.000010", "1", "1"),
    LoopbackMarket("BCHUSDT", "BCH", Decimal("500.00"), "0.01", "0.001", "0.001", "20"),
    LoopbackMarket("INJUSDT", "INJ", Decimal("20.000"), "0.001", "0.1", "0.1"),
)


@dataclass
class Holding:
    amount: Decimal = Decimal(0)  # signed: > 0 long, < 0 short
    entry: Decimal = Decimal(0)
    leverage: int = 20
    margin_type: str = "cross"


@dataclass
class LoopbackState:
    markets: dict[str, LoopbackMarket] = field(
        default_factory=lambda: {m.market_id: m for m in DEFAULT_MARKETS}
    )
    now_ms: int = START_MS
    wallet: Decimal = Decimal(10_000)
    dual_side_position: bool = False
    multi_assets_margin: bool = False
    holdings: dict[str, Holding] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    algo_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    income: list[dict[str, Any]] = field(default_factory=list)
    tickers_24h: list[dict[str, Any]] = field(default_factory=list)  # a recorded answer, as set
    next_id: int = 1000

    # -- helpers ------------------------------------------------------------------------------

    def market(self, params: dict[str, str]) -> LoopbackMarket:
        market = self.markets.get(params.get("symbol", ""))
        if market is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return market

    def holding(self, market_id: str) -> Holding:
        return self.holdings.setdefault(market_id, Holding())

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- market data ---------------------------------------------------------------------------

    def exchange_info(self) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms,
            "symbols": [_symbol_info(m) for m in self.markets.values()],
        }

    def premium_index(self, params: dict[str, str]) -> Any:
        rows = [
            {
                "symbol": m.market_id,
                "markPrice": str(m.mark_price),
                "indexPrice": str(m.mark_price),
                "lastFundingRate": "0.00010000",
                "nextFundingTime": self.now_ms
                - self.now_ms % FUNDING_INTERVAL_MS
                + FUNDING_INTERVAL_MS,
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
        return [_kline(market, t, step) for t in opens]

    def funding_rates(self, params: dict[str, str]) -> list[dict[str, Any]]:
        market = self.market(params)
        start = int(params.get("startTime", self.now_ms - 100 * FUNDING_INTERVAL_MS))
        first = -(-start // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
        times = range(first, self.now_ms + 1, FUNDING_INTERVAL_MS)[: int(params.get("limit", 100))]
        return [
            {
                "symbol": market.market_id,
                "fundingTime": t,
                "fundingRate": f"{0.0001 * (1 + math.sin(t / FUNDING_INTERVAL_MS) / 2):.8f}",
                "markPrice": str(market.mark_price),
            }
            for t in times
        ]

    # -- account -------------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        margin = sum((self._margin(i, h) for i, h in self.holdings.items()), Decimal(0))
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

    def _margin(self, market_id: str, holding: Holding) -> Decimal:
        return abs(holding.amount) * holding.entry / holding.leverage

    def _pnl(self, market_id: str, holding: Holding) -> Decimal:
        return (self.markets[market_id].mark_price - holding.entry) * holding.amount

    def position_risk(self) -> list[dict[str, Any]]:
        return [
            {
                "symbol": market_id,
                "positionAmt": str(h.amount),
                "entryPrice": str(h.entry),
                "markPrice": str(self.markets[market_id].mark_price),
                "unRealizedProfit": str(self._pnl(market_id, h)),
                "leverage": str(h.leverage),
                "isolatedMargin": str(self._margin(market_id, h)),
                "marginType": h.margin_type,
                "positionSide": "BOTH",
            }
            for market_id, h in self.holdings.items()
        ]

    def set_leverage(self, params: dict[str, str]) -> dict[str, Any]:
        market = self.market(params)
        leverage = int(params["leverage"])
        if not 1 <= leverage <= 125:
            raise BinanceError(-4028, "Leverage 0 is not valid")
        self.holding(market.market_id).leverage = leverage
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
        market = self.market(params)
        order_id = params.get("orderId")
        return [
            t
            for t in self.trades
            if t["symbol"] == market.market_id
            and (order_id is None or str(t["orderId"]) == order_id)
        ]

    def income_history(self, params: dict[str, str]) -> list[dict[str, Any]]:
        start = int(params.get("startTime", 0))
        return [
            row
            for row in self.income
            if row["symbol"] == params.get("symbol", row["symbol"])
            and row["incomeType"] == params.get("incomeType", row["incomeType"])
            and row["time"] >= start
        ]

    # -- orders --------------------------------------------------------------------------------

    def place_order(self, params: dict[str, str]) -> dict[str, Any]:
        market = self.market(params)
        if params.get("type") != "MARKET":
            raise BinanceError(-4120, "Order type not supported for this endpoint.")
        quantity = self._quantity(market, params)
        reduce_only = params.get("reduceOnly") == "true"
        if not reduce_only and quantity * market.mark_price < Decimal(market.min_notional):
            raise BinanceError(
                -4164, f"Order's notional must be no smaller than {market.min_notional}"
            )
        client_id = params.get("newClientOrderId") or f"auto{self._new_id()}"
        if client_id in self.orders:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        signed = quantity if params["side"] == "BUY" else -quantity
        self._fill(market, signed, leverage_check=not reduce_only)
        order = _order_json(self._new_id(), client_id, market, params, quantity, self.now_ms)
        self.orders[client_id] = order
        self.trades.append(_trade_json(self._new_id(), order, market, self.now_ms))
        return order

    def _quantity(self, market: LoopbackMarket, params: dict[str, str]) -> Decimal:
        quantity = Decimal(params["quantity"])
        if quantity % Decimal(market.step_size) != 0:
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        return quantity

    def _fill(self, market: LoopbackMarket, signed: Decimal, *, leverage_check: bool) -> None:
        holding = self.holding(market.market_id)
        price = market.mark_price
        notional = abs(signed) * price
        if leverage_check and notional / holding.leverage > Decimal(
            self.account()["availableBalance"]
        ):
            raise BinanceError(-2019, "Margin is insufficient.")
        self.wallet -= notional * TAKER_FEE
        new_amount = holding.amount + signed
        if holding.amount == 0 or (holding.amount > 0) == (signed > 0):
            holding.entry = (holding.entry * abs(holding.amount) + price * abs(signed)) / abs(
                new_amount
            )
        else:
            closed = min(abs(signed), abs(holding.amount))
            self.wallet += (price - holding.entry) * closed * (1 if holding.amount > 0 else -1)
        holding.amount = new_amount

    def get_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def place_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        market = self.market(params)
        if params.get("algoType") != "CONDITIONAL" or "triggerPrice" not in params:
            raise BinanceError(-1102, "Mandatory parameter 'triggerPrice' was not sent.")
        quantity = self._quantity(market, params)
        client_id = params.get("clientAlgoId") or f"auto{self._new_id()}"
        if client_id in self.algo_orders:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        order = _algo_json(self._new_id(), client_id, market, params, quantity, self.now_ms)
        self.algo_orders[client_id] = order
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
            if o["algoStatus"] == "NEW" and wanted in (None, o["symbol"])
        ]

    def cancel_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.algo_orders.get(params.get("clientAlgoId", ""))
        if order is None or order["algoStatus"] != "NEW":
            raise BinanceError(-2011, "Unknown order sent.")
        order["algoStatus"] = "CANCELED"
        order["updateTime"] = self.now_ms
        return {
            "algoId": order["algoId"],
            "clientAlgoId": order["clientAlgoId"],
            "code": "200",
            "msg": "success",
        }


def _symbol_info(m: LoopbackMarket) -> dict[str, Any]:
    return {
        "symbol": m.market_id,
        "pair": m.market_id,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": m.onboard_ms,
        "status": "TRADING",
        "baseAsset": m.base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "triggerProtect": "0.0500",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "tickSize": m.tick_size,
                "minPrice": m.tick_size,
                "maxPrice": "10000000",
            },
            {
                "filterType": "LOT_SIZE",
                "stepSize": m.step_size,
                "minQty": m.min_quantity,
                "maxQty": "100000000",
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": m.step_size,
                "minQty": m.min_quantity,
                "maxQty": "1000000",
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": m.min_notional},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def _kline(market: LoopbackMarket, open_ms: int, step: int) -> list[Any]:
    base = float(market.mark_price)
    phase = open_ms // step
    open_, close = (base * (1 + 0.002 * math.sin(p / 7)) for p in (phase - 1, phase))
    high, low = max(open_, close) * 1.001, min(open_, close) * 0.999
    return [
        open_ms,
        f"{open_:.6f}",
        f"{high:.6f}",
        f"{low:.6f}",
        f"{close:.6f}",
        f"{100 + phase % 10}",
        open_ms + step - 1,
        "0",
        100,
        "0",
        "0",
        "0",
    ]


def _order_json(
    order_id: int,
    client_id: str,
    market: LoopbackMarket,
    params: dict[str, str],
    quantity: Decimal,
    now_ms: int,
) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "clientOrderId": client_id,
        "symbol": market.market_id,
        "status": "FILLED",
        "type": "MARKET",
        "origType": "MARKET",
        "side": params["side"],
        "positionSide": "BOTH",
        "origQty": str(quantity),
        "executedQty": str(quantity),
        "cumQuote": str(quantity * market.mark_price),
        "avgPrice": str(market.mark_price),
        "price": "0",
        "stopPrice": "0",
        "reduceOnly": params.get("reduceOnly") == "true",
        "closePosition": False,
        "timeInForce": "GTC",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "time": now_ms,
        "updateTime": now_ms,
    }


def _trade_json(
    trade_id: int, order: dict[str, Any], market: LoopbackMarket, now_ms: int
) -> dict[str, Any]:
    quantity = Decimal(order["executedQty"])
    return {
        "id": trade_id,
        "orderId": order["orderId"],
        "symbol": market.market_id,
        "side": order["side"],
        "price": str(market.mark_price),
        "qty": str(quantity),
        "quoteQty": str(quantity * market.mark_price),
        "commission": str(quantity * market.mark_price * TAKER_FEE),
        "commissionAsset": "USDT",
        "realizedPnl": "0",
        "positionSide": "BOTH",
        "maker": False,
        "buyer": order["side"] == "BUY",
        "time": now_ms,
    }


def _algo_json(
    algo_id: int,
    client_id: str,
    market: LoopbackMarket,
    params: dict[str, str],
    quantity: Decimal,
    now_ms: int,
) -> dict[str, Any]:
    return {
        "algoId": algo_id,
        "clientAlgoId": client_id,
        "algoType": "CONDITIONAL",
        "orderType": params["type"],
        "symbol": market.market_id,
        "side": params["side"],
        "positionSide": "BOTH",
        "timeInForce": "GTC",
        "quantity": str(quantity),
        "algoStatus": "NEW",
        "actualOrderId": "",
        "actualPrice": "0.00000",
        "triggerPrice": params["triggerPrice"],
        "price": "0.00",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE",
        "closePosition": False,
        "priceProtect": False,
        "reduceOnly": params.get("reduceOnly") == "true",
        "createTime": now_ms,
        "updateTime": now_ms,
        "triggerTime": 0,
        "goodTillDate": 0,
    }
