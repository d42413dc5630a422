"""Exchange-side protection of one position (SPEC §6): pure planning, the keeper executes it.

Every open position keeps one reduce-only STOP_MARKET order of ours on the exchange at the
managed stop, so it stays protected when this process is gone. A `PlaceStop` comes before the
`CancelOrder`s of the stops it replaces, so a stop is always on the exchange while it is
replaced (two reduce-only stops may coexist; neither can open a position); if the placement
fails, the keeper skips the cancels and closes the position at market.

A position no stop of its quantity can cover (below the symbol's minimum quantity after a
reduction by hand or a minimum raised, or off its step) gets a close-all stop instead
(`fits_quantity_stop`; Binance's closePosition, placed by keeper/carry_actions.py), which covers
whatever is held and is never resized. Binance keeps one close-all order per symbol and side
(-4130), so one is replaced by cancelling the old first: the one moment such a position is
without a stop.

Exits go out as the stop maths decides them, with the stops they need when no stop of ours
covers the position (keeper/exit_stops.py).

A stop that met its trigger and is still open (`Order.triggered_at`: Binance's TRIGGERING or
TRIGGERED) is executing: it is never cancelled (Binance refuses) nor replaced for a move. Should
it stay so `stop_stuck_after_s` (Binance has left triggered stops in TRIGGERING for good, their
position open), it no longer counts as protection (`as_of`): another stop is placed beside it.
Until then it is the position's exit in flight (`closing_stop`): the stop maths sends no exit
beside it (a market close racing the stop's own order: whichever comes second Binance refuses,
-2022, or it finds the position already flat).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from quantum_trader.domain import (
    ExitReason,
    MarketRules,
    Order,
    OrderKind,
    OrderSide,
    Position,
    Side,
)
from quantum_trader.keeper.ids import is_ours
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.record import record, replace


class StopWhy(StrEnum):
    """Why a protective stop is (re)placed."""

    ENTRY = "ENTRY"  # the first stop of a position we just entered
    MISSING = "MISSING"
    MOVED = "MOVED"
    RESIZED = "RESIZED"
    EXIT_REFUSED = "EXIT_REFUSED"  # a full exit was refused while no stop covered the position
    STUCK = "STUCK"  # ours met its trigger but is still not done `stop_stuck_after_s` later


@record
class PlaceStop:
    """Place a reduce-only STOP_MARKET closing `quantity` when the mark reaches `trigger`."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    trigger: Decimal
    why: StopWhy


