"""Our stops and take-profits that met their trigger and are not done: no entry beside them. Pure.

Binance reports a conditional order that met its trigger as TRIGGERING, then TRIGGERED while
its market order runs (`Order.triggered_at`), and refuses to cancel it meanwhile (-2011). Its
demo trading has left such orders in TRIGGERING for good (NautilusTrader discussion 5378); the
keeper then places another stop beside a position's (protect.py, StopWhy.STUCK) and never
cancels the stuck one. Reduce-only, it can close nothing while no position is held; but should
Binance execute it later while a new position is open on the symbol, it would reduce that
position: an unplanned partial close, booked as that old order's fill. So the planner keeps
each working order's trigger time as the exchange last reported it (`trigger_times`), and
`Book.blocked` takes no entry on a symbol while an order of ours there is firing, until the
exchange reports it final (filled, cancelled, expired) or no longer knows it.

Every firing order blocks, not only one stuck `stop_stuck_after_s`: one still firing while no
position is held (closed by another order meanwhile) may execute as late as a stuck one, and
while a position is held the symbol takes no entry anyway.

GET openAlgoOrders may leave firing orders out (Binance does not say), so on REST, or in a
mirror reseeded from such a read, a stop of ours executing would count as missing: another
placed beside it, an exit sent racing its market order. The tick looks such a stop up by id;
`with_looked_up_open` lists it again as the lookup (or, where that failed, the book) knows
it, so protection treats it as it treats a listed one (keeper/protect.py `closing_stop`, and
once stuck `StopWhy.STUCK`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from quantum_trader.domain import ExchangeSnapshot, Order, OrderKind
from quantum_trader.record import replace


def trigger_times(
    working: Iterable[Order],
    listed: Mapping[str, Order],
    state: Callable[[str], Order | None],
) -> list[Order]:
    """The `working` orders whose trigger time the exchange now reports otherwise, with that
    time: as `listed` open (by client order id), else as it last reported the order (`state`:
    stream or lookup). A final state changes nothing here: the settling steps drop the order."""
    changed: list[Order] = []
    for order in working:
        latest = listed.get(order.client_order_id) or state(order.client_order_id)
        if latest is None or latest.status.is_final or latest.triggered_at == order.triggered_at:
            continue
        changed.append(replace(order, triggered_at=latest.triggered_at))
    return changed


def with_looked_up_open(
    snapshot: ExchangeSnapshot, found: Mapping[str, Order | None], working: Iterable[Order]
) -> ExchangeSnapshot:
    """`snapshot` with the `working` orders of ours it leaves out of the open ones (on a
    symbol whose orders it read) that this tick's lookup `found` open, resting or firing, or,
    where that lookup failed, that the book last recorded firing (`trigger_times`): unless
    `snapshot` itself reports them final. One the exchange no longer knows, or a lookup found
    ended, is not added; a firing one is bounded as a listed one is (once stuck it protects
    nothing). A resting one the streams' mirror missed (its NEW event lost) counted as
    missing, and each tick placed another stop until the 20 s check read REST: up to seven
    stops of ours at once on a symbol (an outside-style probe of the by-hand campaign,
    2026-12-06, night), where Binance keeps ten algo orders a symbol at most."""
    listed = {o.client_order_id for o in snapshot.open_conditional_orders}
    added: list[Order] = []
    for order in working:
        cid = order.client_order_id
        reported = snapshot.orders.get(cid)
        if (
            cid in listed
            or not snapshot.lists_orders_of(order.symbol)
            or (reported is not None and reported.status.is_final)
        ):
            continue
        latest = found.get(cid, order)  # the book's record where the lookup failed
        if latest is None or latest.status.is_final:
            continue
        if latest.triggered_at is not None or cid in found:
            added.append(latest)
    if not added:
        return snapshot
    return replace(snapshot, open_conditional_orders=(*snapshot.open_conditional_orders, *added))


def firing_reason(order: Order) -> str:
    """Why no entry may go to `order`'s symbol while it is firing (`Book.blocked`)."""
    kind = "stop" if order.kind is OrderKind.STOP_MARKET else "take-profit"
    since = order.triggered_at.isoformat() if order.triggered_at is not None else "?"
    return (
        f"{kind} {order.client_order_id} triggering since {since} and not done: Binance "
        "refuses to cancel it, and should it execute later it would reduce a new position"
    )


def left_reason(order: Order) -> str:
    """Why no entry may go to `order`'s symbol while it is open there with no position held:
    a closed position's stop or take-profit whose release has not gone through (its cancel
    failed, or was not sent after one before it on the symbol failed:
    keeper/carry_actions.py). A new position there would keep it — orphans are released only
    where none is held — and it would reduce that position at a price no plan of ours set (the
    campaign with a person trading by hand, seed 30764: two take-profits of ours at once, four
    minutes)."""
    kind = "stop" if order.kind is OrderKind.STOP_MARKET else "take-profit"
    return f"{kind} {order.client_order_id} of a closed position not cancelled yet"
