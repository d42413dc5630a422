"""The audit tables on SQLite, buffered: decisions, position events and equity snapshots.

They are only ever appended to, and nothing on the way to an order reads them, so their rows
are held here and written by `flush()` in one transaction; they also flush past
`FLUSH_THRESHOLD_ROWS`, before any query that reads them, and when the repository closes. A
writer that must not wait for its audit trail (a backtest's replay) may hand full batches of
decisions to a process of their own instead (`insert_decisions_aside`, decisions_aside.py)
until the next `flush()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from quantum_trader.domain import Decision, EquitySnapshot, PositionEvent
from quantum_trader.storage import codec
from quantum_trader.storage import sqlite_statements as sql
from quantum_trader.storage.decisions_aside import DecisionsAside
from quantum_trader.storage.sqlite_connection import BUSY_TIMEOUT_MS, SqliteConnection
from quantum_trader.storage.tables import Row

FLUSH_THRESHOLD_ROWS = 5_000
DECISIONS_ASIDE_FINISH_S = 60.0  # a decisions writer process's last batches: milliseconds, normally


class BufferedAudit:
    """The audit rows not written yet, and the decisions writer process when one runs."""

    def __init__(self, connection: SqliteConnection, version: int) -> None:
        self._connection = connection
        tallied = version >= sql.TALLIES_VERSION
        self._count_decisions = sql.TALLIED_DECISIONS if tallied else sql.COUNT_DECISIONS
        self._decisions: list[Row] = []
        self._events: list[Row] = []
        self._equity: list[Row] = []
        self.aside: DecisionsAside | None = None  # `insert_decisions_aside`

    async def record_decisions(self, decisions: Sequence[Decision]) -> None:
        """Buffer decisions until the next flush."""
        self._connection.check_writable()
        self._decisions.extend(codec.encode_decision(d) for d in decisions)
        await self._flush_if_full()

    async def decision_counts(self) -> dict[tuple[str, str], int]:
        await self.flush()
        rows = await self._connection.fetch(self._count_decisions)
        return {(str(g), str(r)): int(n or 0) for g, r, n in rows}

    async def recent_decisions(self, limit: int) -> list[Decision]:
        """The `limit` newest decisions, newest first (ties: latest recorded first)."""
        await self.flush()
        rows = await self._connection.fetch(sql.RECENT_DECISIONS, (max(limit, 0),))
        return [codec.decode_decision(r) for r in rows]

    async def record_position_events(self, events: Sequence[PositionEvent]) -> None:
        """Buffer position events until the next flush."""
        self._connection.check_writable()
        self._events.extend(codec.encode_position_event(e) for e in events)
        await self._flush_if_full()

    async def position_events(self) -> list[PositionEvent]:
        """Events sorted by time, then arrival."""
        await self.flush()
        rows = await self._connection.fetch(sql.SELECT_POSITION_EVENTS)
        return [codec.decode_position_event(r) for r in rows]

    async def record_equity(self, snapshot: EquitySnapshot) -> None:
        """Buffer an equity snapshot until the next flush."""
        self._connection.check_writable()
        self._equity.append(codec.encode_equity(snapshot))
        await self._flush_if_full()

    async def equity_history(self) -> list[EquitySnapshot]:
        """Snapshots sorted by time, then arrival."""
        await self.flush()
        return [codec.decode_equity(r) for r in await self._connection.fetch(sql.SELECT_EQUITY)]

    async def latest_equity(self, count: int) -> list[EquitySnapshot]:
        """The last `count` snapshots, oldest first, read through the time's index."""
        await self.flush()
        rows = await self._connection.fetch(sql.SELECT_LATEST_EQUITY, (max(count, 0),))
        return [codec.decode_equity(r) for r in reversed(rows)]

    async def flush(self) -> None:
        """Write every buffered row in one transaction; on failure the rows stay buffered.
        Decisions going through a writer process (`insert_decisions_aside`) are settled
        first: it ends, and what it did not write is written here."""
        await self._settle_aside()
        await self._flush_buffers(decisions=True)

    async def insert_decisions_aside(self) -> None:
        """From now until the next `flush`, hand each full batch of decisions to a writer
        process (decisions_aside.py), when one starts."""
        self._connection.check_writable()
        await self.flush()
        held = await self.highest_decision_id()
        path = self._connection.path
        self.aside = DecisionsAside.start(path, held, sql.INSERT_DECISION, BUSY_TIMEOUT_MS)

    async def highest_decision_id(self) -> int:
        """The decisions table's highest id: ids are given in order, one past the highest."""
        (held,) = (await self._connection.fetch(sql.HIGHEST_DECISION_ID))[0]
        return int(held or 0)

    async def _settle_aside(self) -> None:
        async with self._connection.lock:  # a flush meanwhile waits: the rows below go first
            aside, self.aside = self.aside, None
            if aside is None:
                return
            await asyncio.to_thread(aside.finish, DECISIONS_ASIDE_FINISH_S)
            unwritten = aside.unwritten(await self.highest_decision_id())
            self._decisions = unwritten + self._decisions

    async def _flush_buffers(self, *, decisions: bool) -> None:
        """Write the buffered rows (but the decisions unless `decisions`) in one transaction;
        on failure they stay buffered."""
        if not ((decisions and self._decisions) or self._events or self._equity):
            return
        async with self._connection.lock:
            batches = (self._decisions if decisions else []), self._events, self._equity
            if decisions:
                self._decisions = []
            self._events, self._equity = [], []
            try:
                await self._connection.transaction(
                    [
                        (sql.INSERT_DECISION, batches[0]),
                        (sql.INSERT_POSITION_EVENT, batches[1]),
                        (sql.INSERT_EQUITY, batches[2]),
                    ]
                )
            except Exception:  # not written (a cancellation arrives after the commit)
                self._decisions = batches[0] + self._decisions
                self._events = batches[1] + self._events
                self._equity = batches[2] + self._equity
                raise

    async def _flush_if_full(self) -> None:
        aside = self.aside
        if aside is None:
            if len(self._decisions) + len(self._events) + len(self._equity) >= FLUSH_THRESHOLD_ROWS:
                await self.flush()
            return
        if len(self._decisions) >= FLUSH_THRESHOLD_ROWS:
            batch, self._decisions = self._decisions, []
            aside.written(await self.highest_decision_id())  # the batches kept till now
            if not aside.send(batch):  # the process failed: what it did not write, here
                await self._settle_aside()
        if len(self._events) + len(self._equity) >= FLUSH_THRESHOLD_ROWS:
            await self._flush_buffers(decisions=self.aside is None)
