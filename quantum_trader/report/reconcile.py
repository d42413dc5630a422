"""Every closed trade rebuilt independently from the fills: the report's `reconciled` check."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import ZERO, ClosedTrade, Fill, Order, OrderSide


def reconcile(
    trades: Sequence[ClosedTrade], fills: Sequence[Fill], orders: Sequence[Order]
) -> list[str]:
    """Rebuild every round trip from the fills alone and compare it with the recorded trades.

    Per symbol, fills in execution order: from flat, an entry opens a round trip; fills then
    accumulate until the position is flat again. Each rebuilt trip's cash flow minus fees must
    equal its trade's PnL + funding exactly, and every closed trade must have its trip.
    """
    side_of = {o.client_order_id: o.side for o in orders}
    trips = round_trips(fills)
    errors = []
    for trade in trades:
        trip = trips.pop(trade.entry_order_id, None)
        if trip is None:
            errors.append(f"{trade.symbol} {trade.entry_order_id}: no fills for this trade")
            continue
        cash, fees, closed = trip
        expected = trade.pnl_usdt + trade.funding_usdt
        if not closed or cash - fees != expected or side_of.get(trade.entry_order_id) is None:
            errors.append(
                f"{trade.symbol} {trade.entry_order_id}: "
                f"fills give {cash - fees} (closed={closed}), trade says {expected}"
            )
    errors += [f"closed round trip {k} has no trade" for k, (_, _, done) in trips.items() if done]
    return errors


def round_trips(fills: Sequence[Fill]) -> dict[str, tuple[Decimal, Decimal, bool]]:
    """entry order id → (cash flow, fees, back to flat) for every round trip in the fills."""
    trips: dict[str, tuple[Decimal, Decimal, bool]] = {}
    by_symbol: dict[str, list[Fill]] = {}
    for fill in fills:
        by_symbol.setdefault(fill.symbol, []).append(fill)
    for symbol_fills in by_symbol.values():
        net, entry = ZERO, ""
        for fill in sorted(symbol_fills, key=execution_order):
            if net == 0:
                entry = fill.client_order_id
                trips[entry] = (ZERO, ZERO, False)
            net += fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
            cash, fees, _ = trips[entry]
            trips[entry] = (cash + _cash_flow(fill), fees + fill.fee_usdt, net == 0)
    return trips


def _cash_flow(fill: Fill) -> Decimal:
    """USDT received (+) or paid (−) by a fill: summed over a round trip, its gross PnL."""
    value = fill.price * fill.quantity
    return value if fill.side is OrderSide.SELL else -value


def execution_order(fill: Fill) -> tuple[datetime, int, str]:
    """Fills of one symbol in the order they executed (time, then the exchange's trade id)."""
    digits = "".join(ch for ch in fill.trade_id if ch.isdigit())
    return fill.time, int(digits) if digits else 0, fill.trade_id
