"""Order acceptance for the paper exchange: Binance's checks, then a fill or a booked trigger.

Checks, in order: duplicate client order id, unknown symbol, quantity precision and minimum;
for market orders the MARKET_LOT_SIZE filter (step, minimum, and maximum: above it Binance's
-4005 "Quantity greater than max quantity.", reduce-only closes included), the reduce-only
rule, the minimum notional (reduce-only exempt), the position limit of the symbol's leverage
(its leverage brackets, -2027) and the free balance; for conditional orders
reduce-only, trigger precision, one close-all order (closePosition, no quantity and so no lot
filter) per symbol and side (Binance -4130) and only beside a position it would close (-4509;
it expires with that position: `expire_close_all`), "would immediately trigger" (Binance
-2021) and at most 10 open conditional orders per symbol (MAX_NUM_ALGO_ORDERS).
"""

from __future__ import annotations

from decimal import Decimal

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import (
    MarketRules,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    ReasonCode,
)
from quantum_trader.errors import MarketDataError, OrderRejected
from quantum_trader.execution.paper_ledger import Ledger
from quantum_trader.execution.paper_triggers import (
    ConditionalBook,
    closes_held,
    expire_close_all,
    would_trigger_now,
)
from quantum_trader.record import replace

MAX_OPEN_CONDITIONAL_PER_SYMBOL = 10
LONG_PRICING = Decimal("1.0005")


def place(ledger: Ledger, book: ConditionalBook, request: OrderRequest, now_ms: int) -> Order:
    """Accept `request` at `now_ms` or raise OrderRejected; the account is unchanged on reject."""
    rules = _check_common(ledger, request)
    price = _price_now(ledger, request.symbol, now_ms)
    if request.kind.is_conditional:
        order = _book_conditional(ledger, book, request, rules, price, now_ms)
    else:
        order = _fill_market(ledger, request, rules, price, now_ms)
    ledger.state.orders[order.client_order_id] = order
    ledger.state.next_order_no += 1
    if not request.kind.is_conditional:
        expire_close_all(ledger, book, request.symbol, now_ms)
    return order


def cancel_conditional(
    ledger: Ledger, book: ConditionalBook, symbol: str, client_order_id: str, now_ms: int
) -> Order:
    """Cancel an open conditional order; unknown or no longer open → OrderRejected."""
    order = ledger.state.orders.get(client_order_id)
    if order is None or order.symbol != symbol or not order.kind.is_conditional:
        raise OrderRejected(
            ReasonCode.ORDER_REJECTED, f"unknown conditional order {client_order_id} on {symbol}"
        )
    if order.status is not OrderStatus.OPEN:
        raise OrderRejected(
            ReasonCode.ORDER_REJECTED, f"order {client_order_id} is already {order.status}"
        )
    canceled = replace(order, status=OrderStatus.CANCELED, updated_at=utc_from_ms(now_ms))
    book.remove(order)
    ledger.state.orders[client_order_id] = canceled
    return canceled


def set_leverage(ledger: Ledger, symbol: str, leverage: int) -> None:
    """Set the symbol's leverage; an open position's isolated margin must still fit."""
    rules = ledger.rules.get(symbol)
    if rules is None:
        raise OrderRejected(ReasonCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
    if leverage < 1:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, f"leverage {leverage} is below 1")
    if leverage > rules.max_leverage:
        raise OrderRejected(
            ReasonCode.LEVERAGE_TOO_HIGH,
            f"leverage {leverage} above {symbol}'s maximum {rules.max_leverage}",
        )
    free_before, margin_before = ledger.free(), ledger.margin(symbol)
    previous = ledger.leverage(symbol)
    ledger.set_leverage(symbol, leverage)
    if ledger.margin(symbol) - margin_before > max(free_before, Decimal(0)):
        ledger.set_leverage(symbol, previous)
        raise OrderRejected(
            ReasonCode.INSUFFICIENT_FREE_BALANCE,
            f"lowering leverage to {leverage} needs more margin than is free",
        )


def _check_common(ledger: Ledger, request: OrderRequest) -> MarketRules:
    if request.client_order_id in ledger.state.orders:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, "duplicate client order id")
    rules = ledger.rules.get(request.symbol)
    if rules is None:
        raise OrderRejected(ReasonCode.UNKNOWN_SYMBOL, f"unknown symbol {request.symbol!r}")
    if request.close_position:  # no quantity: it closes whatever is held
        if not request.kind.is_conditional:
            raise OrderRejected(
                ReasonCode.ORDER_REJECTED, "closePosition is for conditional orders"
            )
        return rules
    if request.quantity <= 0:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, f"quantity {request.quantity} <= 0")
    _check_lot(request.quantity, rules.step_size, rules.min_quantity, "")
    return rules


def _check_lot(quantity: Decimal, step: Decimal, minimum: Decimal, which: str) -> None:
    """A lot filter's step and minimum (`which`: "" for LOT_SIZE, "market order " for
    MARKET_LOT_SIZE)."""
    if quantity % step != 0:
        raise OrderRejected(
            ReasonCode.BAD_PRECISION, f"quantity {quantity} is not a multiple of {which}step {step}"
        )
    if quantity < minimum:
        raise OrderRejected(
            ReasonCode.BELOW_MIN_QUANTITY, f"quantity {quantity} below {which}minimum {minimum}"
        )


def _price_now(ledger: Ledger, symbol: str, now_ms: int) -> Decimal:
    try:
        return ledger.fill_price(symbol, now_ms)
    except MarketDataError as error:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, str(error)) from error


