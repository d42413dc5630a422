"""Exchange-side protection for one position (SPEC §6): pure planning; the loop executes it.

Every open position keeps one reduce-only STOP_MARKET order on the exchange at the managed stop,
so it stays protected when this process is gone. Per position and tick the loop:

1. calls `plan_protection(position, open_conditional_orders_for_symbol, now, settings)`;
2. executes the actions in order. A `PlaceStop` comes first and the `CancelOrder`s of the old
   stops after it, so a stop is always on the exchange while it is replaced (two reduce-only
   stops may coexist); if the placement fails the cancels are skipped;
3. after a placement succeeds: `position = on_stop_placed(position, action, now)`; after it
   fails (rejected, or still unknown once the client order id was looked up):
   execute `on_placement_failed(position, error)`, a close at market.

After a full exit, `plan_release` cancels whatever of ours is left for the symbol.

Our orders are recognised by the client order id prefix `qt-` that every order of this program
carries; orders placed by hand are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import (
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    Position,
    Side,
)
from quantum_trader.monitor.settings import MonitorSettings

OUR_PREFIX = "qt-"
STOP_PREFIX = "qt-sl-"
VALID_CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_STEM_CHARS = re.compile(r"[^A-Za-z0-9]")
_STEM_MAX = 10


class StopWhy(StrEnum):
    """Why a protective stop is (re)placed."""

    MISSING = "MISSING"
    MOVED = "MOVED"
    RESIZED = "RESIZED"


@dataclass(frozen=True, slots=True)
class PlaceStop:
    """Place a reduce-only STOP_MARKET closing `quantity` when the mark reaches `trigger`."""

    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    trigger: Decimal
    why: StopWhy

    def request(self) -> OrderRequest:
        return OrderRequest(
            self.client_order_id,
            self.symbol,
            self.side,
            OrderKind.STOP_MARKET,
            self.quantity,
            trigger_price=self.trigger,
            reduce_only=True,
        )


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel one of our conditional orders; one that is already gone is not an error."""

    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class CloseAtMarket:
    """Close the whole position with a reduce-only market order."""

    symbol: str
    quantity: Decimal
    reason: ExitReason
    detail: str = ""


ProtectionAction = PlaceStop | CancelOrder | CloseAtMarket


def plan_protection(
    position: Position,
    open_conditional_orders_for_symbol: Sequence[Order],
    now: datetime,
    settings: MonitorSettings,
    *,
    tick_size: Decimal | None = None,
) -> list[ProtectionAction]:
    """Bring the exchange-side stop in step with the managed stop.

    Place one when ours is missing (never placed, cancelled by hand, expired) or malformed;
    replace it at once when its quantity differs from the position's (after a partial exit);
    replace it when its trigger differs from the managed stop, but not sooner than
    `stop_replace_min_interval_s` after `position.stop_replaced_at`. Any other stop of ours for
    the symbol is cancelled. With `tick_size`, the trigger is the managed stop rounded to the
    tick in the position's favour (tighter, never looser).
    """
    ours = [o for o in open_conditional_orders_for_symbol if _is_our_stop(o, position.symbol)]
    if position.quantity <= 0:
        return [CancelOrder(o.symbol, o.client_order_id) for o in ours]
    current = next((o for o in ours if o.client_order_id == position.stop_order_id), None)
    trigger = exchange_trigger(position, tick_size)
    why = _replacement_needed(position, current, trigger, now, settings)
    keep = None if why is not None else current
    cancels: list[ProtectionAction] = [
        CancelOrder(o.symbol, o.client_order_id) for o in ours if o is not keep
    ]
    if why is None:
        return cancels
    place = PlaceStop(
        next_stop_id(position, [o.client_order_id for o in ours]),
        position.symbol,
        position.side.exit_order_side,
        position.quantity,
        trigger,
        why,
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


def _is_our_stop(order: Order, symbol: str) -> bool:
    return (
        order.symbol == symbol
        and order.kind is OrderKind.STOP_MARKET
        and order.client_order_id.startswith(OUR_PREFIX)
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
    if tick_size is None or tick_size <= 0:
        return position.stop_price
    rounding = ROUND_CEILING if position.side is Side.LONG else ROUND_FLOOR
    return (position.stop_price / tick_size).to_integral_value(rounding) * tick_size


def plan_release(
    position: Position, open_conditional_orders_for_symbol: Sequence[Order]
) -> list[CancelOrder]:
    """After a full exit: cancel every conditional order of ours left for the symbol."""
    return [
        CancelOrder(o.symbol, o.client_order_id)
        for o in open_conditional_orders_for_symbol
        if o.symbol == position.symbol
        and o.kind.is_conditional
        and o.client_order_id.startswith(OUR_PREFIX)
        and not o.status.is_final
    ]


def on_stop_placed(position: Position, action: PlaceStop, now: datetime) -> Position:
    """The position once `action`'s stop is on the exchange."""
    return replace(position, stop_order_id=action.client_order_id, stop_replaced_at=now)


def on_placement_failed(position: Position, error: BaseException) -> CloseAtMarket:
    """A protective stop could not be placed: the position must not stay open unprotected."""
    return CloseAtMarket(
        position.symbol,
        position.quantity,
        ExitReason.PROTECTION_FAILED,
        f"protective stop failed: {type(error).__name__}: {error}",
    )


def next_stop_id(position: Position, known_ids: Sequence[str] = ()) -> str:
    """`qt-sl-{base}-{opened_ms36}-{n36}`: deterministic, ≤ 36 characters, Binance-valid.

    `n` is one more than the highest sequence among `known_ids` and the position's current
    stop id for this position, so a replacement never reuses an id (including one whose
    placement was rejected).
    """
    stem = _STEM_CHARS.sub("", position.symbol.split("/", 1)[0])[:_STEM_MAX] or "X"
    prefix = f"{STOP_PREFIX}{stem}-{_base36(ms_from_utc(position.opened_at))}-"
    candidates = [*known_ids, position.stop_order_id or ""]
    used = [_sequence(value, prefix) for value in candidates]
    value = f"{prefix}{_base36(max(used, default=0) + 1)}"
    if not VALID_CLIENT_ORDER_ID.match(value):
        raise ValueError(f"invalid protective client order id {value!r}")
    return value


def _sequence(client_order_id: str, prefix: str) -> int:
    if not client_order_id.startswith(prefix):
        return 0
    try:
        return int(client_order_id[len(prefix) :], 36)
    except ValueError:
        return 0


def _base36(value: int) -> str:
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if value == 0:
            return out
