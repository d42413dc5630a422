"""Binance USD-M wire format → domain objects. Pure functions; no ccxt, no I/O.

Every number is read from Binance's JSON as a string and parsed to Decimal (orders, money) or
numpy float64 (candles, funding). A missing field, a non-numeric or non-finite value, or a
non-positive price is a MarketDataError naming the payload and the field, never a silent zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import (
    ZERO,
    Balance,
    Bars,
    ExchangePosition,
    Fill,
    FloatArray,
    IntArray,
    MarketRules,
    Order,
    OrderKind,
    OrderSide,
    OrderStatus,
    Side,
)
from quantum_trader.errors import MarketDataError

Payload = Mapping[str, Any]
SETTLE_ASSET = "USDT"

_KINDS = frozenset(kind.value for kind in OrderKind)
_PLAIN_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
# Algo (conditional) orders: TRIGGERED/FINISHED mean the stop fired and its market order ran.
_ALGO_STATUS = {
    "NEW": OrderStatus.OPEN,
    "TRIGGERING": OrderStatus.OPEN,
    "TRIGGERED": OrderStatus.FILLED,
    "FINISHED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "CANCELLED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}


def field(payload: Payload, name: str, what: str) -> Any:
    """Return `payload[name]`; raise MarketDataError naming `what` and the field if absent."""
    if not isinstance(payload, Mapping):
        raise MarketDataError(f"{what}: expected an object, got {type(payload).__name__}")
    value = payload.get(name)
    if value is None:
        raise MarketDataError(f"{what}: missing field {name!r}")
    return value


def decimal_field(payload: Payload, name: str, what: str, *, positive: bool = False) -> Decimal:
    """Parse a finite Decimal field (strictly positive when `positive`)."""
    raw = field(payload, name, what)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise MarketDataError(f"{what}: field {name!r} is not a number: {raw!r}") from None
    if not value.is_finite():
        raise MarketDataError(f"{what}: field {name!r} is not finite: {raw!r}")
    if positive and value <= 0:
        raise MarketDataError(f"{what}: field {name!r} must be positive, got {raw!r}")
    return value


def int_field(payload: Payload, name: str, what: str) -> int:
    raw = field(payload, name, what)
    try:
        return int(str(raw))
    except ValueError:
        raise MarketDataError(f"{what}: field {name!r} is not an integer: {raw!r}") from None


def as_list(payload: Any, what: str) -> Sequence[Any]:
    if not isinstance(payload, list):
        raise MarketDataError(f"{what}: expected a list, got {type(payload).__name__}")
    return payload


def parse_market_rules(symbol: str, info: Payload) -> MarketRules:
    """Precision and limits from one exchangeInfo `symbols[]` entry."""
    what = f"exchangeInfo {symbol}"
    filters = {f.get("filterType"): f for f in as_list(field(info, "filters", what), what)}
    price = field(filters, "PRICE_FILTER", what)
    lot = field(filters, "LOT_SIZE", what)
    notional = field(filters, "MIN_NOTIONAL", what)
    return MarketRules(
        symbol=symbol,
        tick_size=decimal_field(price, "tickSize", what, positive=True),
        step_size=decimal_field(lot, "stepSize", what, positive=True),
        min_quantity=decimal_field(lot, "minQty", what),
        min_notional=decimal_field(notional, "notional", what),
    )


def parse_mark_prices(
    payload: Any, symbol_by_id: Mapping[str, str], wanted: Sequence[str]
) -> dict[str, Decimal]:
    """Mark prices of `wanted` from premiumIndex (all symbols); a missing one is an error."""
    prices: dict[str, Decimal] = {}
    for row in as_list(payload, "premiumIndex"):
        symbol = symbol_by_id.get(str(field(row, "symbol", "premiumIndex")))
        if symbol is not None and symbol in wanted:
            prices[symbol] = decimal_field(
                row, "markPrice", f"premiumIndex {symbol}", positive=True
            )
    missing = [s for s in wanted if s not in prices]
    if missing:
        raise MarketDataError(f"premiumIndex: no mark price for {missing}")
    return prices


def parse_balance(payload: Any) -> Balance:
    """The account totals of GET /fapi/v3/account (single-asset mode: all in USDT)."""
    what = "account"
    return Balance(
        wallet_usdt=decimal_field(payload, "totalWalletBalance", what),
        free_usdt=decimal_field(payload, "availableBalance", what),
        used_margin_usdt=decimal_field(payload, "totalInitialMargin", what),
        unrealized_pnl_usdt=decimal_field(payload, "totalUnrealizedProfit", what),
    )


def parse_positions(payload: Any, symbol_by_id: Mapping[str, str]) -> list[ExchangePosition]:
    """Non-zero one-way positions of GET /fapi/v2/positionRisk; unknown symbols are skipped."""
    positions = []
    for row in as_list(payload, "positionRisk"):
        symbol = symbol_by_id.get(str(field(row, "symbol", "positionRisk")))
        what = f"positionRisk {symbol}"
        amount = decimal_field(row, "positionAmt", what)
        if symbol is None or amount == 0:
            continue
        positions.append(
            ExchangePosition(
                symbol=symbol,
                side=Side.LONG if amount > 0 else Side.SHORT,
                quantity=abs(amount),
                entry_price=decimal_field(row, "entryPrice", what, positive=True),
                leverage=int_field(row, "leverage", what),
                margin_usdt=decimal_field(row, "isolatedMargin", what),
                unrealized_pnl_usdt=decimal_field(row, "unRealizedProfit", what),
            )
        )
    return positions


def parse_order(payload: Payload, symbol: str) -> Order:
    """A plain order (POST/GET /fapi/v1/order)."""
    what = f"order {symbol}"
    kind_raw = field(payload, "type", what)
    if kind_raw not in _KINDS:
        raise MarketDataError(f"{what}: unsupported order type {kind_raw!r}")
    kind = OrderKind(kind_raw)
    filled = decimal_field(payload, "executedQty", what)
    average = decimal_field(payload, "avgPrice", what) if payload.get("avgPrice") else ZERO
    created_ms = payload.get("time") or int_field(payload, "updateTime", what)
    return Order(
        client_order_id=str(field(payload, "clientOrderId", what)),
        symbol=symbol,
        side=OrderSide(field(payload, "side", what)),
        kind=kind,
        quantity=decimal_field(payload, "origQty", what),
        status=_status(_PLAIN_STATUS, payload, "status", what),
        created_at=utc_from_ms(int(created_ms)),
        exchange_order_id=str(field(payload, "orderId", what)),
        reduce_only=bool(payload.get("reduceOnly", False)),
        filled_quantity=filled,
        average_price=average if average > 0 else None,
        updated_at=utc_from_ms(int_field(payload, "updateTime", what)),
    )


def parse_algo_order(payload: Payload, symbol: str) -> Order:
    """A conditional order of Binance's Algo Order API (POST/GET /fapi/v1/algoOrder)."""
    what = f"algoOrder {symbol}"
    kind_raw = field(payload, "orderType", what)
    if kind_raw not in _KINDS or kind_raw == OrderKind.MARKET:
        raise MarketDataError(f"{what}: unsupported conditional order type {kind_raw!r}")
    actual_price = (
        decimal_field(payload, "actualPrice", what) if payload.get("actualPrice") else ZERO
    )
    return Order(
        client_order_id=str(field(payload, "clientAlgoId", what)),
        symbol=symbol,
        side=OrderSide(field(payload, "side", what)),
        kind=OrderKind(kind_raw),
        quantity=decimal_field(payload, "quantity", what),
        status=_status(_ALGO_STATUS, payload, "algoStatus", what),
        created_at=utc_from_ms(int_field(payload, "createTime", what)),
        exchange_order_id=str(field(payload, "algoId", what)),
        trigger_price=decimal_field(payload, "triggerPrice", what, positive=True),
        reduce_only=bool(payload.get("reduceOnly", False)),
        average_price=actual_price if actual_price > 0 else None,
        updated_at=utc_from_ms(int_field(payload, "updateTime", what)),
        detail=str(payload.get("actualOrderId") or ""),
    )


