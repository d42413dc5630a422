"""The Repository port in memory: the same rows as SQLite, kept in Python containers.

Records go through the same codec as `SqliteRepository`, so both behave identically (Decimal
text, UTC datetimes, JSON payloads, naive datetimes refused, same sort orders and idempotency
keys). Nothing is buffered: writes are visible at once and `flush()` has nothing to do.
"""

from __future__ import annotations

from collections import Counter
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
from quantum_trader.ports import StateWrite, Writes
from quantum_trader.storage import codec, tables
from quantum_trader.storage.tables import RepositoryRows, Row

_OPEN_STATUSES = frozenset(s.value for s in tables.OPEN_ORDER_STATUSES)


class InMemoryRepository:
    """A fast fake of the Repository port for tests and throwaway runs."""

    def __init__(self) -> None:
        self._orders: dict[str, Row] = {}
        self._fills: dict[tuple[object, ...], Row] = {}
        self._positions: dict[str, Row] = {}
        self._closed_trades: dict[tuple[object, ...], Row] = {}
        self._decisions: list[Row] = []
        self._decision_counts: Counter[tuple[str, str]] = Counter()
        self._events: list[Row] = []
        self._equity: list[Row] = []
        self._state: dict[tuple[str, str], str] = {}

    def export_rows(self) -> RepositoryRows:
        """Everything held, encoded, for `SqliteRepository.import_rows` (the backtest's save)."""
        return RepositoryRows(
            orders=self._sorted_orders(),
            fills=list(self._fills.values()),
            positions=list(self._positions.values()),
            closed_trades=list(self._closed_trades.values()),
            decisions=list(self._decisions),
            position_events=list(self._events),
            equity=list(self._equity),
            state=[(ns, key, payload) for (ns, key), payload in self._state.items()],
        )

    async def save_order(self, order: Order) -> None:
        """Insert or update by client order id; the first `created_at` is kept."""
        row = codec.encode_order(order)
        previous = self._orders.get(order.client_order_id)
        if previous is not None:
            created = tables.ORDER_CREATED_AT
            row = (*row[:created], previous[created], *row[created + 1 :])
        self._orders[order.client_order_id] = row

    async def get_order(self, client_order_id: str) -> Order | None:
        row = self._orders.get(client_order_id)
        return None if row is None else codec.decode_order(row)

    async def orders(self, symbol: str | None = None) -> list[Order]:
        """Orders sorted by created_at, then client order id."""
        return [
            codec.decode_order(r)
            for r in self._sorted_orders()
            if _matches(r, tables.ORDER_SYMBOL, symbol)
        ]

    async def open_orders(self) -> list[Order]:
        """Orders still PENDING, OPEN or UNKNOWN, sorted like `orders()`."""
        rows = self._sorted_orders()
        return [codec.decode_order(r) for r in rows if r[tables.ORDER_STATUS] in _OPEN_STATUSES]

    async def record_fills(self, fills: Sequence[Fill]) -> None:
        """Store fills; a fill already stored (same symbol and trade id) is ignored."""
        for fill in fills:
            row = codec.encode_fill(fill)
            self._fills.setdefault(tuple(row[i] for i in tables.FILL_KEY), row)

    async def fills(self, symbol: str | None = None) -> list[Fill]:
        """Fills sorted by time, then trade id (as text), then arrival."""
        time, trade_id = tables.FILL_SORT
        rows = sorted(self._fills.values(), key=lambda r: (str(r[time]), str(r[trade_id])))
        return [codec.decode_fill(r) for r in rows if _matches(r, tables.FILL_SYMBOL, symbol)]

    async def fill_count(self) -> int:
        return len(self._fills)

    async def save_position(self, position: Position) -> None:
        self._positions[position.symbol] = codec.encode_position(position)

    async def delete_position(self, symbol: str) -> None:
        self._positions.pop(symbol, None)

    async def open_positions(self) -> list[Position]:
        """Positions sorted by symbol."""
        return [codec.decode_position(self._positions[s]) for s in sorted(self._positions)]

    async def record_closed_trade(
        self,
        trade: ClosedTrade,
        *,
        closes_position: bool = False,
        state: Sequence[StateWrite] = (),
        writes: Writes | None = None,
    ) -> ClosedTrade | None:
        """Store a round trip and `state` together; the same (symbol, entry order, close time)
        is stored once: where it is already, that trade is returned and neither `trade` nor
        `state` stored. With `closes_position`, the symbol's position is deleted with it (also
        when the trade was stored already), then `writes` stored (always)."""
        row = codec.encode_closed_trade(trade)
        upserts = _state_rows(state)  # all encoded before anything changes, as one transaction
        also = _Encoded(writes) if writes is not None else None
        key = codec.closed_trade_key(row)
        stored = self._closed_trades.get(key)
        if stored is None:
            self._closed_trades[key] = row
            self._state.update(upserts)
        if closes_position:
            self._positions.pop(trade.symbol, None)
        if also is not None:
            self._apply(also)
        return None if stored is None else codec.decode_closed_trade(stored)

    async def write(self, writes: Writes) -> None:
        """Store `writes` together (all encoded before anything changes)."""
        self._apply(_Encoded(writes))

    def _apply(self, encoded: _Encoded) -> None:
        created = tables.ORDER_CREATED_AT
        for cid, row in encoded.orders:
            previous = self._orders.get(cid)
            if previous is not None:  # the first `created_at` is kept, as `save_order`
                row = (*row[:created], previous[created], *row[created + 1 :])
            self._orders[cid] = row
        for row in encoded.fills:
            self._fills.setdefault(tuple(row[i] for i in tables.FILL_KEY), row)
        for symbol in encoded.positions_deleted:
            self._positions.pop(symbol, None)
        self._positions.update(encoded.positions)
        for entry in encoded.state_deleted:
            self._state.pop(entry, None)
        self._state.update(encoded.state)

    async def closed_trades(self) -> list[ClosedTrade]:
        """Trades sorted by closed_at, then arrival."""
        rows = _sorted_by(list(self._closed_trades.values()), tables.CLOSED_TRADE_CLOSED_AT)
        return [codec.decode_closed_trade(r) for r in rows]

    async def latest_closed_trades(self, count: int) -> list[ClosedTrade]:
        return (await self.closed_trades())[-count:] if count > 0 else []

    async def closed_trade_count(self) -> int:
        return len(self._closed_trades)

    async def amend_closed_trade(
        self, trade: ClosedTrade, *, state: Sequence[StateWrite] = ()
    ) -> ClosedTrade | None:
        """Replace the trade of the same (symbol, entry order, close time), keeping its place
        in arrival order, and store `state` with it; the trade as it was, or None (nothing
        stored) without one. One equal to `trade` stores nothing."""
        row = codec.encode_closed_trade(trade)
        upserts = _state_rows(state)
        key = codec.closed_trade_key(row)
        stored = self._closed_trades.get(key)
        was = None if stored is None else codec.decode_closed_trade(stored)
        if was is None or was == trade:
            return was
        self._closed_trades[key] = row
        self._state.update(upserts)
        return was

    async def record_decisions(self, decisions: Sequence[Decision]) -> None:
        rows = [codec.encode_decision(d) for d in decisions]
        self._decisions.extend(rows)
        self._decision_counts.update(
            (str(r[tables.DECISION_GATE]), str(r[tables.DECISION_REASON])) for r in rows
        )

    async def decision_counts(self) -> dict[tuple[str, str], int]:
        return dict(self._decision_counts)

    async def recent_decisions(self, limit: int) -> list[Decision]:
        """The `limit` newest decisions, newest first (ties: latest recorded first)."""
        time = tables.DECISION_TIME
        order = sorted(
            range(len(self._decisions)),
            key=lambda i: (str(self._decisions[i][time]), i),
            reverse=True,
        )
        newest_first = [self._decisions[i] for i in order[: max(limit, 0)]]
        return [codec.decode_decision(r) for r in newest_first]

    async def record_position_events(self, events: Sequence[PositionEvent]) -> None:
        self._events.extend(codec.encode_position_event(e) for e in events)

    async def position_events(self) -> list[PositionEvent]:
        """Events sorted by time, then arrival."""
        rows = _sorted_by(self._events, tables.POSITION_EVENT_TIME)
        return [codec.decode_position_event(r) for r in rows]

    async def record_equity(self, snapshot: EquitySnapshot) -> None:
        self._equity.append(codec.encode_equity(snapshot))

    async def equity_history(self) -> list[EquitySnapshot]:
        """Snapshots sorted by time, then arrival."""
        return [codec.decode_equity(r) for r in _sorted_by(self._equity, tables.EQUITY_TIME)]

    async def latest_equity(self, count: int) -> list[EquitySnapshot]:
        return (await self.equity_history())[-count:] if count > 0 else []

    async def save_state(self, namespace: str, key: str, payload: Mapping[str, Any]) -> None:
        """Insert or replace the JSON payload stored under (namespace, key)."""
        self._state[(namespace, key)] = codec.encode_json(payload)

    async def load_state(self, namespace: str) -> dict[str, dict[str, Any]]:
        keys = sorted(k for ns, k in self._state if ns == namespace)
        return {k: codec.decode_json(self._state[(namespace, k)]) for k in keys}

    async def delete_state(self, namespace: str, key: str) -> None:
        self._state.pop((namespace, key), None)

    async def flush(self) -> None:
        """Nothing is buffered in memory."""

    async def close(self) -> None:
        """Nothing to release; the records stay readable."""

    def _sorted_orders(self) -> list[Row]:
        created = tables.ORDER_CREATED_AT
        return sorted(self._orders.values(), key=lambda r: (str(r[created]), str(r[0])))


class _Encoded:
    """`Writes` encoded as the rows they store (raising, as the codec does, before any is)."""

    __slots__ = ("fills", "orders", "positions", "positions_deleted", "state", "state_deleted")

    def __init__(self, writes: Writes) -> None:
        self.orders = [(o.client_order_id, codec.encode_order(o)) for o in writes.orders]
        self.fills = [codec.encode_fill(f) for f in writes.fills]
        self.positions_deleted = list(writes.positions_deleted)
        self.positions = {p.symbol: codec.encode_position(p) for p in writes.positions}
        self.state_deleted = list(writes.state_deleted)
        self.state = _state_rows(writes.state)


def _state_rows(state: Sequence[StateWrite]) -> list[tuple[tuple[str, str], str]]:
    return [((namespace, key), codec.encode_json(payload)) for namespace, key, payload in state]


def _matches(row: Row, column: int, value: str | None) -> bool:
    return value is None or row[column] == value


def _sorted_by(rows: list[Row], column: int) -> list[Row]:
    """Stable sort on a time column (ISO text sorts in time order); ties keep arrival order."""
    return sorted(rows, key=lambda r: str(r[column]))
