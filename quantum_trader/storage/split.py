"""The backtest's storage: ledger records in memory, audit records streamed to SQLite.

Orders, fills, positions, trades and state stay in memory (no thread hop per write on the hot
path) and are written to the database in one transaction by `save_ledger()`. Decisions,
position events and equity snapshots go straight to SQLite's buffered writer, which flushes
every 5,000 rows (full batches of decisions through a writer process of their own when the
replay starts one: `SqliteRepository.insert_decisions_aside`), so a year of decisions never
has to fit in memory at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from quantum_trader.domain import (
    ClosedTrade,
    Decision,
    EquitySnapshot,
    Fill,
    Order,
    Position,
    PositionEvent,
)
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.sqlite import SqliteRepository


class SplitRepository:
    def __init__(self, ledger: InMemoryRepository, database: SqliteRepository) -> None:
        self._ledger = ledger
        self.database = database

    async def save_ledger(self) -> None:
        """Write the in-memory ledger records into the database (one transaction)."""
        await self.database.flush()
        await self.database.import_rows(self._ledger.export_rows())

    # ledger records: memory
    async def save_order(self, order: Order) -> None:
        await self._ledger.save_order(order)

    async def get_order(self, client_order_id: str) -> Order | None:
        return await self._ledger.get_order(client_order_id)

    async def orders(self, symbol: str | None = None) -> list[Order]:
        return await self._ledger.orders(symbol)

    async def open_orders(self) -> list[Order]:
        return await self._ledger.open_orders()

    async def record_fills(self, fills: Sequence[Fill]) -> None:
        await self._ledger.record_fills(fills)

    async def fills(self, symbol: str | None = None) -> list[Fill]:
        return await self._ledger.fills(symbol)

    async def save_position(self, position: Position) -> None:
        await self._ledger.save_position(position)

    async def delete_position(self, symbol: str) -> None:
        await self._ledger.delete_position(symbol)

    async def open_positions(self) -> list[Position]:
        return await self._ledger.open_positions()

    async def record_closed_trade(self, trade: ClosedTrade) -> None:
        await self._ledger.record_closed_trade(trade)

    async def closed_trades(self) -> list[ClosedTrade]:
        return await self._ledger.closed_trades()

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        await self._ledger.save_state(namespace, key, payload)

    async def load_state(self, namespace: str) -> dict[str, dict[str, Any]]:
        return await self._ledger.load_state(namespace)

    async def delete_state(self, namespace: str, key: str) -> None:
        await self._ledger.delete_state(namespace, key)

    # audit records: SQLite, buffered
    async def record_decisions(self, decisions: Sequence[Decision]) -> None:
        await self.database.record_decisions(decisions)

    async def decision_counts(self) -> dict[tuple[str, str], int]:
        return await self.database.decision_counts()

    async def recent_decisions(self, limit: int) -> list[Decision]:
        return await self.database.recent_decisions(limit)

    async def record_position_events(self, events: Sequence[PositionEvent]) -> None:
        await self.database.record_position_events(events)

    async def position_events(self) -> list[PositionEvent]:
        return await self.database.position_events()

    async def record_equity(self, snapshot: EquitySnapshot) -> None:
        await self.database.record_equity(snapshot)

    async def equity_history(self) -> list[EquitySnapshot]:
        return await self.database.equity_history()

    async def flush(self) -> None:
        await self.database.flush()

    async def close(self) -> None:
        await self.database.close()
