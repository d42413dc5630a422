"""The orders Binance itself sent to close the account's position on a symbol: liquidations and
auto-deleveraging (GET /fapi/v1/forceOrders, "User's Force Orders", USER_DATA).

Binance documents the endpoint's filter `autoCloseType` ("LIQUIDATION" for liquidation
orders, "ADL" for ADL orders; without it both are listed), `startTime`/`endTime`, `limit`
(default 50, at most 100) and a weight of 20 with a symbol (50 without); without startTime it
lists the 7 days before endTime. It does not document the order of the rows nor how to page
past a full answer. So each kind is asked on its own (the kind is the filter's, not read from
the orders' client ids, which Binance shows only in its examples: "autoclose-…",
"adl_autoclose"), and a full page is a MarketDataError: not all may be listed. Read only when
the keeper books a close outside the program from the account's trades (keeper/forced.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from quantum_trader.domain import ExitReason
from quantum_trader.errors import MarketDataError
from quantum_trader.execution import binance_wire as wire

FORCE_ORDERS_PAGE = 100  # GET /fapi/v1/forceOrders: default 50, at most 100
AUTO_CLOSE_TYPES = {"LIQUIDATION": ExitReason.LIQUIDATION, "ADL": ExitReason.ADL}
ReadForceOrders = Callable[[Mapping[str, Any]], Awaitable[Any]]  # one forceOrders request


async def force_orders(
    read: ReadForceOrders, symbol: str, market_id: str, start_ms: int, end_ms: int
) -> dict[str, ExitReason]:
    """The force orders on `market_id` from `start_ms` to `end_ms`: Binance order id →
    LIQUIDATION or ADL (two requests, weight 20 each). Rows of another symbol are left
    out; a row without an order id, or a full page, raises MarketDataError."""
    what = f"forceOrders {symbol}"
    found: dict[str, ExitReason] = {}
    for kind, reason in AUTO_CLOSE_TYPES.items():
        params = {
            "symbol": market_id,
            "autoCloseType": kind,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": FORCE_ORDERS_PAGE,
        }
        rows = wire.as_list(await read(params), what)
        if len(rows) >= FORCE_ORDERS_PAGE:
            raise MarketDataError(f"{what}: a full page of {kind} orders, maybe not all listed")
        for row in rows:
            if str(wire.field(row, "symbol", what)) == market_id:
                found[str(wire.int_field(row, "orderId", what))] = reason
    return found
