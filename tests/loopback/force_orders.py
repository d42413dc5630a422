"""The exchange's own orders on the account (GET /fapi/v1/forceOrders, "User's Force Orders"),
as Binance documents them: `autoCloseType` LIQUIDATION or ADL (neither: both), `startTime` and
`endTime` on the order's time (no startTime: the 7 days before endTime, which defaults to now),
`limit` default 50 and at most 100, weight 20 with a symbol and 50 without (weights.py). The
order of the rows is not documented; the stand-in lists the oldest first, as Binance's example.
A liquidation's client order id is "autoclose-<time><sequence>", an ADL's "adl_autoclose", as
in Binance's examples; `Engine.force_close` makes one.
"""

from __future__ import annotations

from typing import Any

from .state import DAY_MS, BinanceError, LoopbackState

AUTO_CLOSE_TYPES = ("LIQUIDATION", "ADL")


def client_order_id(auto_close_type: str, now_ms: int, sequence: int) -> str:
    """The client order id Binance's examples show for the kind of force order."""
    if auto_close_type == "ADL":
        return "adl_autoclose"
    return f"autoclose-{now_ms}{sequence:06d}"


def force_orders(state: LoopbackState, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/forceOrders as documented."""
    limit = int(params.get("limit", 50))
    if not 1 <= limit <= 100:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    kind = params.get("autoCloseType")
    if kind is not None and kind not in AUTO_CLOSE_TYPES:
        raise BinanceError(-1130, "Data sent for parameter 'autoCloseType' is not valid.")
    symbol = state.market(params).market_id if "symbol" in params else None
    end = int(params.get("endTime", state.now_ms))
    start = int(params.get("startTime", end - 7 * DAY_MS))
    rows = [
        order
        for order, order_kind in state.force_orders
        if symbol in (None, order["symbol"])
        and kind in (None, order_kind)
        and start <= order["time"] <= end
    ]
    return sorted(rows, key=lambda order: int(order["time"]))[:limit]
