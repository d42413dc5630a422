"""The backtest's storage: ledger records in memory, audit records streamed to SQLite.

Orders, fills, positions, trades and state stay in memory (no thread hop per write on the hot
path) and are written to the database in one transaction by `save_ledger()`. Decisions,
position events and equity snapshots go straight to SQLite's buffered writer, which flushes
every 5,000 rows (full batches of decisions through a writer process of their own when the
replay starts one: `SqliteRepository.insert_decisions_aside`), so a year of decisions never
has to fit in memory at once. What the report reads of those three is also kept here, small:
the decisions tallied, the events' reasons and the equity's times and values (`held_audit`),
so that a backtest's report needs no read of the database it has just written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
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
from quantum_trader.ports import StateWrite, Writes
from quantum_trader.record import record
from quantum_trader.storage.codec import encode_time
from quantum_trader.storage.memory import InMemoryRepository
from quantum_trader.storage.sqlite import SqliteRepository

DecisionsOfDay = tuple[str, str, int, int]  # day, gate, approved, decisions


@record
class HeldAudit:
    """What the report reads of the audit records, as the database's queries give it
    (report/load.py): the same values in the same order."""

    decisions_by_day: list[DecisionsOfDay]  # by day, gate and approval, sorted
    decision_counts: dict[tuple[str, str], int]  # by gate and reason, sorted
    position_event_reasons: list[str]  # each event's, ordered by time, then arrival
    equity: list[tuple[datetime, float]]  # (time, equity in USDT): by time, then arrival


class _AuditTally:
    """The audit records' tallies, kept as they are recorded."""

    def __init__(self) -> None:
        # (day, gate, approved, reason) -> decisions; the day as the table's text begins,
        # approved as the verdict's bool (`held` counts it as the table's 0 or 1: an `int()`
        # per decision cost ≈ 1,400 instructions). A dict, not a Counter: indexing a subclass
        # of dict takes the slow path (≈ 500 more a decision).
        self.decisions: dict[tuple[str, str, bool, str], int] = {}
        self.events: list[tuple[datetime, int, str]] = []
        self.equity: list[tuple[datetime, float]] = []
        self._day: tuple[datetime | None, str] = (None, "")  # a cycle's decisions share a time

    def add_decisions(self, decisions: Sequence[Decision]) -> None:
        tally = self.decisions
        moment, day = self._day
        for decision in decisions:
            verdict = decision.verdict
            if decision.time != moment:
                moment = decision.time
                day = encode_time(moment)[:10]
            gate, reason = verdict.gate._value_, verdict.reason._value_  # as codec.py reads them
            key = (day, gate, verdict.approved, reason)
            tally[key] = tally.get(key, 0) + 1
        self._day = (moment, day)

    def held(self) -> HeldAudit:
        by_day: Counter[tuple[str, str, int]] = Counter()
        by_reason: Counter[tuple[str, str]] = Counter()
        for (day, gate, approved, reason), decisions in self.decisions.items():
            by_day[day, gate, int(approved)] += decisions
            by_reason[gate, reason] += decisions
        return HeldAudit(
            decisions_by_day=[(d, g, a, n) for (d, g, a), n in sorted(by_day.items())],
            decision_counts=dict(sorted(by_reason.items())),
            position_event_reasons=[reason for *_, reason in sorted(self.events)],
            equity=sorted(self.equity, key=lambda point: point[0]),
        )


class SplitRepository:
    def __init__(self, ledger: InMemoryRepository, database: SqliteRepository) -> None:
        self._ledger = ledger
        self.database = database
        self._tally = _AuditTally()

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

    async def fill_count(self) -> int:
        return await self._ledger.fill_count()

    async def save_position(self, position: Position) -> None:
        await self._ledger.save_position(position)

    async def delete_position(self, symbol: str) -> None:
        await self._ledger.delete_position(symbol)

    async def open_positions(self) -> list[Position]:
        return await self._ledger.open_positions()

    async def record_closed_trade(
        self,
        trade: ClosedTrade,
        *,
        closes_position: bool = False,
        state: Sequence[StateWrite] = (),
        writes: Writes | None = None,
    ) -> ClosedTrade | None:
        return await self._ledger.record_closed_trade(
            trade, closes_position=closes_position, state=state, writes=writes
        )

    async def write(self, writes: Writes) -> None:
        await self._ledger.write(writes)

    async def closed_trades(self) -> list[ClosedTrade]:
        return await self._ledger.closed_trades()

    async def latest_closed_trades(self, count: int) -> list[ClosedTrade]:
        return await self._ledger.latest_closed_trades(count)

    async def closed_trade_count(self) -> int:
        return await self._ledger.closed_trade_count()

    async def amend_closed_trade(
        self, trade: ClosedTrade, *, state: Sequence[StateWrite] = ()
    ) -> ClosedTrade | None:
        return await self._ledger.amend_closed_trade(trade, state=state)

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        await self._ledger.save_state(namespace, key, payload)

    async def load_state(self, namespace: str) -> dict[str, dict[str, Any]]:
        return await self._ledger.load_state(namespace)

    async def delete_state(self, namespace: str, key: str) -> None:
        await self._ledger.delete_state(namespace, key)

    # audit records: SQLite, buffered
    async def record_decisions(self, decisions: Sequence[Decision]) -> None:
        await self.database.record_decisions(decisions)
        self._tally.add_decisions(decisions)

    async def decision_counts(self) -> dict[tuple[str, str], int]:
        return await self.database.decision_counts()

    async def recent_decisions(self, limit: int) -> list[Decision]:
        return await self.database.recent_decisions(limit)

    async def record_position_events(self, events: Sequence[PositionEvent]) -> None:
        await self.database.record_position_events(events)
        held = self._tally.events
        held.extend((e.time, i, str(e.reason)) for i, e in enumerate(events, start=len(held)))

    async def position_events(self) -> list[PositionEvent]:
        return await self.database.position_events()

    async def record_equity(self, snapshot: EquitySnapshot) -> None:
        await self.database.record_equity(snapshot)
        # The float of the value the table holds: its text is the Decimal's, exactly.
        self._tally.equity.append((snapshot.time, float(snapshot.equity_usdt)))

    def held_audit(self) -> HeldAudit:
        """The audit records as the report reads them from the database (`report/load.py`),
        from what was recorded here."""
        return self._tally.held()

    async def equity_history(self) -> list[EquitySnapshot]:
        return await self.database.equity_history()

    async def latest_equity(self, count: int) -> list[EquitySnapshot]:
        return await self.database.latest_equity(count)

    async def flush(self) -> None:
        await self.database.flush()

    async def close(self) -> None:
        await self.database.close()
