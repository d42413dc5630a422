"""Binance USD-M request parameters from domain objects. Pure functions; no ccxt, no I/O.

Conditional orders carry workingType=MARK_PRICE and priceProtect=FALSE (see ccxt_exchange's
docstring for why); market orders ask for newOrderRespType=RESULT so the answer carries the
status and the executed quantity.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from quantum_trader.domain import MarketRules, OrderRequest, ReasonCode
from quantum_trader.errors import OrderRejected


def to_wire(value: Decimal) -> str:
    """A Decimal as a plain decimal string (no exponent), as Binance expects."""
    return format(value.normalize(), "f")


def order_params(
    request: OrderRequest, market_id: str, quantity: Decimal, rules: MarketRules
) -> dict[str, Any]:
    """POST /fapi/v1/order (market) or /fapi/v1/algoOrder (conditional) parameters, with our
    client order id; `quantity` is already rounded to the market's step (none is sent with
    closePosition, a close-all stop)."""
    params: dict[str, Any] = {
        "symbol": market_id,
        "side": request.side.value,
        "type": request.kind.value,
    }
    if request.close_position and not request.kind.is_conditional:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, "closePosition is for conditional orders")
    if request.close_position:  # Binance refuses a quantity or reduceOnly beside it
        params["closePosition"] = "true"
    else:
        params["quantity"] = to_wire(quantity)
        if request.reduce_only:
            params["reduceOnly"] = "true"
    if not request.kind.is_conditional:
        return {**params, "newClientOrderId": request.client_order_id, "newOrderRespType": "RESULT"}
    if request.trigger_price is None or request.trigger_price <= 0:
        raise OrderRejected(ReasonCode.ORDER_REJECTED, "a conditional order needs a trigger")
    return {
        **params,
        "algoType": "CONDITIONAL",
        "clientAlgoId": request.client_order_id,
        "triggerPrice": to_wire(rules.round_price(request.trigger_price)),
        "workingType": "MARK_PRICE",
        "priceProtect": "FALSE",
    }
