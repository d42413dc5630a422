"""Exchange-side protection of one position (SPEC §6): pure planning, the keeper executes it.

Every open position keeps one reduce-only STOP_MARKET order of ours on the exchange at the
managed stop, so it stays protected when this process is gone. A `PlaceStop` comes before the
`CancelOrder`s of the stops it replaces, so a stop is always on the exchange while it is
replaced (two reduce-only stops may coexist; neither can open a position); if the placement
fails, the keeper skips the cancels and closes the position at market.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from quantum_trader.domain import ExitReason, Order, OrderKind, OrderSide, Position, Side
from quantum_trader.keeper.ids import is_ours
from quantum_trader.monitor.settings import MonitorSettings


class StopWhy(StrEnum):
    """Why a protective stop is (re)placed."""

    ENTRY = "ENTRY"  # the first stop of a position we just entered
    MISSING = "MISSING"
    MOVED = "MOVED"
    RESIZED = "RESIZED"


@dataclass(frozen=True, slots=True)
class PlaceStop:
    """Place a reduce-only STOP_MARKET closing `quantity` when the mark reaches `trigger`."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    trigger: Decimal
    why: StopWhy


@dataclass(frozen=True, slots=True)
class PlaceTarget:
    """Place a reduce-only TAKE_PROFIT_MARKET closing `quantity` at `trigger`."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    trigger: Decimal


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel one of our conditional orders; one that is already gone is not an error."""

    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class SendExit:
    """Close `quantity` of the position with a reduce-only market order."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    reason: ExitReason
    detail: str = ""


OrderAction = PlaceStop | PlaceTarget | CancelOrder | SendExit


def plan_protection(
    position: Position,
    open_conditional_orders_for_symbol: Sequence[Order],
    now: datetime,
    settings: MonitorSettings,
    *,
    tick_size: Decimal | None = None,
) -> list[OrderAction]:
    """Bring the exchange-side stop in step with the managed stop.

    Place one when ours is missing (never placed, cancelled by hand, expired) or malformed;
    replace it at once when its quantity differs from the position's (after a partial exit);
    replace it when its trigger differs from the managed stop, but not sooner than
    `stop_replace_min_interval_s` after `position.stop_replaced_at`. Any other stop of ours for
    the symbol is cancelled; so is any take-profit of ours that is not the position's own or
    is on the wrong side. With `tick_size`, the trigger is the managed stop rounded to the tick
    in the position's favour (tighter, never looser).
    """
    stops: list[Order] = []
    stray_targets: list[Order] = []
    exit_side = position.side.exit_order_side
    for order in open_conditional_orders_for_symbol:
        if not _is_ours_open(order, position.symbol):
            continue
        if order.kind is OrderKind.STOP_MARKET:
            stops.append(order)
        elif order.client_order_id != position.take_profit_order_id or order.side is not exit_side:
            stray_targets.append(order)  # a take-profit that is not the position's own
    current = next((o for o in stops if o.client_order_id == position.stop_order_id), None)
    trigger = exchange_trigger(position, tick_size)
    why = _replacement_needed(position, current, trigger, now, settings)
    keep = None if why is not None else current
    cancels: list[OrderAction] = [
        CancelOrder(o.symbol, o.client_order_id) for o in (*stops, *stray_targets) if o is not keep
    ]
    if why is None:
        return cancels
    place = PlaceStop(
        position.symbol, position.side.exit_order_side, position.quantity, trigger, why
    )
    return [place, *cancels]


def _replacement_needed(
    position: Position,
    current: Order | None,
    trigger: Decimal,
    now: datetime,
    settings: MonitorSettings,
) -> StopWhy | None:
    if current is None or not _protects(current, position):
        return StopWhy.MISSING
    if current.quantity - current.filled_quantity != position.quantity:
        return StopWhy.RESIZED
    if current.trigger_price == trigger:
        return None
    last = position.stop_replaced_at
    interval = timedelta(seconds=settings.stop_replace_min_interval_s)
    if last is None or now - last >= interval:
        return StopWhy.MOVED
    return None


def _is_ours_open(order: Order, symbol: str) -> bool:
    return (
        order.symbol == symbol
        and order.kind.is_conditional
        and is_ours(order.client_order_id)
        and not order.status.is_final
    )


def _protects(order: Order, position: Position) -> bool:
    return (
        order.reduce_only
        and order.side is position.side.exit_order_side
        and order.trigger_price is not None
    )


def exchange_trigger(position: Position, tick_size: Decimal | None = None) -> Decimal:
    """The managed stop as the exchange gets it: rounded to the tick in the position's favour."""
    return stop_trigger(position.side, position.stop_price, tick_size)


def stop_trigger(side: Side, stop_price: Decimal, tick_size: Decimal | None) -> Decimal:
    """`stop_price` rounded to the tick in the favour of a position on `side` (tighter)."""
    if tick_size is None or tick_size <= 0:
        return stop_price
    rounding = ROUND_CEILING if side is Side.LONG else ROUND_FLOOR
    return (stop_price / tick_size).to_integral_value(rounding) * tick_size


def plan_release(symbol: str, open_conditional_orders: Sequence[Order]) -> list[CancelOrder]:
    """No position: cancel every conditional order of ours left for `symbol`."""
    return [
        CancelOrder(o.symbol, o.client_order_id)
        for o in open_conditional_orders
        if _is_ours_open(o, symbol)
    ]
