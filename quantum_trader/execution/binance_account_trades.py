"""The account's trades on a symbol in a time window (GET /fapi/v1/userTrades), read whole.

Binance answers at most TRADES_PAGE rows a request and does not say which end of a crowded
window a page holds. A full page is read on from its last trade id (`fromId`, which Binance
takes only without a time) until a page ends or passes the window; and one read up to the
first page's first trade time must list no trade older than it. More than TRADES_PAGES pages,
or trades left out, is a MarketDataError: the keeper then books at the mark
(keeper/external.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from quantum_trader.errors import MarketDataError
from quantum_trader.execution import binance_wire as wire

TRADES_PAGE = 1_000  # GET /fapi/v1/userTrades: default 500, at most 1,000
TRADES_PAGES = 5  # the account's trades in a window: at most 5,000 read (weight 5 a page)
ReadTrades = Callable[[Mapping[str, Any]], Awaitable[Any]]  # one userTrades request


async def account_trades(
    read: ReadTrades, symbol: str, market_id: str, start_ms: int, end_ms: int
) -> list[Any]:
    """Every userTrades row from `start_ms` to `end_ms` (`read` asks with TRADES_PAGE)."""
    what = f"userTrades {symbol}"
    window = {"symbol": market_id, "startTime": start_ms, "endTime": end_ms}
    page = list(wire.as_list(await read(window), what))
    rows = list(page)
    if len(page) >= TRADES_PAGE:
        first = min(wire.int_field(r, "id", what) for r in page)
        first_ms = min(wire.int_field(r, "time", what) for r in page)
        older = wire.as_list(await read({**window, "endTime": first_ms}), what)
        if any(wire.int_field(r, "id", what) < first for r in older):
            raise MarketDataError(f"{what}: the page left out older trades in the window")
    for _ in range(TRADES_PAGES - 1):
        if len(page) < TRADES_PAGE:
            return rows
        last = max(wire.int_field(r, "id", what) for r in page)
        page = list(wire.as_list(await read({"symbol": market_id, "fromId": last + 1}), what))
        inside = [r for r in page if wire.int_field(r, "time", what) <= end_ms]
        rows += inside
        if len(inside) < len(page):
            return rows
    if len(page) < TRADES_PAGE:
        return rows
    raise MarketDataError(f"{what}: more than {TRADES_PAGE * TRADES_PAGES} trades in the window")
