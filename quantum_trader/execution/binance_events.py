"""Binance USD-M websocket payloads → typed events. Pure functions; no ccxt, no I/O.

Market stream: `!markPrice@arr@1s` (every symbol's mark price, each second). User-data stream:
ORDER_TRADE_UPDATE (plain orders), ALGO_UPDATE (conditional orders), ACCOUNT_UPDATE
(positions), ACCOUNT_CONFIG_UPDATE (leverage), listenKeyExpired. Numbers are strings parsed to
Decimal (never ccxt's floats). A combined-stream wrapper {"stream": ..., "data": ...} is
unwrapped. Events of other types (TRADE_LITE, MARGIN_CALL, CONDITIONAL_ORDER_TRIGGER_REJECT,
STRATEGY_UPDATE, GRID_UPDATE, ...) and symbols outside the market table are ignored (None); a
malformed event of a type we use is a MarketDataError. An order of a type we never send
(LIMIT..., a liquidation's, a triggered conditional order's market order) is not mirrored;
only its fills are kept, each a `TradeReported` (execution type TRADE, or CALCULATED for a
liquidation's; last filled quantity "l" above 0): a person's LIMIT fills, a liquidation's or
ADL's (client ids `autoclose-`, `adl_autoclose`, `settlement_autoclose-`), so the keeper knows
a trade it may not find listed yet.

A conditional order's state is ALGO_UPDATE's alone: an ORDER_TRADE_UPDATE of a conditional
type, or of the market order a triggered one became ("ot" conditional), is ignored; the
triggered order's execution arrives in ALGO_UPDATE's "aq"/"ap". Fields Binance documents as
sometimes absent are not required: commission "n"/"N" (never read: fees come from userTrades;
a reader would take it as charged by binance_fills.py `charged_commission`), "aq"/"ap" before the
trigger, "q" of a close-position conditional order (quantity 0, as the REST parser).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ZERO, Order, OrderKind, OrderStatus
from quantum_trader.errors import MarketDataError
from quantum_trader.execution.binance_fields import reduce_only_stated
from quantum_trader.execution.binance_wire import (
    Execution,
    algo_outcome,
    as_list,
    decimal_field,
    field,
    firing_since,
    int_field,
    ms_field,
    side_field,
)
from quantum_trader.record import record

USER_EVENTS = (
    "ORDER_TRADE_UPDATE",
    "ALGO_UPDATE",
    "ACCOUNT_UPDATE",
    "ACCOUNT_CONFIG_UPDATE",
    "listenKeyExpired",
)
MARK_PRICE_STREAM = "!markPrice@arr@1s"
_KINDS = frozenset(kind.value for kind in OrderKind)
_CONDITIONAL = frozenset(kind.value for kind in OrderKind if kind.is_conditional)
_PLAIN_STATUS = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.OPEN,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


@record
class PositionState:
    """One symbol's one-way position as ACCOUNT_UPDATE reports it (amount 0: flat)."""

    symbol: str
    amount: Decimal  # signed: > 0 long, < 0 short
    entry_price: Decimal
    margin_usdt: Decimal
    unrealized_pnl_usdt: Decimal


@record
class AccountUpdate:
    time_ms: int  # transaction time T
    positions: tuple[PositionState, ...]


@record
class OrderUpdate:
    order: Order
    time_ms: int  # the order's transaction time
    trade_id: str | None = None  # the trade it reports ("x" TRADE, "t"), the userTrades row's id


@record
class TradeReported:
    """A fill of an order the mirror does not track (module doc): its symbol moved and
    traded, nothing more."""

    symbol: str
    time_ms: int  # the trade's transaction time
    trade_id: str | None  # "t", the userTrades row's id; None when not given


@record
class AlgoUpdate:
    order: Order
    raw_status: str  # Binance's algo status: NEW, TRIGGERING, ..., FINISHED
    time_ms: int


@record
class LeverageUpdate:
    symbol: str
    leverage: int
    time_ms: int


@record
class ListenKeyExpired:
    time_ms: int


UserEvent = (
    AccountUpdate | OrderUpdate | TradeReported | AlgoUpdate | LeverageUpdate | ListenKeyExpired
)


