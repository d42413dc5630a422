"""Mark prices over REST (GET /fapi/v1/premiumIndex) at the weight Binance charges for them.

Binance documents weight 1 with `symbol` (the answer: that symbol's object) and 10 without
(a list of every symbol's). Up to SINGLE_READS_AT_MOST symbols are read one request each, sent
together; more in the one request for all. Time: ccxt's throttle (rateLimit 50 ms; it charges
premiumIndex 1 in either shape) sends k single reads 50 ms apart, so they end ≈ (k − 1) × 50 ms
after one round trip; the request for all takes one round trip for a larger answer. At k = 4
that is 150 ms more for 6 weight less (72 a minute at a 5 s keeper tick); from 5 to 9 the
saving shrinks to 5 … 1 while the wait grows to 200 … 400 ms, on a tick that moves stops.

A symbol whose read fails (refused, e.g. -1121 for one delisted; unreadable; unavailable
after the retries) is left out, said once while it stays so (`mark_prices_incomplete`), so
that it does not cost the others theirs; none read is MarketDataError, or the RetryLater that
kept them unread. A rate limit concerns the IP, not the symbol: RateLimited ends the whole read
and the reads not yet sent are not sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from quantum_trader.errors import MarketDataError, RateLimited, RetryLater
from quantum_trader.execution import binance_wire as wire
from quantum_trader.log import get_logger

log = get_logger("ccxt_exchange")
SINGLE_READS_AT_MOST = 4
ReadPremiumIndex = Callable[[Mapping[str, Any]], Awaitable[Any]]  # one request, with retries
Read = tuple[dict[str, Decimal], dict[str, str], RetryLater | None]  # marks, why not, error


class MarkPriceReads:
    """premiumIndex read per symbol or for all (module docstring), and the symbols the last
    read left out (said again only when they change)."""

    def __init__(self, read: ReadPremiumIndex) -> None:
        self._read = read
        self._unread: set[str] = set()

    async def read(
        self, market_ids: Mapping[str, str], symbol_by_id: Mapping[str, str]
    ) -> dict[str, Decimal]:
        """Mark prices of the symbols of `market_ids` (ccxt symbol → Binance market id)."""
        symbols = list(market_ids)
        if len(symbols) > SINGLE_READS_AT_MOST:
            prices, unread = wire.parse_mark_prices(await self._read({}), symbol_by_id, symbols)
            transient: list[RetryLater] = []
        else:
            prices, unread, transient = await self._each(market_ids, symbol_by_id)
        if symbols and not prices:
            if transient:
                raise transient[0]
            raise MarketDataError("; ".join(unread.values()))
        if unread and set(unread) != self._unread:
            log.warning(
                "mark_prices_incomplete",
                symbols=sorted(unread),
                error="; ".join(unread.values()),
                detail="left out; the other symbols' marks are used",
            )
        self._unread = set(unread)
        return prices

    async def _each(
        self, market_ids: Mapping[str, str], symbol_by_id: Mapping[str, str]
    ) -> tuple[dict[str, Decimal], dict[str, str], list[RetryLater]]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._one(symbol, market_id, symbol_by_id))
                    for symbol, market_id in market_ids.items()
                ]
        except ExceptionGroup as failed:  # a rate limit, or a refusal no symbol explains
            raise failed.exceptions[0] from None
        prices: dict[str, Decimal] = {}
        unread: dict[str, str] = {}
        transient: list[RetryLater] = []
        for task in tasks:
            marks, why, error = task.result()
            prices.update(marks)
            unread.update(why)
            transient.extend([error] if error is not None else [])
        return prices, unread, transient

    async def _one(self, symbol: str, market_id: str, symbol_by_id: Mapping[str, str]) -> Read:
        try:
            payload = await self._read({"symbol": market_id})
        except RateLimited:
            raise
        except (MarketDataError, RetryLater) as error:
            why = {symbol: f"premiumIndex {symbol}: {error}"}
            return {}, why, error if isinstance(error, RetryLater) else None
        try:
            prices, unread = wire.parse_mark_prices(payload, symbol_by_id, [symbol])
        except MarketDataError as error:  # not premiumIndex's shape at all
            return {}, {symbol: str(error)}, None
        return prices, unread, None
