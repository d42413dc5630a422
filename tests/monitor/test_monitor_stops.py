"""Stop maths (SPEC §6): the SPEC's trailing example and each rule at its boundary, long and
mirrored short. Short prices are the long ones mirrored around the entry (2 × entry − price)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from position_builders import ENTRY, NOW, SETTINGS, position

from quantum_trader.domain import ExitMode, ExitReason, Position, Side, TrailMode
from quantum_trader.errors import MarketDataError
from quantum_trader.monitor.stops import (
    ExitAll,
    PartialClose,
    PositionDecision,
    StopMoved,
    base_trail_mode,
    break_even_level,
    manage_position,
    tighter,
    with_extremes,
)

SIDES = [Side.LONG, Side.SHORT]
CENT = Decimal("0.01")


def at(side: Side, long_price: str | Decimal) -> Decimal:
    """The long-side price, mirrored around the entry for a short."""
    price = Decimal(long_price)
    return price if side is Side.LONG else 2 * ENTRY - price


def tick(
    held: Position,
    price: Decimal,
    *,
    minutes: float = 5,
    offset: Decimal | None = Decimal(0),
    trail_mode: TrailMode = TrailMode.BALANCED,
    choppy: bool = False,
    atr_pct: float = 0.02,
) -> PositionDecision:
    return manage_position(
        held,
        price,
        held.opened_at + timedelta(minutes=minutes),
        atr_pct=atr_pct,
        trail_mode=trail_mode,
        regime_turned_choppy=choppy,
        settings=SETTINGS,
        break_even_offset=offset,
    )


def moved(decision: PositionDecision) -> StopMoved | None:
    return next((i for i in decision.intents if isinstance(i, StopMoved)), None)


@pytest.mark.parametrize("side", SIDES)
def test_spec_trailing_example(side: Side) -> None:
    """Entry 90,000, SL 87,300, TP 95,400, ATR 1,800 (2 %); break-even offset zero."""
    held = position(side)
    assert held.stop_price == at(side, "87300")
    assert held.take_profit_price == at(side, "95400")

    first = tick(held, at(side, "91800"))
    assert first.position.stop_price == at(side, "90000")
    assert first.position.trailing_active
    assert first.exit is None

    second = tick(first.position, at(side, "94000"))
    assert second.position.stop_price == at(side, "92200")
    move = moved(second)
    assert move is not None
    assert move.reason is ExitReason.TRAILING
    assert move.old_stop == at(side, "90000")

    retrace = tick(second.position, at(side, "92200"))
    assert retrace.exit == ExitAll(ExitReason.TRAILING_HIT, at(side, "92200"))
    assert retrace.intents == (retrace.exit,)


@pytest.mark.parametrize("side", SIDES)
def test_spec_example_via_break_even_first(side: Side) -> None:
    at_one_pct = tick(position(side), at(side, "90900"))
    assert at_one_pct.position.stop_price == ENTRY
    assert at_one_pct.position.break_even_done
    move = moved(at_one_pct)
    assert move is not None
    assert move.reason is ExitReason.BREAK_EVEN
    trailing = tick(at_one_pct.position, at(side, "91800"))
    assert trailing.position.stop_price == ENTRY
    assert moved(trailing) is None
    assert tick(trailing.position, at(side, "94000")).position.stop_price == at(side, "92200")


@pytest.mark.parametrize("side", SIDES)
def test_initial_stop_hit_at_its_boundary(side: Side) -> None:
    held = position(side)
    assert tick(held, at(side, Decimal("87300.01"))).exit is None
    assert tick(held, at(side, "87300")).exit == ExitAll(ExitReason.SL_HIT, at(side, "87300"))
    assert tick(held, at(side, "80000")).exit == ExitAll(ExitReason.SL_HIT, at(side, "80000"))


@pytest.mark.parametrize("side", SIDES)
def test_take_profit_at_its_boundary(side: Side) -> None:
    held = replace(position(side), partial_taken=True, trailing_active=True)
    below = tick(held, at(side, Decimal("95399.99")))
    assert below.exit is None
    assert tick(held, at(side, "95400")).exit == ExitAll(ExitReason.TP_HIT, at(side, "95400"))


@pytest.mark.parametrize("side", SIDES)
def test_break_even_move_at_its_boundary(side: Side) -> None:
    held = position(side)
    below = tick(held, at(side, Decimal("90899.99")))
    assert below.position.stop_price == held.stop_price
    assert not below.position.break_even_done
    assert below.intents == ()
    assert tick(held, at(side, "90900")).position.stop_price == ENTRY


@pytest.mark.parametrize("side", SIDES)
def test_break_even_offset_covers_costs(side: Side) -> None:
    """Default setting 0.12 %: the stop goes to 90,108 (long) / 89,892 (short)."""
    held = position(side)
    assert break_even_level(held, SETTINGS) == at(side, "90108")
    assert tick(held, at(side, "90900"), offset=None).position.stop_price == at(side, "90108")
    explicit = tick(held, at(side, "90900"), offset=Decimal(45))
    assert explicit.position.stop_price == at(side, "90045")


@pytest.mark.parametrize("side", SIDES)
def test_break_even_exit_at_its_boundary(side: Side) -> None:
    at_entry = tick(position(side), at(side, "90900")).position
    assert tick(at_entry, at(side, Decimal("90000.01"))).exit is None
    hit = tick(at_entry, ENTRY)
    assert hit.exit == ExitAll(ExitReason.BREAK_EVEN, ENTRY)


@pytest.mark.parametrize("side", SIDES)
def test_trailing_starts_at_two_percent(side: Side) -> None:
    held = tick(position(side), at(side, "90900")).position
    below = tick(held, at(side, Decimal("91799.99")))
    assert not below.position.trailing_active
    assert tick(held, at(side, "91800")).position.trailing_active


@pytest.mark.parametrize("side", SIDES)
def test_trailing_exit_at_its_boundary(side: Side) -> None:
    trailed = tick(tick(position(side), at(side, "91800")).position, at(side, "94000")).position
    assert tick(trailed, at(side, Decimal("92200.01"))).exit is None
    assert tick(trailed, at(side, "92200")).exit == ExitAll(
        ExitReason.TRAILING_HIT, at(side, "92200")
    )


@pytest.mark.parametrize("side", SIDES)
def test_trailing_stop_between_initial_stop_and_entry_is_a_trailing_hit(side: Side) -> None:
    """LOOSE: 1.5 × 1,800 = 2,700 behind 91,800 puts the stop at 89,100, below break-even
    (here a 2,000 offset keeps the break-even level beyond the price, so it does not apply)."""
    held = position(side, trail_mode=TrailMode.LOOSE)
    trailed = tick(held, at(side, "91800"), offset=Decimal(2000), trail_mode=TrailMode.LOOSE)
    assert not trailed.position.break_even_done
    assert trailed.position.stop_price == at(side, "89100")
    assert tick(trailed.position, at(side, "89100")).exit == ExitAll(
        ExitReason.TRAILING_HIT, at(side, "89100")
    )


@pytest.mark.parametrize("side", SIDES)
def test_partial_take_profit_at_four_percent_once(side: Side) -> None:
    held = position(side)
    below = tick(held, at(side, Decimal("93599.99")))
    assert not any(isinstance(i, PartialClose) for i in below.intents)
    first = tick(held, at(side, "93600"))
    partial = first.intents[0]
    assert partial == PartialClose(Decimal("0.1"), at(side, "93600"))
    assert first.position.partial_taken
    assert first.position.quantity == held.quantity  # the caller books the fill
    again = tick(first.position, at(side, "94500"))
    assert not any(isinstance(i, PartialClose) for i in again.intents)


@pytest.mark.parametrize("side", SIDES)
def test_time_exit_after_max_hold(side: Side) -> None:
    held = position(side)
    price = at(side, "90500")
    limit = SETTINGS.max_hold_h * 60
    assert tick(held, price, minutes=limit).exit is None
    late = tick(held, price, minutes=limit + 1 / 60_000)
    assert late.exit == ExitAll(ExitReason.TIME_EXIT, price)


@pytest.mark.parametrize("side", SIDES)
def test_time_exit_spared_only_when_the_stop_locks_in_profit(side: Side) -> None:
    late = SETTINGS.max_hold_h * 60 + 5
    price = at(side, "90500")
    at_entry = replace(position(side), stop_price=ENTRY, break_even_done=True)
    assert tick(at_entry, price, minutes=late).exit == ExitAll(ExitReason.TIME_EXIT, price)
    locked = replace(at_entry, stop_price=at(side, Decimal("90000.01")))
    assert tick(locked, price, minutes=late).exit is None


@pytest.mark.parametrize("side", SIDES)
def test_regime_turning_choppy_tightens_to_aggressive(side: Side) -> None:
    trailed = tick(position(side), at(side, "91800")).position
    tightened = tick(trailed, at(side, "92000"), choppy=True)
    assert tightened.position.trail_mode is TrailMode.AGGRESSIVE
    assert tightened.position.stop_price == at(side, "91100")
    # The tightening sticks once the turn is over.
    later = tick(tightened.position, at(side, "92500"))
    assert later.position.trail_mode is TrailMode.AGGRESSIVE
    assert later.position.stop_price == at(side, "91600")


def test_trail_mode_choice() -> None:
    assert base_trail_mode(ExitMode.TREND_FOLLOW, SETTINGS) is TrailMode.BALANCED
    assert base_trail_mode(ExitMode.DEFENSIVE_TRAIL, SETTINGS) is TrailMode.BALANCED
    assert (
        base_trail_mode(ExitMode.TREND_FOLLOW, SETTINGS, defensive_exit=True)
        is TrailMode.AGGRESSIVE
    )
    assert tighter(TrailMode.LOOSE, TrailMode.BALANCED) is TrailMode.BALANCED
    assert tighter(TrailMode.LOOSE) is TrailMode.LOOSE


@pytest.mark.parametrize("side", SIDES)
def test_defensive_exit_trails_at_half_an_atr(side: Side) -> None:
    trailed = tick(position(side), at(side, "92000"), trail_mode=TrailMode.AGGRESSIVE)
    assert trailed.position.stop_price == at(side, "91100")


@pytest.mark.parametrize("side", SIDES)
def test_missing_atr_keeps_the_stop(side: Side) -> None:
    held = replace(position(side), stop_price=ENTRY, break_even_done=True)
    decision = tick(held, at(side, "93000"), atr_pct=float("nan"))
    assert decision.position.stop_price == ENTRY
    assert decision.position.trailing_active


@pytest.mark.parametrize("side", SIDES)
def test_extremes_are_tracked(side: Side) -> None:
    first = tick(position(side), Decimal(91_000)).position
    second = tick(first, Decimal(90_500)).position
    assert (second.highest_price, second.lowest_price) == (Decimal(91_000), Decimal(90_500))


@pytest.mark.parametrize("price", [Decimal(0), Decimal(-1), Decimal("NaN")])
def test_bad_mark_price_is_refused(price: Decimal) -> None:
    with pytest.raises(MarketDataError):
        tick(position(), price)


def test_events_carry_reason_codes() -> None:
    decision = tick(position(), Decimal(94_000))
    events = decision.events(NOW)
    assert [e.reason for e in events] == [ExitReason.PARTIAL_TP, ExitReason.TRAILING]
    assert events[0].quantity == Decimal("0.1")
    assert events[1].new_stop_price == Decimal(92_200)
    assert decision.position.break_even_done
    exit_events = tick(decision.position, Decimal(80_000)).events(NOW)
    assert [(e.reason, e.price) for e in exit_events] == [
        (ExitReason.TRAILING_HIT, Decimal(80_000))
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("long_price", ["89000", "89700", "90000", "90400", "90800"])
def test_with_extremes_records_what_a_tick_with_nothing_else_to_do_records(
    side: Side, long_price: str
) -> None:
    """A backtest books the steps of a stretch it checked at once with `with_extremes`
    (replay_quiet.py): it must leave the position a tick that moves nothing leaves."""
    held = replace(position(side), highest_price=ENTRY + 400, lowest_price=ENTRY - 300)
    price = at(side, long_price)
    decision = tick(held, price)
    assert not decision.intents  # the premise: the tick moves nothing
    assert with_extremes(held, price) == decision.position
    if decision.position is held:
        assert with_extremes(held, price) is held
