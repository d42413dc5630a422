"""The Exchange port, counted: orders by kind and outcome, fills by side, errors by class.

A decorator the composition root puts around whichever exchange it chose (paper or ccxt), so
the counts are the same in every mode and nothing in the trading core knows about metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from quantum_trader.domain import (
    Balance,
    ExchangePosition,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderRequest,
    OrderStatus,
)
from quantum_trader.errors import OrderRejected, OrderStateUnknown, QuantumTraderError
from quantum_trader.ops.known_labels import EXCHANGE_WHERE
from quantum_trader.ops.metrics import Metrics
from quantum_trader.ports import Exchange

T = TypeVar("T")
WHERE = EXCHANGE_WHERE


class MeteredExchange:
    """Delegates every call to `inner`; counts what went through and what failed."""

    def __init__(self, inner: Exchange, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def _count_errors(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except QuantumTraderError as error:
            self._metrics.on_error(error, WHERE)
            raise

    async def load_markets(self) -> Mapping[str, MarketRules]:
        return await self._count_errors(self._inner.load_markets)

    async def fetch_mark_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        return await self._count_errors(lambda: self._inner.fetch_mark_prices(symbols))

    async def fetch_balance(self) -> Balance:
        return await self._count_errors(self._inner.fetch_balance)

    async def fetch_positions(self) -> list[ExchangePosition]:
        return await self._count_errors(self._inner.fetch_positions)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._count_errors(lambda: self._inner.set_leverage(symbol, leverage))

    async def place_order(self, request: OrderRequest) -> Order:
        """Count the order by its outcome: filled, accepted (resting), rejected or unknown."""
        orders = self._metrics.orders
        try:
            order = await self._inner.place_order(request)
        except OrderRejected as error:
            orders.labels(request.kind, "rejected").inc()
            self._metrics.on_error(error, WHERE)
            raise
        except OrderStateUnknown as error:
            orders.labels(request.kind, "unknown").inc()
            self._metrics.on_error(error, WHERE)
            raise
        outcome = "filled" if order.status is OrderStatus.FILLED else "accepted"
        orders.labels(request.kind, outcome).inc()
        return order

    async def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        return await self._count_errors(lambda: self._inner.fetch_order(symbol, client_order_id))

    async def fetch_open_conditional_orders(self, symbol: str | None = None) -> list[Order]:
        return await self._count_errors(lambda: self._inner.fetch_open_conditional_orders(symbol))

    async def cancel_conditional_order(self, symbol: str, client_order_id: str) -> None:
        await self._count_errors(
            lambda: self._inner.cancel_conditional_order(symbol, client_order_id)
        )

    async def fetch_fills(self, symbol: str, client_order_id: str) -> list[Fill]:
        """Fills are fetched once per filled order, right before they are booked."""
        fills = await self._count_errors(lambda: self._inner.fetch_fills(symbol, client_order_id))
        for fill in fills:
            self._metrics.fills.labels(fill.side).inc()
        return fills

    async def fetch_account_fills(self, symbol: str, start: datetime, end: datetime) -> list[Fill]:
        """Read only for a position reduced with no order of ours (keeper/external.py)."""
        return await self._count_errors(lambda: self._inner.fetch_account_fills(symbol, start, end))

    async def fetch_force_orders(
        self, symbol: str, start: datetime, end: datetime
    ) -> dict[str, ExitReason]:
        """Read only for a close outside the program booked from the account's trades."""
        return await self._count_errors(lambda: self._inner.fetch_force_orders(symbol, start, end))

    async def fetch_funding_paid(self, symbol: str, since: datetime) -> Decimal:
        return await self._count_errors(lambda: self._inner.fetch_funding_paid(symbol, since))

    async def close(self) -> None:
        await self._inner.close()