def _status(
    table: Mapping[str, OrderStatus], payload: Payload, name: str, what: str
) -> OrderStatus:
    raw = str(field(payload, name, what))
    if raw not in table:
        raise MarketDataError(f"{what}: unknown {name} {raw!r}")
    return table[raw]


def parse_fills(payload: Any, symbol: str, client_order_id: str) -> list[Fill]:
    """Executions of one order from GET /fapi/v1/userTrades.

    Fees count only when charged in USDT; a fee in another asset (BNB discount) is reported
    in `non_usdt_fee_assets` by the caller's log, not converted here.
    """
    fills = []
    for row in as_list(payload, "userTrades"):
        what = f"userTrades {symbol}"
        fee = decimal_field(row, "commission", what)
        fills.append(
            Fill(
                trade_id=str(field(row, "id", what)),
                client_order_id=client_order_id,
                symbol=symbol,
                side=OrderSide(field(row, "side", what)),
                quantity=decimal_field(row, "qty", what, positive=True),
                price=decimal_field(row, "price", what, positive=True),
                fee_usdt=fee if row.get("commissionAsset") == SETTLE_ASSET else ZERO,
                time=utc_from_ms(int_field(row, "time", what)),
                is_maker=bool(row.get("maker", False)),
            )
        )
    return fills


def parse_funding_income(payload: Any) -> Decimal:
    """Funding paid from GET /fapi/v1/income rows (income > 0 is received, so paid = -sum)."""
    total = ZERO
    for row in as_list(payload, "income"):
        total += decimal_field(row, "income", "income")
    return -total


def parse_klines(payload: Any, symbol: str, timeframe_ms: int) -> Bars:
    """GET /fapi/v1/klines rows `[openTime, open, high, low, close, volume, ...]` as Bars."""
    rows = as_list(payload, f"klines {symbol}")
    try:
        table = np.array([row[:6] for row in rows], dtype=np.float64).reshape(-1, 6)
    except (TypeError, ValueError, IndexError) as error:
        raise MarketDataError(f"klines {symbol}: malformed row ({error})") from error
    time_ms: IntArray = table[:, 0].astype(np.int64)
    columns: list[FloatArray] = [np.ascontiguousarray(table[:, i]) for i in range(1, 6)]
    return Bars(symbol, timeframe_ms, time_ms, *columns)


def parse_funding_rates(payload: Any, symbol: str) -> tuple[IntArray, FloatArray]:
    """GET /fapi/v1/fundingRate rows as (settlement time ms, rate) arrays, oldest first."""
    what = f"fundingRate {symbol}"
    rows = as_list(payload, what)
    times = np.array([int_field(r, "fundingTime", what) for r in rows], dtype=np.int64)
    rates = np.array([float(decimal_field(r, "fundingRate", what)) for r in rows], dtype=np.float64)
    return times, rates
