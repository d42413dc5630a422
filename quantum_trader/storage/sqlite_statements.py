"""The SQL the SQLite repository runs, table by table, built from tables.py's column lists.

Every statement reads or writes the rows codec.py encodes, in its column order; the sort orders
are the ones the Repository port promises (memory.py keeps the same ones in Python). Table and
column names are constants of this program, never input, so the f-strings below are safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from quantum_trader.ports import StateWrite, Writes
from quantum_trader.storage import codec, tables
from quantum_trader.storage.tables import Row, SqlValue


def _insert(table: str, columns: Sequence[str], conflict: str = "") -> str:
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}".strip()  # noqa: S608


def _select(table: str, columns: Sequence[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608 - constant identifiers


def _update_all_but(columns: Sequence[str], keep: set[str]) -> str:
    return ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keep)


def _of_symbol(select: str, sort: str, symbol: str | None) -> tuple[str, tuple[SqlValue, ...]]:
    if symbol is None:
        return select + sort, ()
    return f"{select} WHERE symbol = ?{sort}", (symbol,)


# orders
UPSERT_ORDER = _insert(
    "orders",
    tables.ORDER_COLUMNS,
    "ON CONFLICT (client_order_id) DO UPDATE SET "
    + _update_all_but(tables.ORDER_COLUMNS, {"client_order_id", "created_at"}),
)
_ORDERS_SORT = " ORDER BY created_at, client_order_id"
OPEN_ORDER_STATUSES = tuple(s.value for s in tables.OPEN_ORDER_STATUSES)  # SELECT_OPEN's
CLOSE_POSITION_SINCE = 4  # migration 0004; a file before it, read as it is, has no close-all


@dataclass(frozen=True)
class OrderReads:
    """The statements that read orders from a file of one schema version: one by client id,
    the open ones (`OPEN_ORDER_STATUSES`), and every order (`select`)."""

    select_one: str
    select_open: str
    _every: str

    def select(self, symbol: str | None) -> tuple[str, tuple[SqlValue, ...]]:
        """The SQL and parameters that read every order, or `symbol`'s, in their order."""
        return _of_symbol(self._every, _ORDERS_SORT, symbol)


def order_reads(version: int) -> OrderReads:
    """The order reads of a file at schema `version` (readers read older files as they are)."""
    columns = tables.ORDER_COLUMNS
    if version < CLOSE_POSITION_SINCE:
        columns = tuple("0 AS close_position" if c == "close_position" else c for c in columns)
    every = _select("orders", columns)
    statuses = ", ".join("?" * len(OPEN_ORDER_STATUSES))
    return OrderReads(
        every + " WHERE client_order_id = ?",
        f"{every} WHERE status IN ({statuses}){_ORDERS_SORT}",
        every,
    )


# fills
INSERT_FILL = _insert("fills", tables.FILL_COLUMNS, "ON CONFLICT (symbol, trade_id) DO NOTHING")
_SELECT_FILLS = _select("fills", tables.FILL_COLUMNS)


def select_fills(symbol: str | None) -> tuple[str, tuple[SqlValue, ...]]:
    """The SQL and parameters that read every fill, or `symbol`'s, in their order."""
    return _of_symbol(_SELECT_FILLS, " ORDER BY time, trade_id, id", symbol)


COUNT_FILLS = "SELECT count(*) FROM fills"

# positions
UPSERT_POSITION = _insert(
    "positions",
    tables.POSITION_COLUMNS,
    "ON CONFLICT (symbol) DO UPDATE SET " + _update_all_but(tables.POSITION_COLUMNS, {"symbol"}),
)
DELETE_POSITION = "DELETE FROM positions WHERE symbol = ?"
SELECT_POSITIONS = _select("positions", tables.POSITION_COLUMNS) + " ORDER BY symbol"