def unwrap(message: Any) -> Any:
    """The payload of a combined-stream message, or the message itself."""
    if isinstance(message, Mapping) and "stream" in message and "data" in message:
        return message["data"]
    return message


def parse_mark_prices(
    message: Any, symbol_by_id: Mapping[str, str]
) -> tuple[dict[str, Decimal], dict[str, str]]:
    """Mark prices by symbol from one `!markPrice@arr` message (a list of markPriceUpdate), and
    why each of our symbols whose row cannot be read has none: one bad row costs its symbol's
    mark, not the others' (nor the stream). A message that is not a list of rows is an error."""
    payload = unwrap(message)
    rows = [payload] if isinstance(payload, Mapping) else as_list(payload, "markPrice stream")
    prices: dict[str, Decimal] = {}
    unread: dict[str, str] = {}
    for row in rows:
        if not isinstance(row, Mapping) or row.get("e") != "markPriceUpdate":
            continue
        symbol = symbol_by_id.get(str(row.get("s")))
        if symbol is None:
            continue
        try:
            prices[symbol] = decimal_field(row, "p", f"markPrice {symbol}", positive=True)
        except MarketDataError as error:
            unread[symbol] = str(error)
    return prices, unread


def parse_user_event(message: Any, symbol_by_id: Mapping[str, str]) -> UserEvent | None:
    """One user-data stream message as an event, or None when we do not use it."""
    payload = unwrap(message)
    if not isinstance(payload, Mapping):
        raise MarketDataError(f"user-data stream: expected an object, got {type(payload).__name__}")
    kind = payload.get("e")
    if kind == "ORDER_TRADE_UPDATE":
        return _order_update(payload, symbol_by_id)
    if kind == "ALGO_UPDATE":
        return _algo_update(payload, symbol_by_id)
    if kind == "ACCOUNT_UPDATE":
        return _account_update(payload, symbol_by_id)
    if kind == "ACCOUNT_CONFIG_UPDATE":
        return _leverage_update(payload, symbol_by_id)
    if kind == "listenKeyExpired":
        return ListenKeyExpired(int_field(payload, "E", "listenKeyExpired"))
    return None


def _order_update(
    payload: Mapping[str, Any], symbol_by_id: Mapping[str, str]
) -> OrderUpdate | TradeReported | None:
    what = "ORDER_TRADE_UPDATE"
    o = field(payload, "o", what)
    symbol = symbol_by_id.get(str(field(o, "s", what)))
    if symbol is None:
        return None
    time_ms = ms_field(o, "T", what) if o.get("T") else ms_field(payload, "T", what)
    kind = o.get("o")
    if kind != OrderKind.MARKET or o.get("ot", kind) in _CONDITIONAL:
        return _trade_reported(o, symbol, time_ms)
    status_raw = str(field(o, "X", what))
    if status_raw not in _PLAIN_STATUS:
        raise MarketDataError(f"{what} {symbol}: unknown order status {status_raw!r}")
    average = decimal_field(o, "ap", what)
    order = Order(
        client_order_id=str(field(o, "c", what)),
        symbol=symbol,
        side=side_field(o, "S", what),
        kind=OrderKind(kind),
        quantity=decimal_field(o, "q", what),
        status=_PLAIN_STATUS[status_raw],
        created_at=utc_from_ms(time_ms),
        exchange_order_id=str(field(o, "i", what)),
        reduce_only=reduce_only_stated(o.get("R"), o.get("cp")),
        filled_quantity=decimal_field(o, "z", what),
        average_price=average if average > 0 else None,
        updated_at=utc_from_ms(time_ms),
    )
    return OrderUpdate(order, time_ms, _trade_id(o))


def _trade_reported(o: Mapping[str, Any], symbol: str, time_ms: int) -> TradeReported | None:
    """The fill an update of an order not mirrored reports, or None (not a fill)."""
    if o.get("x") not in _FILLS or decimal_field(o, "l", f"ORDER_TRADE_UPDATE {symbol}") <= 0:
        return None
    return TradeReported(symbol, time_ms, _trade_id(o))


