"""Each table's rows: the SQL values they hold, their columns in the order codec.py encodes
them, and the positions the repositories read rows by.
"""

from __future__ import annotations

from quantum_trader.domain import OrderStatus
from quantum_trader.record import record

SqlValue = str | int | float | None
Row = tuple[SqlValue, ...]


def _columns(names: str) -> tuple[str, ...]:
    return tuple(names.split())


ORDER_COLUMNS = _columns(
    "client_order_id exchange_order_id symbol side kind quantity status trigger_price"
    " reduce_only filled_quantity average_price fee_usdt created_at updated_at detail"
    " close_position"
)
ORDER_CREATED_AT = ORDER_COLUMNS.index("created_at")
ORDER_STATUS = ORDER_COLUMNS.index("status")
ORDER_SYMBOL = ORDER_COLUMNS.index("symbol")
OPEN_ORDER_STATUSES = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.UNKNOWN)
FILL_COLUMNS = _columns(
    "trade_id client_order_id symbol side quantity price fee_usdt time is_maker"
)
FILL_SYMBOL = FILL_COLUMNS.index("symbol")
FILL_KEY = (FILL_COLUMNS.index("symbol"), FILL_COLUMNS.index("trade_id"))
FILL_SORT = (FILL_COLUMNS.index("time"), FILL_COLUMNS.index("trade_id"))
POSITION_COLUMNS = _columns(
    "symbol side quantity entry_price leverage stop_price take_profit_price opened_at"
    " entry_order_id initial_stop_price initial_quantity atr_pct exit_mode trail_mode"
    " stop_order_id take_profit_order_id stop_replaced_at break_even_done partial_taken"
    " trailing_active realized_pnl_usdt fees_usdt highest_price lowest_price"
)
CLOSED_TRADE_COLUMNS = _columns(
    "symbol side quantity entry_price exit_price opened_at closed_at exit_reason pnl_usdt"
    " fees_usdt funding_usdt r_multiple entry_order_id"
)
CLOSED_TRADE_KEY = tuple(
    CLOSED_TRADE_COLUMNS.index(c) for c in ("symbol", "entry_order_id", "closed_at")
)
CLOSED_TRADE_CLOSED_AT = CLOSED_TRADE_COLUMNS.index("closed_at")
DECISION_COLUMNS = _columns(
    "cycle_id time gate symbol approved reason detail until size_factor exit_mode"
    " tp_r_multiple confidence side extra"
)
DECISION_GATE = DECISION_COLUMNS.index("gate")
DECISION_REASON = DECISION_COLUMNS.index("reason")
DECISION_TIME = DECISION_COLUMNS.index("time")
POSITION_EVENT_COLUMNS = _columns("symbol time reason detail price quantity new_stop_price")
POSITION_EVENT_TIME = POSITION_EVENT_COLUMNS.index("time")
EQUITY_COLUMNS = ("time", "equity_usdt", "wallet_usdt", "used_margin_usdt", "open_positions")
EQUITY_TIME = EQUITY_COLUMNS.index("time")


@record
class RepositoryRows:
    """Every encoded row of a repository, table by table: the unit of a bulk export."""

    orders: list[Row]
    fills: list[Row]
    positions: list[Row]
    closed_trades: list[Row]
    decisions: list[Row]
    position_events: list[Row]
    equity: list[Row]
    state: list[tuple[str, str, str]]
