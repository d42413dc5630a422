"""Binance USD-M REST answers → domain objects. Pure functions; no ccxt, no I/O.

Every number is read from Binance's JSON as a string and parsed to Decimal (orders, money) or
numpy float64 (candles, funding). A missing field, a non-numeric or non-finite value, or a
non-positive price is a MarketDataError naming the payload and the field, never a silent zero.

Conditional (algo) orders, by Binance's algo statuses: NEW (resting), TRIGGERING (condition
met, forwarded to the matching engine) and TRIGGERED (its market order is in the matching
engine) are OPEN: not final, the stop fired or is about to (the latter two carry
`triggered_at`, from `triggerTime`: firing, not waiting). CANCELED, REJECTED and EXPIRED
are final with nothing executed. FINISHED means the triggered order ended in the matching
engine, "filled or cancelled": it is booked from the execution of the actual order (FILLED
when it executed the whole quantity, EXPIRED with the executed quantity otherwise), and is
UNKNOWN while that execution is not known (the adapter reads it: ccxt_exchange.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
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
    LotSize,
    MarketRules,
    Order,
    OrderKind,
    OrderSide,
    OrderStatus,
    Side,
)
from quantum_trader.errors import MarketDataError
from quantum_trader.execution.binance_fields import Payload as Payload
from quantum_trader.execution.binance_fields import as_list as as_list
from quantum_trader.execution.binance_fields import decimal_field as decimal_field
from quantum_trader.execution.binance_fields import field as field
from quantum_trader.execution.binance_fields import flag, reduce_only_stated
from quantum_trader.execution.binance_fields import int_field as int_field
from quantum_trader.execution.binance_fields import ms_field as ms_field
from quantum_trader.execution.binance_fields import side_field as side_field
from quantum_trader.record import record

SETTLE_ASSET = "USDT"

_KINDS = frozenset(kind.value for kind in OrderKind)
CONDITIONAL_KINDS = frozenset(kind.value for kind in OrderKind if kind.is_conditional)
PLAIN_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
ALGO_OPEN = frozenset({"NEW", "TRIGGERING", "TRIGGERED"})
ALGO_FIRING = frozenset({"TRIGGERING", "TRIGGERED"})
ALGO_FINISHED = "FINISHED"
_ALGO_FINAL = {
    "CANCELED": OrderStatus.CANCELED,
    "CANCELLED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}


@record
class Execution:
    """What an order executed: quantity and average price (None when nothing executed)."""

    quantity: Decimal
    average_price: Decimal | None

    @classmethod
    def of_fills(cls, fills: Sequence[Fill]) -> Execution:
        quantity = sum((f.quantity for f in fills), ZERO)
        if quantity <= 0:
            return cls(ZERO, None)
        return cls(quantity, sum((f.quantity * f.price for f in fills), ZERO) / quantity)


def parse_market_rules(symbol: str, info: Payload) -> MarketRules:
    """Precision and limits from one exchangeInfo `symbols[]` entry.

    LOT_SIZE bounds limit orders, MARKET_LOT_SIZE market orders (entries and closes): both
    are read. An entry without MARKET_LOT_SIZE falls back to LOT_SIZE for market orders
    (`MarketRules.market_lot` None); a filter without `maxQty` has no maximum (None).
    """
    what = f"exchangeInfo {symbol}"
    filters = {f.get("filterType"): f for f in as_list(field(info, "filters", what), what)}
    price = field(filters, "PRICE_FILTER", what)
    lot = parse_lot_size(field(filters, "LOT_SIZE", what), f"{what} LOT_SIZE")
    market = filters.get("MARKET_LOT_SIZE")
    notional = field(filters, "MIN_NOTIONAL", what)
    return MarketRules(
        symbol=symbol,
        tick_size=decimal_field(price, "tickSize", what, positive=True),
        step_size=lot.step_size,
        min_quantity=lot.min_quantity,
        min_notional=decimal_field(notional, "notional", what, minimum=True),
        max_quantity=lot.max_quantity,
        market_lot=None if market is None else parse_lot_size(market, f"{what} MARKET_LOT_SIZE"),
    )


def parse_lot_size(payload: Payload, what: str) -> LotSize:
    """A LOT_SIZE or MARKET_LOT_SIZE filter: minQty (>= 0, a whole number of steps), stepSize
    (> 0), maxQty (> 0) if given.

    Binance accepts a quantity of minQty plus whole steps; our orders are whole steps (rounded
    down to the step), so a minQty off the step would make every order off Binance's grid.
    """
    has_max = isinstance(payload, Mapping) and payload.get("maxQty") not in (None, "")
    minimum = decimal_field(payload, "minQty", what, minimum=True)
    step = decimal_field(payload, "stepSize", what, positive=True)
    if minimum % step != 0:
        raise MarketDataError(
            f"{what}: field 'minQty' {payload['minQty']!r} is not a whole number of stepSize "
            f"{payload['stepSize']!r}"
        )
    return LotSize(
        min_quantity=minimum,
        step_size=step,
        max_quantity=decimal_field(payload, "maxQty", what, positive=True) if has_max else None,
    )


def parse_mark_prices(
    payload: Any, symbol_by_id: Mapping[str, str], wanted: Sequence[str]
) -> tuple[dict[str, Decimal], dict[str, str]]:
    """Mark prices of `wanted` from premiumIndex, and why each of the others has none (not
    listed, or its row cannot be read): one symbol's row does not cost the others theirs.
    Binance answers a list of rows without `symbol`, that symbol's row alone with it; a
    payload of neither shape is an error."""
    prices: dict[str, Decimal] = {}
    unread: dict[str, str] = {}
    rows = [payload] if isinstance(payload, Mapping) else as_list(payload, "premiumIndex")
    for row in rows:
        symbol = symbol_by_id.get(str(field(row, "symbol", "premiumIndex")))
        if symbol is None or symbol not in wanted:
            continue
        try:
            prices[symbol] = decimal_field(
                row, "markPrice", f"premiumIndex {symbol}", positive=True
            )
        except MarketDataError as error:
            unread[symbol] = str(error)
    for symbol in wanted:
        if symbol not in prices and symbol not in unread:
            unread[symbol] = f"premiumIndex: no mark price for {symbol}"
    return prices, unread


def parse_balance(payload: Any) -> Balance:
    """The account totals of GET /fapi/v3/account (single-asset mode: all in USDT)."""
    what = "account"
    return Balance(
        wallet_usdt=decimal_field(payload, "totalWalletBalance", what),
        free_usdt=decimal_field(payload, "availableBalance", what),
        used_margin_usdt=decimal_field(payload, "totalInitialMargin", what),
        unrealized_pnl_usdt=decimal_field(payload, "totalUnrealizedProfit", what),
    )


def parse_positions(
    payload: Any, symbol_by_id: Mapping[str, str], leverage_by_id: Mapping[str, int]
) -> list[ExchangePosition]:
    """Non-zero one-way positions of GET /fapi/v3/positionRisk; unknown symbols are skipped.

    v3 rows carry no leverage: it comes from `leverage_by_id` (GET /fapi/v1/symbolConfig or
    what we set), and a row without a known leverage is a MarketDataError. Margin is
    `isolatedMargin` where it is not zero (an isolated position), else `initialMargin`, else
    zero (fields v3 may leave out).
    """
    positions = []
    for row in as_list(payload, "positionRisk"):
        market_id = str(field(row, "symbol", "positionRisk"))
        symbol = symbol_by_id.get(market_id)
        what = f"positionRisk {market_id}"
        amount = decimal_field(row, "positionAmt", what)
        if symbol is None or amount == 0 or row.get("positionSide", "BOTH") != "BOTH":
            continue
        if market_id not in leverage_by_id:
            raise MarketDataError(f"{what}: no leverage known for the symbol")
        # A cross position's row says "isolatedMargin": "0" (Binance's v3 example): a string,
        # so truthy; its margin is then initialMargin.
        isolated = row.get("isolatedMargin") not in (None, "") and (
            decimal_field(row, "isolatedMargin", what) != 0
        )
        margin_name = "isolatedMargin" if isolated else "initialMargin"
        positions.append(
            ExchangePosition(
                symbol=symbol,
                side=Side.LONG if amount > 0 else Side.SHORT,
                quantity=abs(amount),
                entry_price=decimal_field(row, "entryPrice", what, positive=True),
                leverage=leverage_by_id[market_id],
                margin_usdt=decimal_field(row, margin_name, what) if row.get(margin_name) else ZERO,
                unrealized_pnl_usdt=decimal_field(row, "unRealizedProfit", what),
            )
        )
    return positions


def parse_leverages(payload: Any) -> dict[str, int]:
    """Leverage by market id from GET /fapi/v1/symbolConfig (or a POST /fapi/v1/leverage
    answer, a single object)."""
    rows = [payload] if isinstance(payload, Mapping) else as_list(payload, "symbolConfig")
    return {
        str(field(row, "symbol", "symbolConfig")): int_field(row, "leverage", "symbolConfig")
        for row in rows
    }


def parse_order(payload: Payload, symbol: str) -> Order:
    """A plain order (POST/GET /fapi/v1/order)."""
    what = f"order {symbol}"
    kind_raw = field(payload, "type", what)
    if kind_raw not in _KINDS:
        raise MarketDataError(f"{what}: unsupported order type {kind_raw!r}")
    kind = OrderKind(kind_raw)
    filled = decimal_field(payload, "executedQty", what)
    average = decimal_field(payload, "avgPrice", what) if payload.get("avgPrice") else ZERO
    created_ms = ms_field(payload, "time" if payload.get("time") else "updateTime", what)
    return Order(
        client_order_id=str(field(payload, "clientOrderId", what)),
        symbol=symbol,
        side=side_field(payload, "side", what),
        kind=kind,
        quantity=decimal_field(payload, "origQty", what),
        status=_status(PLAIN_STATUS, payload, "status", what),
        created_at=utc_from_ms(created_ms),
        exchange_order_id=str(field(payload, "orderId", what)),
        reduce_only=reduce_only_stated(payload.get("reduceOnly"), payload.get("closePosition")),
        filled_quantity=filled,
        average_price=average if average > 0 else None,
        updated_at=utc_from_ms(ms_field(payload, "updateTime", what)),
        close_position=flag(payload.get("closePosition")),
    )


def parse_algo_order(
    payload: Payload,
    symbol: str,
    execution: Execution | None = None,
    *,
    sent_close_all: bool = False,
) -> Order:
    """A conditional order of Binance's Algo Order API (POST/GET /fapi/v1/algoOrder).

    A FINISHED order is booked from `execution` (of its actual order, found by the caller);
    without it the status is UNKNOWN. `detail` holds the actual order id once triggered.
    `sent_close_all`: the answer to our closePosition request, one if the answer leaves the
    flag out.
    """
    what = f"algoOrder {symbol}"
    kind_raw = field(payload, "orderType", what)
    if kind_raw not in _KINDS or kind_raw == OrderKind.MARKET:
        raise MarketDataError(f"{what}: unsupported conditional order type {kind_raw!r}")
    close_all = flag(payload.get("closePosition"))
    if payload.get("closePosition") is None:
        close_all = sent_close_all
    quantity = ZERO  # closePosition orders have no quantity: they close whatever is held
    if payload.get("quantity") not in (None, "") or not close_all:
        quantity = decimal_field(payload, "quantity", what)
    raw_status = str(field(payload, "algoStatus", what))
    status, execution = algo_outcome(raw_status, quantity, execution, close_all=close_all)
    if execution is None and payload.get("actualPrice"):
        price = decimal_field(payload, "actualPrice", what)
        execution = Execution(ZERO, price if price > 0 else None)
    return Order(
        client_order_id=str(field(payload, "clientAlgoId", what)),
        symbol=symbol,
        side=side_field(payload, "side", what),
        kind=OrderKind(kind_raw),
        quantity=quantity,
        status=status,
        created_at=utc_from_ms(ms_field(payload, "createTime", what)),
        exchange_order_id=str(field(payload, "algoId", what)),
        trigger_price=decimal_field(payload, "triggerPrice", what, positive=True),
        reduce_only=reduce_only_stated(payload.get("reduceOnly"), payload.get("closePosition")),
        filled_quantity=execution.quantity if execution else ZERO,
        average_price=execution.average_price if execution else None,
        updated_at=utc_from_ms(ms_field(payload, "updateTime", what)),
        detail=str(payload.get("actualOrderId") or ""),
        triggered_at=firing_since(raw_status, payload.get("triggerTime"), payload["updateTime"]),
        close_position=close_all,
    )


def firing_since(raw_status: str, trigger_ms: object, update_ms: object) -> datetime | None:
    """When a conditional order still open met its trigger (TRIGGERING, TRIGGERED): Binance's
    trigger time, or the update that reported it when that is absent; None otherwise."""
    if raw_status not in ALGO_FIRING:
        return None
    for value in (trigger_ms, update_ms):
        try:
            ms = int(str(value))
        except ValueError:
            continue
        if ms > 0:
            return utc_from_ms(ms)
    raise MarketDataError(f"algoOrder {raw_status}: no triggerTime or updateTime")


def algo_outcome(
    raw_status: str, quantity: Decimal, execution: Execution | None, *, close_all: bool = False
) -> tuple[OrderStatus, Execution | None]:
    """Our status for a Binance algo status (see the module docstring); a close-all order
    (closePosition) that executed anything closed what was held: FILLED."""
    if raw_status in ALGO_OPEN:
        return OrderStatus.OPEN, execution
    if raw_status in _ALGO_FINAL:
        return _ALGO_FINAL[raw_status], execution
    if raw_status != ALGO_FINISHED:
        raise MarketDataError(f"algoOrder: unknown algoStatus {raw_status!r}")
    if execution is None:
        return OrderStatus.UNKNOWN, None
    if execution.quantity >= quantity > 0 or (close_all and execution.quantity > 0):
        return OrderStatus.FILLED, execution
    return OrderStatus.EXPIRED, execution


def is_cancel_success(payload: Any) -> bool:
    """True when DELETE /fapi/v1/algoOrder answered {"code": "200", "msg": "success"}."""
    if not isinstance(payload, Mapping):
        return False
    return str(payload.get("code")) == "200" and str(payload.get("msg", "success")) == "success"


def trigger_window_ms(payload: Payload, slack_ms: int) -> tuple[int, int]:
    """The time window in which a triggered algo order's market order traded."""
    what = "algoOrder"
    start = int(payload.get("triggerTime") or 0) or int_field(payload, "updateTime", what)
    return start - slack_ms, int_field(payload, "updateTime", what) + slack_ms


def pick_triggered_trades(payload: Any, side: OrderSide, trigger_ms: int) -> list[Any]:
    """The userTrades rows of the one order, on `side`, that traded first at or after
    `trigger_ms` (a triggered stop whose actual order id Binance did not report)."""
    rows = [r for r in as_list(payload, "userTrades") if r.get("side") == side.value]
    by_order = trades_by_order(rows, "userTrades")
    if not by_order:
        return []

    def start(order_rows: list[Any]) -> tuple[bool, int]:
        first = min(int_field(r, "time", "userTrades") for r in order_rows)
        return first < trigger_ms, abs(first - trigger_ms)

    return min(by_order.values(), key=start)


def trades_by_order(rows: Sequence[Any], what: str) -> dict[str, list[Any]]:
    """userTrades rows grouped by their Binance order id, in the order listed."""
    by_order: dict[str, list[Any]] = {}
    for row in rows:
        by_order.setdefault(str(field(row, "orderId", what)), []).append(row)
    return by_order


def _status(
    table: Mapping[str, OrderStatus], payload: Payload, name: str, what: str
) -> OrderStatus:
    raw = str(field(payload, name, what))
    if raw not in table:
        raise MarketDataError(f"{what}: unknown {name} {raw!r}")
    return table[raw]


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
