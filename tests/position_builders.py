"""Builders for the monitor and keeper tests: positions and exchange orders in plain values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from quantum_trader.domain import (
    ExitMode,
    Order,
    OrderKind,
    OrderStatus,
    Position,
    Side,
    TrailMode,
)
from quantum_trader.monitor.settings import MonitorSettings

NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
SETTINGS = MonitorSettings()
ENTRY = Decimal(90_000)


def position(
    side: Side = Side.LONG,
    *,
    entry: Decimal = ENTRY,
    stop: Decimal | None = None,
    target: Decimal | None = None,
    quantity: Decimal = Decimal("0.2"),
    opened_at: datetime = NOW,
    trail_mode: TrailMode = TrailMode.BALANCED,
    symbol: str = "BTC/USDT:USDT",
) -> Position:
    """The SPEC example's position: stop 3 % and target 6 % away from the entry."""
    sign = side.sign
    stop = entry * (1 - Decimal("0.03") * sign) if stop is None else stop
    target = entry * (1 + Decimal("0.06") * sign) if target is None else target
    return Position(
        symbol=symbol,
        side=side,
        quantity=quantity,
        entry_price=entry,
        leverage=3,
        stop_price=stop,
        take_profit_price=target,
        opened_at=opened_at,
        entry_order_id="qt-e-BTC-test-1",
        initial_stop_price=stop,
        initial_quantity=quantity,
        atr_pct=0.02,
        exit_mode=ExitMode.DEFENSIVE_TRAIL,
        trail_mode=trail_mode,
    )


def stop_order(
    held: Position,
    client_order_id: str,
    *,
    trigger: Decimal | None = None,
    quantity: Decimal | None = None,
    reduce_only: bool = True,
    kind: OrderKind = OrderKind.STOP_MARKET,
) -> Order:
    """An open protective order as the exchange lists it."""
    return Order(
        client_order_id=client_order_id,
        symbol=held.symbol,
        side=held.side.exit_order_side,
        kind=kind,
        quantity=held.quantity if quantity is None else quantity,
        status=OrderStatus.OPEN,
        created_at=held.opened_at,
        trigger_price=held.stop_price if trigger is None else trigger,
        reduce_only=reduce_only,
    )


def protected(held: Position, client_order_id: str = "qt-s-BTC-abc-1") -> Position:
    """`held` with an exchange stop recorded as placed at its opening."""
    return replace(held, stop_order_id=client_order_id, stop_replaced_at=held.opened_at)