def _trade_id(o: Mapping[str, Any]) -> str | None:
    """The id of the trade an ORDER_TRADE_UPDATE reports, or None (not a trade, or none
    given: another stand-in may leave "t" out, and nothing then waits for its listing)."""
    trade = o.get("t")
    if o.get("x") not in _FILLS or type(trade) is not int or trade <= 0:
        return None
    return str(trade)


# Execution types that are fills: a trade, and a liquidation's ("CALCULATED - Liquidation
# Execution", Binance's Event-Order-Update).
_FILLS = frozenset({"TRADE", "CALCULATED"})


def _algo_update(payload: Mapping[str, Any], symbol_by_id: Mapping[str, str]) -> AlgoUpdate | None:
    what = "ALGO_UPDATE"
    o = field(payload, "o", what)
    symbol = symbol_by_id.get(str(field(o, "s", what)))
    kind = o.get("o")
    if symbol is None or kind not in _KINDS or kind == OrderKind.MARKET:
        return None
    sent_ms = ms_field(payload, "T", what) if payload.get("T") else 0
    time_ms = max(sent_ms, ms_field(payload, "E", what))
    close_all = o.get("cp") is True
    quantity = ZERO  # a close-position order has no quantity: it closes whatever is held
    if o.get("q") not in (None, "") or not close_all:
        quantity = decimal_field(o, "q", what)
    execution = None
    if o.get("aq") not in (None, ""):
        price = decimal_field(o, "ap", what) if o.get("ap") else ZERO
        execution = Execution(decimal_field(o, "aq", what), price if price > 0 else None)
    raw_status = str(field(o, "X", what))
    status, execution = algo_outcome(raw_status, quantity, execution, close_all=close_all)
    order = Order(
        client_order_id=str(field(o, "caid", what)),
        symbol=symbol,
        side=side_field(o, "S", what),
        kind=OrderKind(kind),
        quantity=quantity,
        status=status,
        created_at=utc_from_ms(time_ms),
        exchange_order_id=str(field(o, "aid", what)),
        trigger_price=decimal_field(o, "tp", what, positive=True),
        reduce_only=reduce_only_stated(o.get("R"), o.get("cp")),
        filled_quantity=execution.quantity if execution else ZERO,
        average_price=execution.average_price if execution else None,
        updated_at=utc_from_ms(time_ms),
        detail=str(o.get("ai") or ""),
        triggered_at=firing_since(raw_status, o.get("tt"), time_ms),
        close_position=close_all,
    )
    return AlgoUpdate(order, raw_status, time_ms)


def _account_update(payload: Mapping[str, Any], symbol_by_id: Mapping[str, str]) -> AccountUpdate:
    what = "ACCOUNT_UPDATE"
    account = field(payload, "a", what)
    positions = []
    for row in as_list(account.get("P", []), what):
        symbol = symbol_by_id.get(str(field(row, "s", what)))
        if symbol is None or row.get("ps", "BOTH") != "BOTH":
            continue
        item = f"{what} {symbol}"
        positions.append(
            PositionState(
                symbol=symbol,
                amount=decimal_field(row, "pa", item),
                entry_price=decimal_field(row, "ep", item),
                margin_usdt=decimal_field(row, "iw", item) if row.get("iw") else ZERO,
                unrealized_pnl_usdt=decimal_field(row, "up", item) if row.get("up") else ZERO,
            )
        )
    time_ms = ms_field(payload, "T", what) if payload.get("T") else ms_field(payload, "E", what)
    return AccountUpdate(time_ms, tuple(positions))


def _leverage_update(
    payload: Mapping[str, Any], symbol_by_id: Mapping[str, str]
) -> LeverageUpdate | None:
    config = payload.get("ac")
    if not isinstance(config, Mapping):
        return None  # a multi-assets mode change ("ai"): nothing we mirror
    symbol = symbol_by_id.get(str(config.get("s")))
    if symbol is None:
        return None
    what = "ACCOUNT_CONFIG_UPDATE"
    time_ms = ms_field(payload, "T", what) if payload.get("T") else ms_field(payload, "E", what)
    return LeverageUpdate(symbol, int_field(config, "l", what), time_ms)