@record
class PlaceTarget:
    """Place a reduce-only TAKE_PROFIT_MARKET closing `quantity` at `trigger`."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    trigger: Decimal


@record
class CancelOrder:
    """Cancel one of our conditional orders; one that is already gone is not an error."""

    symbol: str
    client_order_id: str


@record
class SendExit:
    """Close `quantity` of the position with a reduce-only market order; `if_refused`: what
    to do at once when the exchange refuses it (exit_stops.py `stop_if_exit_refused`)."""

    symbol: str
    side: OrderSide
    quantity: Decimal
    reason: ExitReason
    detail: str = ""
    if_refused: tuple[PlaceStop | CancelOrder, ...] = ()


OrderAction = PlaceStop | PlaceTarget | CancelOrder | SendExit


def closes_all(position: Position, actions: Sequence[OrderAction]) -> bool:
    """An exit among `actions` closes all of `position`."""
    return any(isinstance(a, SendExit) and a.quantity >= position.quantity for a in actions)


def entry_target(position: Position, planned: Sequence[OrderAction]) -> list[PlaceTarget]:
    """The take-profit of `position`, just booked from an entry of ours (its answer, or the
    tick that settles it: answered NEW and filled later, its answer lost), to be placed once
    after its stop and before `planned`'s exits: none when it has one of ours, its plan has
    no target, or an exit in `planned` closes all of it (a fill past its target:
    keeper/fill_check.py; the stop maths' exit: Binance would refuse the target, -2021)."""
    whole = closes_all(position, planned)
    if position.take_profit_order_id is not None or position.take_profit_price <= 0 or whole:
        return []
    side = position.side.exit_order_side
    return [PlaceTarget(position.symbol, side, position.quantity, position.take_profit_price)]


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
    the symbol is cancelled; so is any take-profit of ours that is not the position's own, is
    on the wrong side, or is larger than the position (after a part exit: keeper/target.py).
    With `tick_size`, the trigger is the managed stop rounded to the tick in the position's
    favour (tighter, never looser).
    """
    check = check_protection(position, open_conditional_orders_for_symbol, tick_size)
    return protection_actions(position, as_of(check, now, settings), now, settings)


@record
class ProtectionCheck:
    """What `plan_protection` finds before it looks at the clock: our stops and stray
    take-profits listed for the symbol, the position's own stop, the trigger the managed stop
    needs, and whether the stop must be replaced at once (`needs`) or once the replacement
    interval allows (`moved`; never while it is executing)."""

    stops: tuple[Order, ...]
    stray_targets: tuple[Order, ...]
    current: Order | None
    trigger: Decimal
    needs: StopWhy | None  # MISSING or RESIZED; STUCK once `as_of` finds it so
    moved: bool


def as_of(check: ProtectionCheck, now: datetime, settings: MonitorSettings) -> ProtectionCheck:
    """`check` at `now`: a position's stop that met its trigger `stop_stuck_after_s` or more
    ago and is still open is no stop of the position's (a new one is needed: STUCK)."""
    if check.current is None or not is_stuck(check.current, now, settings):
        return check
    return replace(check, current=None, needs=StopWhy.STUCK, moved=False)


def is_stuck(order: Order, now: datetime, settings: MonitorSettings) -> bool:
    """`order` met its trigger `stop_stuck_after_s` or more before `now` and is still open:
    it protects nothing (see the module docstring)."""
    fired = order.triggered_at
    if fired is None or order.status.is_final:  # most ticks: no duration made
        return False
    return now - fired >= timedelta(seconds=settings.stop_stuck_after_s)


def closing_stop(
    position: Position, orders: Sequence[Order], now: datetime, settings: MonitorSettings
) -> Order | None:
    """The position's own stop among `orders` when it met its trigger, is executing (not
    stuck: `is_stuck`) and closes all of `position`: its exit is in flight, so no exit of the
    stop maths goes beside it (the keeper waits, as for an exit of ours in flight); None
    otherwise."""
    for order in orders:
        if (
            order.client_order_id == position.stop_order_id
            and order.triggered_at is not None
            and _is_ours_open(order, position.symbol)
            and order.kind is OrderKind.STOP_MARKET
            and _protects(order, position)
            and covers(order, position.quantity)
            and not is_stuck(order, now, settings)
        ):
            return order
    return None


def check_protection(
    position: Position, orders: Sequence[Order], tick_size: Decimal | None
) -> ProtectionCheck:
    """The clock-free part of `plan_protection` (see there)."""
    stops: list[Order] = []
    stray_targets: list[Order] = []
    exit_side = position.side.exit_order_side
    for order in orders:
        if not _is_ours_open(order, position.symbol):
            continue
        if order.kind is OrderKind.STOP_MARKET:
            stops.append(order)
        elif (
            order.client_order_id != position.take_profit_order_id
            or order.side is not exit_side
            or _larger_than(order, position)
        ):
            stray_targets.append(order)  # not the position's own, or larger than it
    current = next((o for o in stops if o.client_order_id == position.stop_order_id), None)
    trigger = exchange_trigger(position, tick_size)
    needs: StopWhy | None = None
    if current is None or not _protects(current, position):
        needs = StopWhy.MISSING
    elif (
        not current.close_position
        and current.quantity - current.filled_quantity != position.quantity
    ):
        needs = StopWhy.RESIZED
    moved = (
        needs is None
        and current is not None
        and current.triggered_at is None  # executing: it closes the position as it is
        and current.trigger_price != trigger
    )
    return ProtectionCheck(tuple(stops), tuple(stray_targets), current, trigger, needs, moved)


def protection_actions(
    position: Position, check: ProtectionCheck, now: datetime, settings: MonitorSettings
) -> list[OrderAction]:
    """The actions of `plan_protection` from its check (`as_of` now) and the clock."""
    why = check.needs
    if check.moved:
        last = position.stop_replaced_at
        interval = timedelta(seconds=settings.stop_replace_min_interval_s)
        if last is None or now - last >= interval:
            why = StopWhy.MOVED
    keep = None if why is not None else check.current
    cancels: list[OrderAction] = [
        CancelOrder(o.symbol, o.client_order_id)
        for o in (*check.stops, *check.stray_targets)
        if o is not keep and o.triggered_at is None
    ]
    if why is None:
        return cancels
    place = PlaceStop(
        position.symbol, position.side.exit_order_side, position.quantity, check.trigger, why
    )
    return [place, *cancels]


def stop_while_unsettled(
    position: Position,
    held: Decimal,
    listed: Mapping[str, Sequence[Order]],
    rules: Mapping[str, MarketRules],
    now: datetime,
    settings: MonitorSettings,
) -> list[OrderAction]:
    """A stop for the `held` quantity the exchange shows of `position` while its reduction
    waits for an unsettled order of ours (the planner neither books nor manages the position
    until that order settles, up to `unknown_order_final_s`, longer while it cannot be looked
    up): placed at the managed stop when no reduce-only stop of ours listed for the symbol
    covers `held` — one stuck firing (`is_stuck`) covers nothing. Nothing is cancelled while
    the order is unsettled; the tick that settles it resizes or replaces the stop.
    """
    if held <= 0:
        return []
    orders = listed.get(position.symbol, ())
    if any(
        _is_ours_open(o, position.symbol)
        and o.kind is OrderKind.STOP_MARKET
        and _protects(o, position)
        and covers(o, held)
        and not is_stuck(o, now, settings)
        for o in orders
    ):
        return []
    market = rules.get(position.symbol)
    trigger = exchange_trigger(position, market.tick_size if market else None)
    side = position.side.exit_order_side
    return [PlaceStop(position.symbol, side, held, trigger, StopWhy.MISSING)]


def on_tick_grid(position: Position, rules: MarketRules | None) -> Position:
    """`position` with its stop and target prices rounded to the market's tick."""
    if rules is None:
        return position
    return replace(
        position,
        stop_price=rules.round_price(position.stop_price),
        initial_stop_price=rules.round_price(position.initial_stop_price),
        take_profit_price=rules.round_price(position.take_profit_price),
    )


def covers(stop: Order, quantity: Decimal) -> bool:
    """`stop` closes at least `quantity` when it fires: a close-all one whatever is held, a
    larger one what is held. Binance's FAQ ("Summary of Failed Orders", German version)
    exempts reduce-only stop-market and market orders of the position's size or more from its
    refusal of reduce-only orders larger than the position."""
    return stop.close_position or stop.quantity - stop.filled_quantity >= quantity


def fits_quantity_stop(quantity: Decimal, rules: MarketRules | None) -> bool:
    """A stop of exactly `quantity` meets the symbol's lot filters (both market order filters'
    step and minimum: it fires as a market order). Else the position gets a close-all stop
    (closePosition), which carries no quantity: Binance would refuse a quantity stop below
    the minimum, and one rounded down to the step would leave a rest unprotected."""
    if rules is None:
        return True
    lot = rules.market_order_lot.lot
    return quantity >= lot.min_quantity and lot.is_on_step(quantity)


def _larger_than(order: Order, position: Position) -> bool:
    """`order` (reduce-only, with a quantity) would close more than `position` holds: after a
    part exit, ours or by hand. Binance's FAQ refuses a reduce-only order larger than the
    position (-2022) but for market and stop-market ones, so such a take-profit may close
    nothing when it fires; it is cancelled and placed again for what is held
    (keeper/target.py)."""
    return not order.close_position and order.quantity - order.filled_quantity > position.quantity


def _is_ours_open(order: Order, symbol: str) -> bool:
    return (
        order.symbol == symbol
        and order.kind.is_conditional
        and is_ours(order.client_order_id)
        and not order.status.is_final
    )


def _protects(order: Order, position: Position) -> bool:
    """`order`, one of ours, closes `position` only: reduce-only (as the exchange states it,
    or as sent where its answer does not say: the planner reads listed orders via
    ids.as_sent), on the side that closes it, with a trigger."""
    return (
        order.reduce_only is True
        and order.side is position.side.exit_order_side
        and order.trigger_price is not None
    )


def exchange_trigger(position: Position, tick_size: Decimal | None = None) -> Decimal:
    """The managed stop as the exchange gets it: rounded to the tick in the position's favour."""
    return stop_trigger(position.side, position.stop_price, tick_size)


def stop_trigger(side: Side, stop_price: Decimal, tick_size: Decimal | None) -> Decimal:
    """`stop_price` rounded to the tick in the favour of a position on `side` (tighter)."""
    return _on_tick(stop_price, tick_size, ROUND_CEILING if side is Side.LONG else ROUND_FLOOR)


def _on_tick(price: Decimal, tick_size: Decimal | None, rounding: str) -> Decimal:
    if tick_size is None or tick_size <= 0:
        return price
    return (price / tick_size).to_integral_value(rounding) * tick_size


def plan_release(symbol: str, open_conditional_orders: Sequence[Order]) -> list[CancelOrder]:
    """No position: cancel every conditional order of ours left for `symbol` but those
    executing (met their trigger: Binance refuses to cancel them; reduce-only, they close
    nothing while no position is held, and no entry goes to the symbol until they end:
    keeper/firing.py)."""
    return [
        CancelOrder(o.symbol, o.client_order_id)
        for o in open_conditional_orders
        if _is_ours_open(o, symbol) and o.triggered_at is None
    ]
