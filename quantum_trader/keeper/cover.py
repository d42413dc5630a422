"""Stops placed while the stop maths does not manage a position: clear of the mark. Pure.

While an exit of ours is in flight (its outcome unknown), a reduction awaits an unsettled
order of ours, or the user-data stream has not echoed an order of ours on the symbol yet, the
planner does not run the stop maths on the position, so it never exits it when the mark
reaches the stop. A stop it places meanwhile at the managed level the mark has
already reached would be refused as immediately triggering (Binance -2021), and with an exit
of ours in flight no other exit is sent (never an order twice): the position would wait
unprotected until that exit settles, up to `unknown_order_final_s`. Such a stop therefore goes
where Binance accepts it: `refused_exit_trigger`, `refused_exit_stop_gap_pct` of the mark
beyond it on the losing side (the managed level while the mark is clear of it). If the exit
in flight did fill, the reduce-only stop can close nothing and is cancelled once it settles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import Order, OrderSide, Position, Side
from quantum_trader.keeper.exit_stops import refused_exit_trigger
from quantum_trader.keeper.plan import Context
from quantum_trader.keeper.protect import (
    OrderAction,
    PlaceStop,
    covers,
    is_stuck,
    stop_while_unsettled,
)
from quantum_trader.record import replace


def clear_of_mark(
    actions: Sequence[OrderAction], mark: Decimal | None, context: Context
) -> list[OrderAction]:
    """`actions` (for one symbol) with each stop's trigger moved clear of `mark` when the mark
    has reached it or is within `refused_exit_stop_gap_pct` of it; with no mark, unchanged."""
    gap = context.keeper.refused_exit_stop_gap_pct
    cleared: list[OrderAction] = []
    for action in actions:
        if isinstance(action, PlaceStop):
            rules = context.rules.get(action.symbol)
            side = Side.LONG if action.side is OrderSide.SELL else Side.SHORT
            tick = rules.tick_size if rules else None
            trigger = refused_exit_trigger(side, action.trigger, mark, tick, gap)
            action = replace(action, trigger=trigger)
        cleared.append(action)
    return cleared


def stop_while_unechoed(
    position: Position,
    working: Mapping[str, Order],
    listed: Mapping[str, Sequence[Order]],
    reported: Mapping[str, Order],
    mark: Decimal | None,
    now: datetime,
    context: Context,
) -> list[OrderAction]:
    """A stop for `position` while the user-data stream has not echoed an order of ours on its
    symbol (the planner does not reconcile the symbol from the stream's picture meanwhile, up
    to `stream_echo_timeout_s`): the position was booked from the exchange's own answer, and a
    stop of ours that failed with it must not wait for the echo.

    Nothing when the position's own stop, as the exchange answered it (`working`), covers all
    of it, is not stuck firing (`is_stuck`) and the stream has not `reported` it ended: the
    stream may just not list it yet. Else what `stop_while_unsettled` places for the whole
    position, clear of `mark`.
    """
    own = working.get(position.stop_order_id) if position.stop_order_id is not None else None
    monitor = context.monitor
    if own is not None and covers(own, position.quantity):
        ended = reported.get(own.client_order_id)
        if (ended is None or not ended.status.is_final) and not is_stuck(own, now, monitor):
            return []
    cover = stop_while_unsettled(position, position.quantity, listed, context.rules, now, monitor)
    return clear_of_mark(cover, mark, context)


def stop_awaiting_orders(
    position: Position,
    held: Decimal,
    listed: Mapping[str, Sequence[Order]],
    mark: Decimal | None,
    now: datetime,
    context: Context,
) -> list[OrderAction]:
    """What `stop_while_unsettled` places for the `held` quantity of `position` while its
    reduction awaits an unsettled order of ours, clear of `mark` (an exit of ours may be in
    flight: no other exit is sent)."""
    rules, monitor = context.rules, context.monitor
    cover = stop_while_unsettled(position, held, listed, rules, now, monitor)
    return clear_of_mark(cover, mark, context)
