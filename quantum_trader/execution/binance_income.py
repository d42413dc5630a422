"""The account's funding settlements on a symbol (GET /fapi/v1/income, incomeType FUNDING_FEE).

Binance documents `startTime`/`endTime` (neither: the last 7 days), `limit` (default 100, at
most 1,000), the oldest first, and that only the last three months are kept; it documents no
paging token. So the rows are read a page at a time from the oldest, each next page from the
last time listed, a row listed twice counted once (`tranId` is unique per income type).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from quantum_trader.execution import binance_wire as wire

INCOME_PAGE = 1_000  # GET /fapi/v1/income: default 100, at most 1,000
INCOME_KEPT = timedelta(days=90)  # "only contains data for the last three months"
ReadIncome = Callable[[Mapping[str, Any]], Awaitable[Any]]  # one income request


async def funding_rows(read: ReadIncome, market_id: str, start_ms: int) -> list[Any]:
    """Every FUNDING_FEE row on `market_id` from `start_ms`, a page of INCOME_PAGE at a time
    (a symbol settling hourly settles 1,000 times in 42 days)."""
    params = {"symbol": market_id, "incomeType": "FUNDING_FEE", "limit": INCOME_PAGE}
    start, rows, seen = start_ms, list[Any](), set[tuple[object, ...]]()
    while True:
        listed = wire.as_list(await read({**params, "startTime": start}), "income")
        # tranId is unique per income type: a settlement on a page boundary counts once.
        new = [r for r in listed if _new_income(r, seen)]
        rows += new
        # A full page with nothing new: an answer that ignores startTime, not more pages.
        if len(listed) < INCOME_PAGE or not new:
            return rows
        # From the last time listed again (its other rows may be on the next page); past
        # it when a whole page shares it.
        latest = max(wire.int_field(r, "time", "income") for r in listed)
        start = latest if latest > start else start + 1


def _new_income(row: Any, seen: set[tuple[object, ...]]) -> bool:
    """Whether income `row` was not read before (and note it); a row that is not an object
    is left for the parser to refuse."""
    if not isinstance(row, dict):
        return True
    key = (row.get("tranId"), row.get("time"), row.get("income"))
    if key in seen:
        return False
    seen.add(key)
    return True
