"""The Repository port on SQLite (aiosqlite): WAL, versioned migrations, buffered audit rows.

Orders, fills, positions, closed trades and state are committed before the call returns, so an
order intent written before its request leaves survives kill -9 (WAL with synchronous=NORMAL is
durable against a process crash); a closed trade, its position's deletion, the state entries
it changes and the writes that go with it are one transaction, and so are the writes given to
`write` together. Decisions, position events and equity snapshots are buffered
and written by `flush()` in one transaction; they also flush past `FLUSH_THRESHOLD_ROWS`, before
any query that reads them, and on `close()`. A writer that must not wait for its audit trail (a
backtest's replay) may hand full batches of decisions to a process of their own instead
(`insert_decisions_aside`, decisions_aside.py) until the next `flush()`.

`SqliteRepository` keeps the port's promises with its parts: sqlite_open.py opens, checks and
migrates the file; sqlite_connection.py serialises the writes, each one transaction;
sqlite_statements.py holds the SQL, table by table; sqlite_audit.py buffers the audit tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

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
from quantum_trader.storage import codec
from quantum_trader.storage import sqlite_statements as sql
from quantum_trader.storage.decisions_aside import DecisionsAside
from quantum_trader.storage.migrate import Migration
from quantum_trader.storage.saved import read_back
from quantum_trader.storage.sqlite_audit import FLUSH_THRESHOLD_ROWS, BufferedAudit
from quantum_trader.storage.sqlite_connection import ReadOnlyRepositoryError, SqliteConnection
from quantum_trader.storage.sqlite_open import open_database
from quantum_trader.storage.tables import RepositoryRows, Row

__all__ = ["FLUSH_THRESHOLD_ROWS", "ReadOnlyRepositoryError", "SqliteRepository"]


class SqliteRepository:
    """The Repository port on one SQLite file. Create it with `await SqliteRepository.open()`."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        *,
        read_only: bool,
        version: int,
        applied: tuple[int, ...],
    ) -> None:
        self._connection = SqliteConnection(conn, path, read_only=read_only)
        self._version = version
        self._applied = applied
        self._audit = BufferedAudit(self._connection, version)
        self._order_reads = sql.order_reads(version)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        read_only: bool = False,
        migrations: Sequence[Migration] | None = None,
    ) -> SqliteRepository:
        """Open (and for a writer create and migrate) the database at `path`.

        `read_only` opens it with `mode=ro` so the CLI can read while the daemon writes; it
        never migrates. `migrations` replaces the bundled ones (tests only). Before anything
        is read or migrated, SQLite's `quick_check` runs over the whole file. Raise
        OperatorActionRequired when the file is not a SQLite database, is damaged, cannot be
        opened, or has a schema this program does not know or that differs from its
        migrations (a dropped table, an altered column).
        """
        opened = await open_database(path, read_only=read_only, migrations=migrations)
        return cls(
            opened.connection,
            path,
            read_only=read_only,
            version=opened.version,
            applied=opened.applied,
        )

    @property
    def path(self) -> Path:
        return self._connection.path

    @property
    def schema_version(self) -> int:
        return self._version

    @property
    def applied_migrations(self) -> tuple[int, ...]:
        """Versions this `open()` applied; empty when the schema was already current."""
        return self._applied

    async def save_order(self, order: Order) -> None:
        """Insert or update by client order id; the first `created_at` is kept."""
        await self._connection.write(sql.UPSERT_ORDER, [codec.encode_order(order)])

    async def get_order(self, client_order_id: str) -> Order | None:
        rows = await self._connection.fetch(self._order_reads.select_one, (client_order_id,))
        return codec.decode_order(rows[0]) if rows else None

    async def orders(self, symbol: str | None = None) -> list[Order]:
        """Orders sorted by created_at, then client order id."""
        rows = await self._connection.fetch(*self._order_reads.select(symbol))
        return [codec.decode_order(r) for r in rows]

    async def open_orders(self) -> list[Order]:
        """Orders still PENDING, OPEN or UNKNOWN, sorted like `orders()`."""
        reads = self._order_reads
        rows = await self._connection.fetch(reads.select_open, sql.OPEN_ORDER_STATUSES)
        return [codec.decode_order(r) for r in rows]

    async def record_fills(self, fills: Sequence[Fill]) -> None:
        """Store fills; a fill already stored (same symbol and trade id) is ignored."""
        await self._connection.write(sql.INSERT_FILL, [codec.encode_fill(f) for f in fills])

    async def fills(self, symbol: str | None = None) -> list[Fill]:
        """Fills sorted by time, then trade id (as text), then arrival."""
        rows = await self._connection.fetch(*sql.select_fills(symbol))
        return [codec.decode_fill(r) for r in rows]

    async def fill_count(self) -> int:
        return await self._count(sql.COUNT_FILLS)

    async def save_position(self, position: Position) -> None:
        await self._connection.write(sql.UPSERT_POSITION, [codec.encode_position(position)])

    async def delete_position(self, symbol: str) -> None:
        await self._connection.write(sql.DELETE_POSITION, [(symbol,)])

    async def open_positions(self) -> list[Position]:
        """Positions sorted by symbol."""
        rows = await self._connection.fetch(sql.SELECT_POSITIONS)
        return [codec.decode_position(r) for r in rows]

    async def record_closed_trade(
        self,
        trade: ClosedTrade,
        *,
        closes_position: bool = False,
        state: Sequence[StateWrite] = (),
        writes: Writes | None = None,
    ) -> ClosedTrade | None:
        """Store a round trip and `state` in one transaction; the same (symbol, entry order,
        close time) is stored once: where it is already, that trade is returned and neither
        `trade` nor `state` written. With `closes_position`, the symbol's position is deleted
        in the same transaction (also when the trade was stored already), then `writes`
        written in it (always)."""
        row = codec.encode_closed_trade(trade)
        batches = [(sql.INSERT_CLOSED_TRADE, [row]), (sql.UPSERT_STATE, sql.state_rows(state))]
        also = sql.write_batches(writes) if writes is not None else []
        self._connection.check_writable()
        async with self._connection.lock:  # read and write with no other write between
            stored = await self._stored_trade(row)
            if stored is not None:
                batches = []
            if closes_position:
                batches.append((sql.DELETE_POSITION, [(trade.symbol,)]))
            batches += also
            if any(rows for _, rows in batches):
                await self._connection.transaction(batches)
        return stored

    async def write(self, writes: Writes) -> None:
        """Write `writes` in one transaction."""
        self._connection.check_writable()
        batches = sql.write_batches(writes)
        async with self._connection.lock:
            await self._connection.transaction(batches)

    async def closed_trades(self) -> list[ClosedTrade]:
        """Trades sorted by closed_at, then arrival."""
        rows = await self._connection.fetch(sql.SELECT_CLOSED_TRADES)
        return [codec.decode_closed_trade(r) for r in rows]

    async def latest_closed_trades(self, count: int) -> list[ClosedTrade]:
        """The last `count` of `closed_trades()`, read through the closing time's index."""
        rows = await self._connection.fetch(sql.SELECT_LATEST_CLOSED_TRADES, (max(count, 0),))
        return [codec.decode_closed_trade(r) for r in reversed(rows)]

    async def closed_trade_count(self) -> int:
        return await self._count(sql.COUNT_CLOSED_TRADES)

    async def amend_closed_trade(
        self, trade: ClosedTrade, *, state: Sequence[StateWrite] = ()
    ) -> ClosedTrade | None:
        """Update the row of the same (symbol, entry order, close time) in place (its id, so
        its place in `closed_trades()`, kept) and write `state`, in one transaction; the trade
        as it was, or None without one. One equal to `trade` writes nothing."""
        self._connection.check_writable()
        row = codec.encode_closed_trade(trade)
        amendment = sql.closed_trade_amendment(row)
        upserts = sql.state_rows(state)
        async with self._connection.lock:  # read and update with no other write between
            was = await self._stored_trade(row)
            if was is None or was == trade:
                return was
            await self._connection.transaction(
                [(sql.AMEND_CLOSED_TRADE, [amendment]), (sql.UPSERT_STATE, upserts)]
            )
        return was

    async def _count(self, query: str) -> int:
        ((rows,),) = await self._connection.fetch(query)
        return int(rows or 0)

    async def _stored_trade(self, row: Row) -> ClosedTrade | None:
        """The trade stored under encoded `row`'s key, if any."""
        rows = await self._connection.fetch(sql.SELECT_CLOSED_TRADE, codec.closed_trade_key(row))
        return codec.decode_closed_trade(rows[0]) if rows else None

    async def record_decisions(self, decisions: Sequence[Decision]) -> None:
        """Buffer decisions until the next flush."""
        await self._audit.record_decisions(decisions)

    async def decision_counts(self) -> dict[tuple[str, str], int]:
        """Read from the tallies the database keeps (schema 3 on), not the decisions."""
        return await self._audit.decision_counts()

    async def recent_decisions(self, limit: int) -> list[Decision]:
        """The `limit` newest decisions, newest first (ties: latest recorded first)."""
        return await self._audit.recent_decisions(limit)

    async def record_position_events(self, events: Sequence[PositionEvent]) -> None:
        """Buffer position events until the next flush."""
        await self._audit.record_position_events(events)

    async def position_events(self) -> list[PositionEvent]:
        """Events sorted by time, then arrival."""
        return await self._audit.position_events()

    async def record_equity(self, snapshot: EquitySnapshot) -> None:
        """Buffer an equity snapshot until the next flush."""
        await self._audit.record_equity(snapshot)

    async def equity_history(self) -> list[EquitySnapshot]:
        """Snapshots sorted by time, then arrival."""
        return await self._audit.equity_history()

    async def latest_equity(self, count: int) -> list[EquitySnapshot]:
        """The last `count` of `equity_history()`, read through the time's index."""
        return await self._audit.latest_equity(count)

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        """Insert or replace the JSON payload stored under (namespace, key)."""
        await self._connection.write(sql.UPSERT_STATE, sql.state_rows([(namespace, key, payload)]))

    async def load_state(self, namespace: str) -> dict[str, dict[str, Any]]:
        rows = await self._connection.fetch(sql.SELECT_STATE, (namespace,))
        return {str(k): read_back(namespace, str(k), codec.decode_json, p) for k, p in rows}

    async def delete_state(self, namespace: str, key: str) -> None:
        await self._connection.write(sql.DELETE_STATE, [(namespace, key)])

    async def import_rows(self, rows: RepositoryRows) -> None:
        """Write another repository's rows in one transaction (the backtest saves its run so)."""
        self._connection.check_writable()
        state: list[Row] = [(ns, key, payload) for ns, key, payload in rows.state]
        async with self._connection.lock:
            await self._connection.transaction(
                [
                    (sql.UPSERT_ORDER, rows.orders),
                    (sql.INSERT_FILL, rows.fills),
                    (sql.UPSERT_POSITION, rows.positions),
                    (sql.INSERT_CLOSED_TRADE, rows.closed_trades),
                    (sql.INSERT_DECISION, rows.decisions),
                    (sql.INSERT_POSITION_EVENT, rows.position_events),
                    (sql.INSERT_EQUITY, rows.equity),
                    (sql.UPSERT_STATE, state),
                ]
            )

    async def flush(self) -> None:
        """Write every buffered row in one transaction; on failure the rows stay buffered.
        Decisions going through a writer process (`insert_decisions_aside`) are settled
        first: it ends, and what it did not write is written here."""
        await self._audit.flush()

    async def insert_decisions_aside(self) -> None:
        """From now until the next `flush`, hand each full batch of decisions to a writer
        process (decisions_aside.py), when one starts: for one writer that must not wait for
        its audit trail (a backtest's replay)."""
        await self._audit.insert_decisions_aside()

    async def close(self) -> None:
        """Flush the buffers and close the connection. Calling it again does nothing."""
        if self._connection.closed:
            return
        try:
            await self.flush()
        finally:
            await self._connection.close()

    # The decisions writer process, for the tests that stand in for it or watch it.
    @property
    def _aside(self) -> DecisionsAside | None:
        return self._audit.aside

    @_aside.setter
    def _aside(self, aside: DecisionsAside | None) -> None:
        self._audit.aside = aside

    # The connection, for the tests that count the steps a read takes (however old the file).
    @property
    def _sqlite(self) -> aiosqlite.Connection:
        return self._connection.sqlite

    async def _highest_decision_id(self) -> int:
        return await self._audit.highest_decision_id()
