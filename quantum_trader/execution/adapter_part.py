"""What the parts of `CcxtExchange` (ccxt_exchange.py) call on the adapter that inherits them:
its retried reads and its markets. Declared once, for type checking only, by the base of each
part (`OrderCalls`, `AccountSetup`); the adapter defines them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quantum_trader.domain import MarketRules
from quantum_trader.execution.binance_errors import Operation


class AdapterPart:
    if TYPE_CHECKING:

        async def _read(
            self,
            operation: Operation,
            endpoint: str,
            params: Mapping[str, Any],
            absent: frozenset[int] = frozenset(),
            *,
            lookup: bool = False,
        ) -> Any: ...

        async def _market_id(self, symbol: str, operation: Operation) -> str: ...

        async def load_markets(self, reload: bool = False) -> Mapping[str, MarketRules]: ...
