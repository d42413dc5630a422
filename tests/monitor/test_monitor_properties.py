"""Properties of the stop maths (SPEC §6), for any price path: the managed stop only moves in
the position's favour. (That every position stays protected is a property of the keeper:
tests/keeper.)"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from position_builders import NOW, SETTINGS, position

from quantum_trader.domain import (
    ExitReason,
    Side,
    TrailMode,
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