def _fill_market(
    ledger: Ledger, request: OrderRequest, rules: MarketRules, price: Decimal, now_ms: int
) -> Order:
    _check_market_lot(request, rules)
    quantity = _reduce_only_quantity(ledger, request) if request.reduce_only else request.quantity
    notional = quantity * price
    if not request.reduce_only and notional < rules.min_notional:
        raise OrderRejected(
            ReasonCode.BELOW_MIN_NOTIONAL,
            f"notional {notional} below minimum {rules.min_notional} USDT",
        )
    fill_price = ledger.taker_price(request.symbol, request.side, price, quantity, now_ms)
    plan = ledger.plan(request.symbol, request.side, quantity, fill_price)
    if plan.opening > 0:
        _check_bracket(ledger, request, rules, plan.opening, price)
        needed = ledger.required_margin(request.symbol, plan, fill_price) + plan.fee_usdt
        available = ledger.free() + plan.released_margin_usdt + plan.realized_pnl_usdt
        if needed > available:
            raise OrderRejected(
                ReasonCode.INSUFFICIENT_FREE_BALANCE,
                f"needs {needed} USDT margin and fee, {available} USDT free",
            )
    fill = ledger.execute(
        request.client_order_id, request.symbol, request.side, quantity, fill_price, now_ms
    )
    return replace(
        _accepted(ledger, request, now_ms),
        status=OrderStatus.FILLED,
        filled_quantity=quantity,
        average_price=fill_price,
        fee_usdt=fill.fee_usdt,
    )


def _check_market_lot(request: OrderRequest, rules: MarketRules) -> None:
    """Binance's MARKET_LOT_SIZE filter on the quantity sent (LOT_SIZE's without one)."""
    lot = rules.market_lot_size
    if lot.exceeded_by(request.quantity):
        raise OrderRejected(
            ReasonCode.ABOVE_MAX_QUANTITY,
            f"Quantity greater than max quantity. (-4005): {request.quantity} above the market "
            f"order maximum {lot.max_quantity}",
        )
    _check_lot(request.quantity, lot.step_size, lot.min_quantity, "market order ")


def _check_bracket(
    ledger: Ledger, request: OrderRequest, rules: MarketRules, opening: Decimal, price: Decimal
) -> None:
    """Binance's position limit at the symbol's leverage (its leverage brackets): the position
    the order leaves, a long priced at 1.0005 × the price as Binance prices a long market
    order for it (its FAQ "Cost Required to Open a Position"; the book's ask is not known)."""
    position = ledger.state.positions.get(request.symbol)
    held = position.quantity if position and position.side.entry_order_side is request.side else 0
    if request.side is OrderSide.BUY:
        price *= LONG_PRICING
    notional = (held + opening) * price
    leverage = ledger.leverage(request.symbol)
    if rules.max_leverage_for(notional) < leverage:
        raise OrderRejected(
            ReasonCode.LEVERAGE_TOO_HIGH,
            f"Exceeded the maximum allowable position at current leverage. (-2027): "
            f"{notional:.2f} USDT at {leverage}x",
        )


def _reduce_only_quantity(ledger: Ledger, request: OrderRequest) -> Decimal:
    position = ledger.state.positions.get(request.symbol)
    if position is None:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, "reduce-only order with no position")
    if position.side.exit_order_side is not request.side:
        raise OrderRejected(
            ReasonCode.ORDER_REJECTED, "reduce-only order would increase the position"
        )
    return min(request.quantity, position.quantity)


def _book_conditional(
    ledger: Ledger,
    book: ConditionalBook,
    request: OrderRequest,
    rules: MarketRules,
    price: Decimal,
    now_ms: int,
) -> Order:
    trigger = request.trigger_price
    if not request.reduce_only:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, "conditional orders must be reduce-only")
    if trigger is None or trigger <= 0:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, "conditional order needs a trigger > 0")
    if not rules.is_price_precise(trigger):
        raise OrderRejected(
            ReasonCode.BAD_PRECISION,
            f"trigger {trigger} is not a multiple of tick {rules.tick_size}",
        )
    if request.close_position and any(
        o.close_position and o.side is request.side for o in book.orders(request.symbol)
    ):
        raise OrderRejected(
            ReasonCode.CLOSE_ALL_EXISTS,
            "An open stop or take profit order with GTE and closePosition in the direction "
            "is existing. (-4130)",
        )
    # Binance ties a close-all order to the open position (time in force GTE_GTC).
    if request.close_position and not closes_held(ledger, request.symbol, request.side):
        raise OrderRejected(
            ReasonCode.NO_POSITION_FOR_CLOSE_ALL,
            "Time in Force (TIF) GTE can only be used with open positions. (-4509)",
        )
    if book.count(request.symbol) >= MAX_OPEN_CONDITIONAL_PER_SYMBOL:
        raise OrderRejected(
            ReasonCode.ORDER_REJECTED,
            f"{MAX_OPEN_CONDITIONAL_PER_SYMBOL} conditional orders already open on the symbol",
        )
    order = _accepted(ledger, request, now_ms)
    if would_trigger_now(order, price):
        raise OrderRejected(
            ReasonCode.ORDER_REJECTED, f"order would immediately trigger (price {price})"
        )
    book.add(order)
    return order


def _accepted(ledger: Ledger, request: OrderRequest, now_ms: int) -> Order:
    stamp = utc_from_ms(now_ms)
    return replace(
        Order.pending(request, stamp),
        status=OrderStatus.OPEN,
        exchange_order_id=f"paper-{ledger.state.next_order_no}",
    )
