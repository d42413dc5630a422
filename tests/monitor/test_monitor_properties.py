"""Properties of the monitor core (SPEC §6), for any price path and any event sequence:
the managed stop only moves in the position's favour, and after every tick the position has a
protective stop on the exchange that matches it, or it is being closed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from monitor_builders import NOW, SETTINGS, position

from quantum_trader.domain import (
    ExitReason,
    Order,
    OrderKind,
    OrderStatus,
    Position,
    ReasonCode,
    Side,
    TrailMode,
)
from quantum_trader.errors import OrderRejected
from quantum_trader.monitor.protection import (
    CancelOrder,
    CloseAtMarket,
    PlaceStop,
    on_placement_failed,
    on_stop_placed,
    plan_protection,
)
from quantum_trader.monitor.stops import StopMoved, manage_position

CENT = Decimal("0.01")
TIGHTNESS = {TrailMode.AGGRESSIVE: 0, TrailMode.BALANCED: 1, TrailMode.LOOSE: 2}
STEP = timedelta(seconds=SETTINGS.interval_s)

steps = st.tuples(
    st.floats(-0.03, 0.03, allow_nan=False),
    st.sampled_from(list(TrailMode)),
    st.booleans(),
    st.one_of(st.floats(0.0005, 0.08), st.just(float("nan")), st.just(0.0)),
)


@settings(max_examples=150, deadline=None)
@given(
    side=st.sampled_from([Side.LONG, Side.SHORT]),
    entry=st.decimals(Decimal("0.5"), Decimal(120_000), places=2),
    offset=st.one_of(st.none(), st.decimals(Decimal(0), Decimal("0.005"), places=4)),
    path=st.lists(steps, min_size=1, max_size=80),
)
def test_stop_only_moves_in_the_positions_favour(
    side: Side,
    entry: Decimal,
    offset: Decimal | None,
    path: list[tuple[float, TrailMode, bool, float]],
) -> None:
    held = position(side, entry=entry)
    price = entry
    now = NOW
    for change, mode, choppy, atr in path:
        price = max(CENT, (price * (1 + Decimal(repr(change)))).quantize(CENT))
        now += STEP
        decision = manage_position(
            held,
            price,
            now,
            atr_pct=atr,
            trail_mode=mode,
            regime_turned_choppy=choppy,
            settings=SETTINGS,
            break_even_offset=None if offset is None else offset * entry,
        )
        after = decision.position
        sign = side.sign
        assert (after.stop_price - held.stop_price) * sign >= 0
        assert TIGHTNESS[after.trail_mode] <= TIGHTNESS[held.trail_mode]
        for flag in ("break_even_done", "partial_taken", "trailing_active"):
            assert getattr(after, flag) or not getattr(held, flag)
        if decision.exit is not None:
            break
        assert (price - after.stop_price) * sign > 0
        for intent in decision.intents:
            if isinstance(intent, StopMoved):
                assert intent.reason in {ExitReason.BREAK_EVEN, ExitReason.TRAILING}
        held = after


@dataclass
class FakeStops:
    """The exchange's open conditional orders for one symbol, with failures on demand."""

    orders: dict[str, Order] = field(default_factory=dict)
    reject_next: bool = False
    fewest_during_replacement: int = 99

    def place(self, action: PlaceStop, now: datetime) -> Order:
        if self.reject_next:
            self.reject_next = False
            raise OrderRejected(ReasonCode.ORDER_REJECTED, "would immediately trigger")
        order = Order.pending(action.request(), now)
        self.orders[action.client_order_id] = replace(order, status=OrderStatus.OPEN)
        return order

    def cancel(self, client_order_id: str) -> None:
        self.orders.pop(client_order_id, None)
        self.fewest_during_replacement = min(self.fewest_during_replacement, len(self.orders))


def run_tick(
    held: Position, book: FakeStops, now: datetime
) -> tuple[Position, CloseAtMarket | None]:
    """What monitor/loop.py does with the plan: place first, cancel after, close on failure."""
    for action in plan_protection(held, list(book.orders.values()), now, SETTINGS):
        if isinstance(action, PlaceStop):
            try:
                book.place(action, now)
            except OrderRejected as error:
                return held, on_placement_failed(held, error)
            held = on_stop_placed(held, action, now)
        elif isinstance(action, CancelOrder):
            book.cancel(action.client_order_id)
        else:
            return held, action
    return held, None


events = st.one_of(
    st.tuples(st.just("move"), st.integers(1, 300)),
    st.tuples(st.just("partial"), st.integers(1, 9)),
    st.tuples(st.just("cancel_by_hand"), st.integers(0, 3)),
    st.tuples(st.just("reject_next"), st.just(0)),
    st.tuples(st.just("wait"), st.integers(0, 120)),
)


def apply_event(
    held: Position, book: FakeStops, event: tuple[str, int], now: datetime
) -> tuple[Position, datetime]:
    kind, amount = event
    if kind == "move":
        step = held.entry_price * Decimal(amount) / 10_000 * held.side.sign
        held = replace(held, stop_price=held.stop_price + step)
    elif kind == "partial" and held.quantity > Decimal("0.01"):
        remaining = (held.quantity * Decimal(amount) / 10).quantize(Decimal("0.001"))
        held = replace(held, quantity=max(remaining, Decimal("0.001")))
    elif kind == "cancel_by_hand":
        for client_order_id in list(book.orders)[:amount]:
            book.orders.pop(client_order_id)
    elif kind == "reject_next":
        book.reject_next = True
    elif kind == "wait":
        now += timedelta(seconds=amount)
    return held, now


def assert_protected(held: Position, book: FakeStops, now: datetime) -> None:
    assert held.stop_order_id is not None
    assert list(book.orders) == [held.stop_order_id]
    stop = book.orders[held.stop_order_id]
    assert stop.reduce_only
    assert stop.kind is OrderKind.STOP_MARKET
    assert stop.side is held.side.exit_order_side
    assert stop.quantity == held.quantity
    if stop.trigger_price != held.stop_price:
        assert held.stop_replaced_at is not None
        assert (now - held.stop_replaced_at).total_seconds() < SETTINGS.stop_replace_min_interval_s
        assert stop.trigger_price is not None
        assert (held.stop_price - stop.trigger_price) * held.side.sign > 0


@settings(max_examples=200, deadline=None)
@given(side=st.sampled_from([Side.LONG, Side.SHORT]), script=st.lists(events, max_size=60))
def test_no_position_is_left_unprotected_after_a_tick(
    side: Side, script: list[tuple[str, int]]
) -> None:
    held = position(side)
    book = FakeStops()
    now = NOW
    held, close = run_tick(held, book, now)  # right after the entry fills
    for event in [None, *script]:
        if close is not None:
            assert close.reason is ExitReason.PROTECTION_FAILED
            assert close.quantity == held.quantity
            return
        assert_protected(held, book, now)
        if event is not None:
            held, now = apply_event(held, book, event, now)
        now += STEP
        book.fewest_during_replacement = 99
        had_stop = bool(book.orders)
        held, close = run_tick(held, book, now)
        if had_stop:
            assert book.fewest_during_replacement >= 1
