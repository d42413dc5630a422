"""Exchange-side protection planning (SPEC §6): place when missing, replace when moved (rate
limited), resize after a partial exit, cancel what no position needs; and our client ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from position_builders import NOW, SETTINGS, position, protected, stop_order

from quantum_trader.domain import ExitReason, MarketRules, OrderKind, OrderSide, Side
from quantum_trader.keeper.exit_stops import (
    guarded_exits,
    refused_exit_trigger,
    stop_before_partial_exit,
)
from quantum_trader.keeper.ids import (
    VALID_ID,
    ClientOrderIds,
    Purpose,
    as_sent,
    is_ours,
    purpose_of,
)
from quantum_trader.keeper.protect import (
    CancelOrder,
    PlaceStop,
    SendExit,
    StopWhy,
    check_protection,
    exchange_trigger,
    plan_protection,
    plan_release,
    stop_while_unsettled,
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
    assert action.side is (OrderSide.SELL if side is Side.LONG else OrderSide.BUY)


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


def test_a_partial_exit_of_a_position_without_a_stop_is_preceded_by_one_for_all_of_it() -> None:
    held = position()
    partial = SendExit(held.symbol, OrderSide.SELL, held.quantity / 2, ExitReason.PARTIAL_TP)
    [place] = stop_before_partial_exit(held, check_protection(held, [], None), [partial])
    assert isinstance(place, PlaceStop)
    assert (place.why, place.quantity, place.trigger) == (
        StopWhy.MISSING,
        held.quantity,
        held.stop_price,
    )


def test_no_stop_goes_before_a_full_exit_or_where_one_already_protects() -> None:
    held = protected(position())
    full = SendExit(held.symbol, OrderSide.SELL, held.quantity, ExitReason.SL_HIT)
    assert stop_before_partial_exit(held, check_protection(held, [], None), [full]) == []
    partial = SendExit(held.symbol, OrderSide.SELL, held.quantity / 2, ExitReason.PARTIAL_TP)
    listed = [stop_order(held, EXECUTOR_STOP)]
    assert stop_before_partial_exit(held, check_protection(held, listed, None), [partial]) == []


def test_a_partial_exit_of_a_position_grown_past_its_stop_is_preceded_by_one_for_all_of_it() -> (
    None
):
    held = protected(position(quantity=Decimal("0.3")))  # grew by hand from 0.2
    listed = [stop_order(held, EXECUTOR_STOP, quantity=Decimal("0.2"))]
    partial = SendExit(held.symbol, OrderSide.SELL, Decimal("0.1"), ExitReason.PARTIAL_TP)
    check = check_protection(held, listed, None)
    [place] = stop_before_partial_exit(held, check, [partial])
    assert isinstance(place, PlaceStop)
    assert (place.why, place.quantity) == (StopWhy.RESIZED, held.quantity)
    exact = [stop_order(held, EXECUTOR_STOP, quantity=Decimal("0.3"))]  # covers all of it
    assert stop_before_partial_exit(held, check_protection(held, exact, None), [partial]) == []
    # One larger covers it too: Binance's FAQ exempts a reduce-only stop-market order of the
    # position's size or more from its refusal of those larger than the position.
    larger = [stop_order(held, EXECUTOR_STOP, quantity=Decimal("0.4"))]
    assert stop_before_partial_exit(held, check_protection(held, larger, None), [partial]) == []


GAP = 0.002
TICK = Decimal("0.1")


def test_a_full_exit_of_a_position_without_a_stop_carries_one_to_place_if_it_is_refused() -> None:
    held = position()  # stop 87 300
    full = SendExit(held.symbol, OrderSide.SELL, held.quantity, ExitReason.SL_HIT)
    check = check_protection(held, [], TICK)
    [exit_] = guarded_exits(held, check, [full], Decimal(87_000), TICK, GAP)
    assert exit_ == replace(
        full,
        if_refused=(
            PlaceStop(
                held.symbol, OrderSide.SELL, held.quantity, Decimal(86_826), StopWhy.EXIT_REFUSED
            ),
        ),
    )


def test_a_full_exit_covered_by_a_listed_stop_needs_nothing_if_refused() -> None:
    held = protected(position())
    full = SendExit(held.symbol, OrderSide.SELL, held.quantity, ExitReason.TIME_EXIT)
    check = check_protection(held, [stop_order(held, EXECUTOR_STOP)], TICK)
    assert guarded_exits(held, check, [full], Decimal(90_000), TICK, GAP) == [full]


def test_a_stop_smaller_than_the_position_is_replaced_if_its_full_exit_is_refused() -> None:
    held = protected(position())
    short_stop = stop_order(held, EXECUTOR_STOP, quantity=held.quantity / 2)  # grown by hand
    full = SendExit(held.symbol, OrderSide.SELL, held.quantity, ExitReason.TIME_EXIT)
    check = check_protection(held, [short_stop], TICK)
    [exit_] = guarded_exits(held, check, [full], Decimal(90_000), TICK, GAP)
    assert isinstance(exit_, SendExit)
    place, cancel = exit_.if_refused
    assert place == PlaceStop(
        held.symbol, OrderSide.SELL, held.quantity, held.stop_price, StopWhy.EXIT_REFUSED
    )
    assert cancel == CancelOrder(held.symbol, EXECUTOR_STOP)  # after: never two for long


def test_partial_exits_are_guarded_by_a_stop_placed_first() -> None:
    held = position()
    partial = SendExit(held.symbol, OrderSide.SELL, held.quantity / 2, ExitReason.PARTIAL_TP)
    check = check_protection(held, [], TICK)
    place, exit_ = guarded_exits(held, check, [partial], Decimal(95_000), TICK, GAP)
    assert isinstance(place, PlaceStop)
    assert place.why is StopWhy.MISSING
    assert exit_ == partial


@pytest.mark.parametrize(
    ("side", "planned", "mark", "tick", "trigger"),
    [
        (Side.LONG, "87300", "90000", TICK, "87300"),  # far from the mark: the managed stop
        (Side.LONG, "87300", "87000", TICK, "86826"),  # passed: 0.2 % below the mark
        (Side.LONG, "87300", "87400", TICK, "87225.2"),  # closer than the gap: the gap
        (Side.LONG, "87300", "87000.05", TICK, "86826"),  # floored to the tick
        (Side.SHORT, "92700", "90000", TICK, "92700"),
        (Side.SHORT, "92700", "93000", TICK, "93186"),  # passed: 0.2 % above the mark
        (Side.SHORT, "92700", "93000.05", TICK, "93186.1"),  # ceiling to the tick
        (Side.LONG, "87300", None, TICK, "87300"),  # no mark: nothing to compare with
        (Side.LONG, "0.10", "0.1", Decimal("0.01"), "0.09"),  # at least a tick from the mark
        (Side.SHORT, "0.10", "0.1", Decimal("0.01"), "0.11"),
    ],
)
def test_a_stop_after_a_refused_exit_is_one_binance_accepts(
    side: Side, planned: str, mark: str | None, tick: Decimal, trigger: str
) -> None:
    at = None if mark is None else Decimal(mark)
    found = refused_exit_trigger(side, Decimal(planned), at, tick, GAP)
    assert found == Decimal(trigger)
    assert found % tick == 0
    if at is not None:  # a SELL stop below the mark, a BUY stop above: not triggering at once
        assert (at - found) * side.sign >= tick


def test_a_reduction_awaiting_an_unsettled_order_is_covered_by_a_stop_for_what_is_held() -> None:
    held = position()  # booked 0.2; the exchange shows 0.1 while an order of ours is unsettled
    rules = {held.symbol: MarketRules(held.symbol, TICK, Decimal("0.001"), Decimal(0), Decimal(5))}
    [place] = stop_while_unsettled(held, Decimal("0.1"), {}, rules, NOW, SETTINGS)
    assert place == PlaceStop(
        held.symbol, OrderSide.SELL, Decimal("0.1"), held.stop_price, StopWhy.MISSING
    )
    exact = stop_order(held, EXECUTOR_STOP, quantity=Decimal("0.1"))
    assert (
        stop_while_unsettled(held, Decimal("0.1"), {held.symbol: [exact]}, rules, NOW, SETTINGS)
        == []
    )
    # The stop of the 0.2 booked covers the 0.1 held: Binance's FAQ exempts a reduce-only
    # stop-market order of the position's size or more from its refusal of larger ones.
    larger = {held.symbol: [stop_order(held, EXECUTOR_STOP)]}
    assert stop_while_unsettled(held, Decimal("0.1"), larger, rules, NOW, SETTINGS) == []
    assert stop_while_unsettled(held, Decimal(0), {}, rules, NOW, SETTINGS) == []  # nothing held


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


def test_stray_stops_and_targets_of_ours_are_cancelled_and_others_left_alone() -> None:
    held = replace(protected(position()), take_profit_order_id="qt-t-BTC-abc-2")
    current = stop_order(held, EXECUTOR_STOP)
    stray = stop_order(held, "qt-sl-BTC-xyz-3", trigger=Decimal(87_000))
    manual = stop_order(held, "web_8f2k", trigger=Decimal(85_000))
    target = stop_order(held, "qt-t-BTC-abc-2", kind=OrderKind.TAKE_PROFIT_MARKET)
    old_target = stop_order(held, "qt-t-BTC-abc-1", kind=OrderKind.TAKE_PROFIT_MARKET)
    other_symbol = replace(stray, symbol="ETH/USDT:USDT", client_order_id="qt-sl-ETH-x-1")
    every = [current, stray, manual, target, old_target, other_symbol]
    assert plan_protection(held, every, NOW, SETTINGS) == [
        CancelOrder(held.symbol, "qt-sl-BTC-xyz-3"),
        CancelOrder(held.symbol, "qt-t-BTC-abc-1"),
    ]


def test_triggers_round_to_the_tick_in_the_positions_favour() -> None:
    long = replace(position(Side.LONG), stop_price=Decimal("91100.37"))
    short = replace(position(Side.SHORT), stop_price=Decimal("91100.37"))
    tick = Decimal("0.1")
    assert exchange_trigger(long, tick) == Decimal("91100.4")
    assert exchange_trigger(short, tick) == Decimal("91100.3")
    held = protected(long)
    order = stop_order(held, EXECUTOR_STOP, trigger=Decimal("91100.4"))
    assert plan_protection(held, [order], NOW + INTERVAL, SETTINGS, tick_size=tick) == []


def test_client_ids_are_valid_ours_named_by_purpose_and_unique_across_runs() -> None:
    symbol = "1000000MOGCOIN/USDT:USDT"
    issued = set()
    for run in (1, 2, 36, 37, 36**3):
        ids = ClientOrderIds(run)
        for purpose in Purpose:
            for _ in range(40):  # the same millisecond: the run and the counter tell them apart
                value = ids.next(purpose, symbol, NOW)
                assert VALID_ID.match(value)
                assert len(value) <= 36
                assert is_ours(value)
                assert purpose_of(value) is purpose
                issued.add(value)
    assert len(issued) == 5 * len(Purpose) * 40
    assert purpose_of("qt-sl-BTC-kx2-1") is Purpose.STOP  # ids of earlier versions
    assert purpose_of("web_8f2k") is None


@pytest.mark.parametrize(
    ("client_order_id", "read_as"),
    [
        ("qt-s-BTC-kx2-1.1", True),
        ("qt-t-BTC-kx2-1.2", True),
        ("qt-x-BTC-kx2-1.3", True),
        ("qt-sl-BTC-kx2-1", True),  # a stop of an earlier version
        ("qt-e-BTC-kx2-1.4", False),  # entries are never reduce-only
        ("web_8f2k", None),  # not ours: left as answered
    ],
)
def test_an_answer_without_reduce_only_is_read_as_sent(
    client_order_id: str, read_as: bool | None
) -> None:
    unstated = replace(stop_order(position(), client_order_id), reduce_only=None)
    assert as_sent(unstated).reduce_only is read_as
    stated = replace(unstated, reduce_only=False)
    assert as_sent(stated) is stated  # what the exchange states stands


def test_a_stop_of_ours_answered_without_reduce_only_is_kept() -> None:
    held = protected(position())
    unstated = replace(stop_order(held, EXECUTOR_STOP), reduce_only=None)
    assert plan_protection(held, [as_sent(unstated)], NOW, SETTINGS) == []


def test_a_recorded_stop_that_matches_needs_nothing() -> None:
    held = position()
    [action] = plan_protection(held, [], NOW, SETTINGS)
    assert isinstance(action, PlaceStop)
    recorded = replace(held, stop_order_id="qt-s-BTC-new-1", stop_replaced_at=NOW)
    order = stop_order(recorded, "qt-s-BTC-new-1")
    assert plan_protection(recorded, [order], NOW, SETTINGS) == []


def test_release_cancels_our_leftovers_only() -> None:
    held = protected(position())
    ours = [
        stop_order(held, EXECUTOR_STOP),
        stop_order(held, "qt-t-BTC-abc-2", kind=OrderKind.TAKE_PROFIT_MARKET),
    ]
    manual = stop_order(held, "web_8f2k")
    assert plan_release(held.symbol, [*ours, manual]) == [
        CancelOrder(held.symbol, EXECUTOR_STOP),
        CancelOrder(held.symbol, "qt-t-BTC-abc-2"),
    ]