# closed trades: one under each key, (symbol, entry order id, close time): codec.closed_trade_key
INSERT_CLOSED_TRADE = _insert(
    "closed_trades",
    tables.CLOSED_TRADE_COLUMNS,
    "ON CONFLICT (symbol, entry_order_id, closed_at) DO NOTHING",
)
_CLOSED_TRADE_KEY_COLUMNS = tuple(tables.CLOSED_TRADE_COLUMNS[i] for i in tables.CLOSED_TRADE_KEY)
_CLOSED_TRADE_WHERE = " WHERE " + " AND ".join(f"{c} = ?" for c in _CLOSED_TRADE_KEY_COLUMNS)
_CLOSED_TRADE_AMENDED = [
    c for c in tables.CLOSED_TRADE_COLUMNS if c not in _CLOSED_TRADE_KEY_COLUMNS
]
_CLOSED_TRADE_AMENDED_AT = tuple(
    tables.CLOSED_TRADE_COLUMNS.index(c) for c in _CLOSED_TRADE_AMENDED
)
AMEND_CLOSED_TRADE = (
    f"UPDATE closed_trades SET {', '.join(f'{c} = ?' for c in _CLOSED_TRADE_AMENDED)}"  # noqa: S608
    + _CLOSED_TRADE_WHERE
)
SELECT_CLOSED_TRADE = _select("closed_trades", tables.CLOSED_TRADE_COLUMNS) + _CLOSED_TRADE_WHERE
SELECT_CLOSED_TRADES = (
    _select("closed_trades", tables.CLOSED_TRADE_COLUMNS) + " ORDER BY closed_at, id"
)
SELECT_LATEST_CLOSED_TRADES = (
    _select("closed_trades", tables.CLOSED_TRADE_COLUMNS)
    + " ORDER BY closed_at DESC, id DESC LIMIT ?"
)
COUNT_CLOSED_TRADES = "SELECT count(*) FROM closed_trades"


def closed_trade_amendment(row: Row) -> Row:
    """The parameters of AMEND_CLOSED_TRADE that write the encoded trade `row` over the one
    stored under its key: every other column's value, then the key."""
    return tuple(row[i] for i in _CLOSED_TRADE_AMENDED_AT) + codec.closed_trade_key(row)


# decisions, position events, equity snapshots: append-only, in arrival order (id)
INSERT_DECISION = _insert("decisions", tables.DECISION_COLUMNS)
RECENT_DECISIONS = _select("decisions", tables.DECISION_COLUMNS) + (
    " ORDER BY time DESC, id DESC LIMIT ?"
)
COUNT_DECISIONS = "SELECT gate, reason, count(*) FROM decisions GROUP BY gate, reason"
# The same counts, kept as decisions are written (migration 0003, its triggers): a few rows
# however many decisions the table holds. Files of an older schema are counted as above.
TALLIED_DECISIONS = "SELECT gate, reason, decisions FROM decision_tallies"
TALLIES_VERSION = 3
HIGHEST_DECISION_ID = "SELECT max(id) FROM decisions"
INSERT_POSITION_EVENT = _insert("position_events", tables.POSITION_EVENT_COLUMNS)
SELECT_POSITION_EVENTS = (
    _select("position_events", tables.POSITION_EVENT_COLUMNS) + " ORDER BY time, id"
)
INSERT_EQUITY = _insert("equity_snapshots", tables.EQUITY_COLUMNS)
SELECT_EQUITY = _select("equity_snapshots", tables.EQUITY_COLUMNS) + " ORDER BY time, id"
SELECT_LATEST_EQUITY = _select("equity_snapshots", tables.EQUITY_COLUMNS) + (
    " ORDER BY time DESC, id DESC LIMIT ?"
)

# state: a JSON payload under (namespace, key)
UPSERT_STATE = (
    "INSERT INTO state (namespace, key, payload, updated_at) "
    "VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) "
    "ON CONFLICT (namespace, key) DO UPDATE SET "
    "payload = excluded.payload, updated_at = excluded.updated_at"
)
SELECT_STATE = "SELECT key, payload FROM state WHERE namespace = ? ORDER BY key"
DELETE_STATE = "DELETE FROM state WHERE namespace = ? AND key = ?"


def state_rows(state: Iterable[StateWrite]) -> list[Row]:
    """The parameters of UPSERT_STATE for each entry, its payload encoded as JSON."""
    return [(namespace, key, codec.encode_json(payload)) for namespace, key, payload in state]


def write_batches(writes: Writes) -> list[tuple[str, list[Row]]]:
    """The statements and their rows that write `writes`, in the port's order."""
    return [
        (UPSERT_ORDER, [codec.encode_order(o) for o in writes.orders]),
        (INSERT_FILL, [codec.encode_fill(f) for f in writes.fills]),
        (DELETE_POSITION, [(symbol,) for symbol in writes.positions_deleted]),
        (UPSERT_POSITION, [codec.encode_position(p) for p in writes.positions]),
        (DELETE_STATE, [(namespace, key) for namespace, key in writes.state_deleted]),
        (UPSERT_STATE, state_rows(writes.state)),
    ]
