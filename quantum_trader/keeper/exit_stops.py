"""The stops that go with the exits the stop maths decides (keeper/protect.py places and keeps
a position's own stop). Pure.

A partial exit of a position with no stop of ours listed follows a stop for the whole of it;
a full exit goes alone (it is the protection, and a stop the mark has passed would be
refused), carrying the stop to place at once should the exchange refuse it
(`stop_if_exit_refused`, `refused_exit_trigger`). Apart from protect.py because it concerns the
exits, not the stop kept in step with the managed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from quantum_trader.domain import Order, Position, Side
from quantum_trader.keeper.protect import (
    CancelOrder,
    OrderAction,
    PlaceStop,
    ProtectionCheck,
    SendExit,
    StopWhy,
    _on_tick,
    closes_all,
    covers,
)
from quantum_trader.record import replace


def guarded_exits(
    position: Position,
    check: ProtectionCheck,
    exits: Sequence[SendExit],
    mark: Decimal | None,
    tick_size: Decimal | None,
    gap_pct: float,
) -> list[OrderAction]:
    """`exits` with the protection they need when no stop of ours covers the position: a stop
    placed before partial exits (`stop_before_partial_exit`), a stop placed if a full exit is
    refused (`stop_if_exit_refused`)."""
    full = any(e.quantity >= position.quantity for e in exits)
    if not full:
        return [*stop_before_partial_exit(position, check, exits), *exits]
    fallback = stop_if_exit_refused(position, check, mark, tick_size, gap_pct)
    return [replace(e, if_refused=fallback) for e in exits]


def stop_before_partial_exit(
    position: Position, check: ProtectionCheck, exits: Sequence[OrderAction]
) -> list[OrderAction]:
    """A stop for the whole position, to be placed before `exits`, when none of ours covers
    all of it and the exits are partial: the rest stays open, and a partial exit can be
    refused or fill late.

    Not before a full exit: that exit is the protection, and a stop at a level the mark has
    already passed would be refused as immediately triggering (`stop_if_exit_refused` covers
    a full exit that is refused). A stop that covers the whole position (reduce-only) covers
    the rest after the exit too; the tick after the exit is booked resizes it. One smaller
    than the position (it grew by hand) does not cover it should the exit be refused.
    """
    full = closes_all(position, exits)
    if full or (check.needs is not StopWhy.MISSING and _covers(check.current, position)):
        return []
    side, why = position.side.exit_order_side, check.needs or StopWhy.MISSING
    return [PlaceStop(position.symbol, side, position.quantity, check.trigger, why)]


def stop_if_exit_refused(
    position: Position,
    check: ProtectionCheck,
    mark: Decimal | None,
    tick_size: Decimal | None,
    gap_pct: float,
) -> tuple[PlaceStop | CancelOrder, ...]:
    """What to do when a full exit of `position` is refused (an OrderRejected: e.g. Binance's
    -4131 PERCENT_PRICE on a thin book): nothing when a stop of ours covers all of it (it
    protects while the stop maths retries the exit every tick); else one reduce-only stop for
    the whole position at `refused_exit_trigger`, then cancel our other stops for the symbol
    (placed first, so one stays listed; a reduce-only stop never opens a position).
    """
    if check.needs is not StopWhy.MISSING and _covers(check.current, position):
        return ()  # this stop protects while the stop maths retries the exit every tick
    side = position.side
    trigger = refused_exit_trigger(side, check.trigger, mark, tick_size, gap_pct)
    place = PlaceStop(
        position.symbol, side.exit_order_side, position.quantity, trigger, StopWhy.EXIT_REFUSED
    )
    cancels = (CancelOrder(o.symbol, o.client_order_id) for o in check.stops if not o.triggered_at)
    return (place, *cancels)


def refused_exit_trigger(
    side: Side,
    planned: Decimal,
    mark: Decimal | None,
    tick_size: Decimal | None,
    gap_pct: float,
) -> Decimal:
    """A stop trigger Binance accepts for a position on `side` whose exit was refused.

    `planned` (the managed stop on the tick grid) unless the mark is at it, past it or less
    than `gap_pct` (a fraction) of the mark away from it: then `gap_pct` beyond the mark on
    the losing side, rounded away from the mark to the tick, at least one tick from it.
    Binance refuses a stop the mark has already reached (-2021 "Order would immediately
    trigger": a SELL stop needs trigger < mark, a BUY stop trigger > mark); the gap leaves
    room for the mark to move while the order travels. The looser trigger costs at most the
    gap beyond the mark, where the position already is.
    """
    if mark is None or not mark.is_finite() or mark <= 0:
        return planned
    distance = mark * Decimal(repr(gap_pct))
    if tick_size is not None and tick_size > 0:
        distance = max(distance, tick_size)
    if side is Side.LONG:  # a SELL stop: below the mark, rounded down
        beyond = _on_tick(mark - distance, tick_size, ROUND_FLOOR)
        return min(planned, beyond) if beyond > 0 else planned
    return max(planned, _on_tick(mark + distance, tick_size, ROUND_CEILING))


def _covers(order: Order | None, position: Position) -> bool:
    return order is not None and covers(order, position.quantity)
