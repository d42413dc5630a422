"""Exchange-side protection planning (SPEC §6): place when missing, replace when moved (rate
limited), resize after a partial exit, close at market when placement fails."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from monitor_builders import NOW, SETTINGS, position, protected, stop_order

from quantum_trader.domain import ExitReason, OrderKind, OrderSide, ReasonCode, Side
from quantum_trader.errors import OrderRejected
from quantum_trader.monitor.protection import (
    VALID_CLIENT_ORDER_ID,
    CancelOrder,
    CloseAtMarket,
    PlaceStop,
    StopWhy,
    exchange_trigger,
    next_stop_id,
    on_placement_failed,
    on_stop_placed,
    plan_protection,
    plan_release,
)

EXECUTOR_STOP = "qt-s-BTC-abc-1"
INTERVAL = timedelta(seconds=SETTINGS.stop_replace_min_interval_s)


def test_a_matching_stop_needs_nothing() -> None:
    held = protected(position())
    assert plan_protection(held, [stop_order(held, EXECUTOR_STOP)], NOW, SETTINGS) == []


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_a_missing_stop_is_placed(side: Side) -> None:
    held = position(side)
    [action] = plan_protection(held, [], NOW, SETTINGS)
    assert isinstance(action, PlaceStop)
    assert (action.why, action.quantity, action.trigger) == (
        StopWhy.MISSING,
        held.quantity,
        held.stop_price,
    )
    request = action.request()
    assert request.reduce_only
    assert request.kind is OrderKind.STOP_MARKET
    assert request.side is (OrderSide.SELL if side is Side.LONG else OrderSide.BUY)


def test_a_stop_cancelled_by_hand_is_placed_again() -> None:
    held = protected(position())
    [action] = plan_protection(held, [], NOW + timedelta(seconds=5), SETTINGS)
    assert isinstance(action, PlaceStop)
    assert action.why is StopWhy.MISSING


def test_a_moved_stop_is_replaced_no_sooner_than_the_interval() -> None:
    held = protected(position())
    old = stop_order(held, EXECUTOR_STOP)
    moved = replace(held, stop_price=Decimal(90_000))
    early = held.opened_at + INTERVAL - timedelta(milliseconds=1)
    assert plan_protection(moved, [old], early, SETTINGS) == []
    place, cancel = plan_protection(moved, [old], held.opened_at + INTERVAL, SETTINGS)
    assert isinstance(place, PlaceStop)
    assert (place.why, place.trigger) == (StopWhy.MOVED, Decimal(90_000))
    assert cancel == CancelOrder(held.symbol, EXECUTOR_STOP)


def test_a_partial_exit_resizes_at_once() -> None:
    held = protected(position())
    old = stop_order(held, EXECUTOR_STOP)
    smaller = replace(held, quantity=Decimal("0.1"), stop_price=Decimal(92_200))
    place, cancel = plan_protection(smaller, [old], held.opened_at, SETTINGS)
    assert isinstance(place, PlaceStop)
    assert (place.why, place.quantity, place.trigger) == (
        StopWhy.RESIZED,
        Decimal("0.1"),
        Decimal(92_200),
    )
    assert cancel == CancelOrder(held.symbol, EXECUTOR_STOP)


@pytest.mark.parametrize("defect", ["not_reduce_only", "no_trigger", "wrong_side"])
def test_a_malformed_stop_of_ours_is_replaced(defect: str) -> None:
    held = protected(position())
    order = stop_order(held, EXECUTOR_STOP)
    order = {
        "not_reduce_only": replace(order, reduce_only=False),
        "no_trigger": replace(order, trigger_price=None),
        "wrong_side": replace(order, side=OrderSide.BUY),
    }[defect]
    place, cancel = plan_protection(held, [order], NOW, SETTINGS)
    assert isinstance(place, PlaceStop)
    assert place.why is StopWhy.MISSING
    assert cancel == CancelOrder(held.symbol, EXECUTOR_STOP)


def test_stray_stops_of_ours_are_cancelled_and_others_left_alone() -> None:
    held = protected(position())
    current = stop_order(held, EXECUTOR_STOP)
    stray = stop_order(held, "qt-sl-BTC-xyz-3", trigger=Decimal(87_000))
    manual = stop_order(held, "web_8f2k", trigger=Decimal(85_000))
    target = stop_order(held, "qt-t-BTC-abc-2", kind=OrderKind.TAKE_PROFIT_MARKET)
    other_symbol = replace(stray, symbol="ETH/USDT:USDT", client_order_id="qt-sl-ETH-x-1")
    actions = plan_protection(held, [current, stray, manual, target, other_symbol], NOW, SETTINGS)
    assert actions == [CancelOrder(held.symbol, "qt-sl-BTC-xyz-3")]


def test_triggers_round_to_the_tick_in_the_positions_favour() -> None:
    long = replace(position(Side.LONG), stop_price=Decimal("91100.37"))
    short = replace(position(Side.SHORT), stop_price=Decimal("91100.37"))
    tick = Decimal("0.1")
    assert exchange_trigger(long, tick) == Decimal("91100.4")
    assert exchange_trigger(short, tick) == Decimal("91100.3")
    held = protected(long)
    order = stop_order(held, EXECUTOR_STOP, trigger=Decimal("91100.4"))
    assert plan_protection(held, [order], NOW + INTERVAL, SETTINGS, tick_size=tick) == []


def test_stop_ids_are_valid_deterministic_and_never_reused() -> None:
    held = position(symbol="1000000MOGCOIN/USDT:USDT")
    first = next_stop_id(held)
    assert first == next_stop_id(held)
    assert VALID_CLIENT_ORDER_ID.match(first)
    assert len(first) <= 36
    rejected = replace(held, stop_order_id=first)
    second = next_stop_id(rejected)
    third = next_stop_id(rejected, [second])
    assert len({first, second, third}) == 3
    assert all(VALID_CLIENT_ORDER_ID.match(i) and len(i) <= 36 for i in (second, third))


def test_placed_stop_is_recorded_on_the_position() -> None:
    held = position()
    [action] = plan_protection(held, [], NOW, SETTINGS)
    assert isinstance(action, PlaceStop)
    later = NOW + timedelta(seconds=5)
    recorded = on_stop_placed(held, action, later)
    assert (recorded.stop_order_id, recorded.stop_replaced_at) == (action.client_order_id, later)
    order = stop_order(recorded, action.client_order_id)
    assert plan_protection(recorded, [order], later, SETTINGS) == []


def test_a_failed_placement_closes_at_market() -> None:
    held = position()
    error = OrderRejected(ReasonCode.ORDER_REJECTED, "Order would immediately trigger")
    close = on_placement_failed(held, error)
    assert close == CloseAtMarket(
        held.symbol, held.quantity, ExitReason.PROTECTION_FAILED, close.detail
    )
    assert "OrderRejected" in close.detail


def test_release_cancels_our_leftovers_only() -> None:
    held = protected(position())
    ours = [
        stop_order(held, EXECUTOR_STOP),
        stop_order(held, "qt-t-BTC-abc-2", kind=OrderKind.TAKE_PROFIT_MARKET),
    ]
    manual = stop_order(held, "web_8f2k")
    assert plan_release(held, [*ours, manual]) == [
        CancelOrder(held.symbol, EXECUTOR_STOP),
        CancelOrder(held.symbol, "qt-t-BTC-abc-2"),
    ]
    closed = replace(held, quantity=Decimal(0))
    assert plan_protection(closed, ours, NOW, SETTINGS) == [CancelOrder(held.symbol, EXECUTOR_STOP)]
