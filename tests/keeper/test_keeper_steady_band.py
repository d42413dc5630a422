"""Groundwork for checking a backtest's quiet stretch once instead of at every step (the band
design, docs/BENCHMARKS.md): with the book and the time fixed, the marks at which the
keeper's tick would only record a new high or low (`keeper/steady.py`) form an interval. If a
position is steady at two marks, it is steady at every mark between them, so a stretch whose
marks stay within two steady ones needs no check in between.

This pins a property of the stop maths as they are (exits, partial take-profit, break-even
and trailing triggers are each one comparison monotone in the mark); a change that breaks it
must also change what the band design may assume."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from position_builders import SETTINGS, position, protected, stop_order

from quantum_trader.domain import ExitMode, MarketRules, OrderKind, Position, Side, TrailMode
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.plan import Context
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.keeper.steady import steady

SYMBOL = "BTC/USDT:USDT"
RULES = {
    SYMBOL: MarketRules(SYMBOL, Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5))
}


@st.composite
def held(draw: st.DrawFn) -> Position:
    """A protected position in any state the stop maths distinguish."""
    side = draw(st.sampled_from(Side))
    p = protected(position(side, symbol=SYMBOL), "qt-s-0-r1-1")
    sign = side.sign
    moved = Decimal(draw(st.integers(-2000, 2500)))  # the stop, trailed or not
    return replace(
        p,
        take_profit_order_id="qt-t-0-r1-2",
        stop_price=p.stop_price + moved * sign,
        atr_pct=draw(st.sampled_from((0.0, 0.004, 0.02, 0.05))),
        exit_mode=draw(st.sampled_from(ExitMode)),
        trail_mode=draw(st.sampled_from(TrailMode)),
        break_even_done=draw(st.booleans()),
        partial_taken=draw(st.booleans()),
        trailing_active=draw(st.booleans()),
        highest_price=p.entry_price + Decimal(draw(st.integers(0, 4000))),
        lowest_price=p.entry_price - Decimal(draw(st.integers(0, 4000))),
    )


def steady_at(p: Position, mark: Decimal, age: timedelta, context: Context) -> bool:
    stop = stop_order(p, "qt-s-0-r1-1")
    target = stop_order(
        p, "qt-t-0-r1-2", kind=OrderKind.TAKE_PROFIT_MARKET, trigger=p.take_profit_price
    )
    book = Book({SYMBOL: p}, working={o.client_order_id: o for o in (stop, target)})
    listed = {SYMBOL: [stop, target]}
    now = p.opened_at + age
    return steady(book, listed, {SYMBOL: mark}, now, context, ProtectionChecks()) is not None


# Three marks near one another around anywhere from near the stop to past the target, so
# that both ends are often steady (the premise) and often not.
marks = st.tuples(
    st.integers(-3000, 6000), st.lists(st.integers(-800, 800), min_size=3, max_size=3, unique=True)
)


@settings(max_examples=400, deadline=None)
@given(
    held(),
    marks,
    st.sampled_from((timedelta(minutes=5), timedelta(hours=30), timedelta(days=5))),
    st.booleans(),
)
def test_the_marks_at_which_a_position_is_steady_form_an_interval(
    p: Position, around: tuple[int, list[int]], age: timedelta, defensive: bool
) -> None:
    centre, offsets = around
    sign = p.side.sign
    low, middle, high = (p.entry_price + Decimal((centre + o) * sign) for o in sorted(offsets))
    context = Context(RULES, KeeperSettings(), SETTINGS, defensive_exit=defensive)
    if steady_at(p, low, age, context) and steady_at(p, high, age, context):
        assert steady_at(p, middle, age, context)


def test_a_position_is_steady_between_its_stop_and_its_triggers_and_not_beyond() -> None:
    """The premise above is met: a plain long is steady a little above its entry and not at
    its stop or its target."""
    p = replace(
        protected(position(Side.LONG, symbol=SYMBOL), "qt-s-0-r1-1"),
        take_profit_order_id="qt-t-0-r1-2",
    )
    context = Context(RULES, KeeperSettings(), SETTINGS)
    age = timedelta(minutes=5)
    assert steady_at(p, p.entry_price + 10, age, context)
    assert steady_at(p, p.entry_price - 500, age, context)
    assert not steady_at(p, p.stop_price, age, context)
    assert not steady_at(p, p.take_profit_price, age, context)


def steady_when(p: Position, mark: Decimal, at: timedelta, listed_stop: Decimal) -> bool:
    """`steady_at`, the exchange's stop at `listed_stop` (behind the position's own when it
    moved and its replacement is held back), `at` after the opening."""
    stop = stop_order(p, "qt-s-0-r1-1", trigger=listed_stop)
    target = stop_order(
        p, "qt-t-0-r1-2", kind=OrderKind.TAKE_PROFIT_MARKET, trigger=p.take_profit_price
    )
    book = Book({SYMBOL: p}, working={o.client_order_id: o for o in (stop, target)})
    context = Context(RULES, KeeperSettings(), SETTINGS)
    now = p.opened_at + at
    found = steady(book, {SYMBOL: [stop, target]}, {SYMBOL: mark}, now, context, ProtectionChecks())
    return found is not None


# Seconds after the opening: near the clock's edges (the stop replacement's interval after
# the last one, the maximum hold) and across four days.
HOLD_S = int(SETTINGS.max_hold_h * 3600)
REPLACED_S = 300  # the stop's last replacement
EDGES = (
    *(REPLACED_S + s for s in (0, 30, 59, 60, 61, 120, 179, 180, 600)),
    *(HOLD_S + s for s in (-1, 0, 1, 300)),
)
instants = st.sampled_from(tuple(sorted({*EDGES, *range(0, 4 * 86400, 3 * 3600)})))


@settings(max_examples=1500, deadline=None)
@given(
    held(),
    st.integers(-3000, 6000),
    st.lists(instants, min_size=2, max_size=2),
    st.booleans(),
)
def test_a_position_steady_at_an_instant_is_steady_at_every_earlier_one(
    p: Position, offset: int, seconds: list[int], stop_moved: bool
) -> None:
    """What reads the clock in a steady tick becomes due and stays due: the time exit after
    `max_hold_h` (unless the stop locks in a profit) and the replacement of a moved stop,
    held back `stop_replace_min_interval_s` after the last one. So a stretch of steps checked
    at its last instant needs no check at the instants before it (replay_quiet.py
    `_stretch`)."""
    p = replace(p, stop_replaced_at=p.opened_at + timedelta(seconds=REPLACED_S))
    listed = p.stop_price - Decimal(50 * p.side.sign) if stop_moved else p.stop_price
    mark = p.entry_price + Decimal(offset * p.side.sign)
    earlier, later = (timedelta(seconds=t) for t in sorted(seconds))
    if steady_when(p, mark, later, listed):
        assert steady_when(p, mark, earlier, listed)


def test_time_alone_ends_a_steady_position() -> None:
    """The premise above is met: a plain long is steady until its maximum hold passes, and
    a moved stop's replacement waits its interval."""
    p = replace(
        protected(position(Side.LONG, symbol=SYMBOL), "qt-s-0-r1-1"),
        take_profit_order_id="qt-t-0-r1-2",
    )
    mark, hold = p.entry_price + 10, timedelta(hours=SETTINGS.max_hold_h)
    assert steady_when(p, mark, hold, p.stop_price)
    assert not steady_when(p, mark, hold + timedelta(minutes=5), p.stop_price)
    interval = timedelta(seconds=SETTINGS.stop_replace_min_interval_s)
    assert steady_when(p, mark, interval / 2, p.stop_price - 50)
    assert not steady_when(p, mark, interval, p.stop_price - 50)
