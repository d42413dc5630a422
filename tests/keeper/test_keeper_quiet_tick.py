"""The planner's shortcuts change no plan: the quiet tick (Planner.quiet) and the protection
checks the keeper remembers across ticks (ProtectionChecks).

For books and exchange pictures of every shape hypothesis finds (positions held as booked or
not, working orders listed or gone or left over, their ends looked up or streamed or unknown,
intents, unechoed orders, fills, missing marks),
planning with the shortcut and without it gives the same plan; and the ticks of a position
held quietly over a moving price, which take the shortcut, match too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from position_builders import NOW, SETTINGS, position, protected, stop_order

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    Fill,
    MarketRules,
    Order,
    OrderKind,
    OrderStatus,
    Position,
    Side,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book, Intent
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.plan import Context, Observation, Plan, plan
from quantum_trader.keeper.planner import Planner
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.keeper.steady import steady

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
RULES = {
    s: MarketRules(s, Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5))
    for s in SYMBOLS
}
CONTEXT = Context(RULES, KeeperSettings(), SETTINGS)
# What the exchange holds on a symbol; mostly as booked, so quiet ticks and near misses abound.
SHAPES = ("as booked",) * 5 + ("less", "more", "flipped", "none")


def both(book: Book, observation: Observation, now: datetime = NOW) -> tuple[Plan, Plan, bool]:
    """The plan with the shortcut, without it, and whether the tick was quiet."""
    planner = Planner(book, observation, now, CONTEXT)
    quiet = planner.quiet()
    fast = planner.run()
    full = Planner(book, observation, now, CONTEXT).run(shortcut=False)
    return fast, full, quiet


def held_as(
    p: Position, quantity: Decimal | None = None, side: Side | None = None
) -> ExchangePosition:
    return ExchangePosition(
        p.symbol, side or p.side, p.quantity if quantity is None else quantity, p.entry_price, 3
    )


@st.composite
def ticks(draw: st.DrawFn) -> tuple[Book, Observation]:
    positions: dict[str, Position] = {}
    held: dict[str, ExchangePosition] = {}
    listed: list[Order] = []
    working: dict[str, Order] = {}
    marks: dict[str, Decimal] = {}
    for n, symbol in enumerate(SYMBOLS):
        side = draw(st.sampled_from(Side))
        stop_id, target_id = f"qt-s-{n}-r1-1", f"qt-t-{n}-r1-2"
        p = protected(position(side, symbol=symbol, quantity=Decimal("0.2")), stop_id)
        p = replace(p, take_profit_order_id=target_id)
        stop = stop_order(p, stop_id, trigger=p.stop_price + draw(st.sampled_from((0, 1, 37))))
        target = stop_order(
            p, target_id, kind=OrderKind.TAKE_PROFIT_MARKET, trigger=p.take_profit_price
        )
        if draw(st.booleans()):  # we hold a position on this symbol
            positions[symbol] = p
            working.update({stop_id: stop, target_id: target})
        elif draw(st.booleans()):  # a stop of ours left over from a closed position
            working[stop_id] = stop
        shape = draw(st.sampled_from(SHAPES))
        if shape != "none" and (symbol in positions or draw(st.booleans())):
            quantity = {"less": Decimal("0.1"), "more": Decimal("0.3")}.get(shape)
            flipped = Side.SHORT if side is Side.LONG else Side.LONG
            held[symbol] = held_as(p, quantity, flipped if shape == "flipped" else None)
        listed += [o for o in (stop, target) if draw(st.booleans()) or shape == "as booked"]
        if draw(st.booleans()):
            move = Decimal(draw(st.integers(-6000, 9000)))
            marks[symbol] = p.entry_price + move
    return _book_and_observation(draw, positions, held, listed, working, marks)


def _book_and_observation(
    draw: st.DrawFn,
    positions: dict[str, Position],
    held: dict[str, ExchangePosition],
    listed: list[Order],
    working: dict[str, Order],
    marks: dict[str, Decimal],
) -> tuple[Book, Observation]:
    intents: dict[str, Intent] = {}
    unechoed: dict[str, tuple[str, datetime]] = {}
    found: dict[str, Order | None] = {}
    streamed: dict[str, Order] = {}
    fills: dict[str, list[Fill]] = {}
    reported_ended = draw(st.booleans())
    if working and reported_ended:  # a working order the exchange reports ended
        order = working[draw(st.sampled_from(sorted(working)))]
        status = draw(st.sampled_from((OrderStatus.FILLED, OrderStatus.CANCELED)))
        done = replace(order, status=status, updated_at=NOW, filled_quantity=order.quantity)
        reported = draw(st.sampled_from(("looked up", "streamed", "unknown to the exchange")))
        if reported == "streamed":
            streamed[order.client_order_id] = done
        else:
            found[order.client_order_id] = done if reported == "looked up" else None
        if status is OrderStatus.FILLED and draw(st.booleans()):
            fill = Fill("t1", order.client_order_id, order.symbol, order.side, order.quantity,
                        order.trigger_price or Decimal(1), Decimal("0.5"), NOW)  # fmt: skip
            fills[order.client_order_id] = [fill]
    if draw(st.booleans()):  # an exit of ours in flight
        symbol = draw(st.sampled_from(SYMBOLS))
        exit_order = Order("qt-x-0-r1-9", symbol, positions[symbol].side.exit_order_side
                           if symbol in positions else Side.LONG.exit_order_side,
                           OrderKind.MARKET, Decimal("0.2"), OrderStatus.UNKNOWN,
                           NOW - timedelta(seconds=2))  # fmt: skip
        intents[exit_order.client_order_id] = Intent(exit_order, NOW - timedelta(seconds=2))
        if draw(st.booleans()):  # and the exchange says how it ended
            status = draw(st.sampled_from((OrderStatus.FILLED, OrderStatus.EXPIRED)))
            done = replace(exit_order, status=status, updated_at=NOW)
            if status is OrderStatus.FILLED:
                done = replace(done, filled_quantity=done.quantity, average_price=Decimal(90_000))
                fill = Fill("t2", done.client_order_id, symbol, done.side, done.quantity,
                            Decimal(90_000), Decimal("0.5"), NOW)  # fmt: skip
                fills[done.client_order_id] = [fill]
            found[done.client_order_id] = done
    if draw(st.booleans()):
        unechoed["qt-s-0-r1-1"] = (SYMBOLS[0], NOW - timedelta(seconds=1))
    source = draw(st.sampled_from(SnapshotSource))
    snapshot = ExchangeSnapshot(NOW, source, held, tuple(listed), streamed)
    book = Book(positions, intents, unechoed, working)
    return book, Observation(snapshot, found, fills, marks)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticks())
def test_the_shortcut_plans_every_tick_as_the_full_path(tick: tuple[Book, Observation]) -> None:
    fast, full, _ = both(*tick)
    assert fast == full


def test_a_position_held_quietly_through_a_moving_price_plans_the_same_either_way() -> None:
    """Ticks that take the shortcut (the exchange stop is never refreshed, as if every placement
    were lost): the stop breaks even and trails, its replacement is throttled then planned, a
    partial take-profit and an exit are planned; all as the full path plans them."""
    held = protected(position(Side.LONG, symbol=SYMBOLS[0]), "qt-s-0-r1-1")
    stop = stop_order(held, "qt-s-0-r1-1", trigger=held.stop_price)
    book = Book({held.symbol: held}, working={stop.client_order_id: stop})
    quiet_ticks, planned = 0, []
    marks = (90_000, 91_000, 92_500, 92_600, 95_000, 95_100, 95_150, 93_000)
    for step, mark in enumerate(marks):
        now = NOW + timedelta(seconds=5 * step)  # inside the replacement interval: throttled
        if step >= 6:
            now += timedelta(hours=1)
        snapshot = ExchangeSnapshot(
            now, SnapshotSource.REST, {held.symbol: held_as(book.positions[held.symbol])}, (stop,)
        )
        observation = Observation(snapshot, marks={held.symbol: Decimal(mark)})
        fast, full, quiet = both(book, observation, now)
        assert fast == full
        quiet_ticks += quiet
        planned += [type(a).__name__ for a in fast.actions]
        planned += [e.reason.value for e in fast.events]
        book = fast.book
    assert quiet_ticks == len(marks)
    assert {"PlaceStop", "SendExit", "BREAK_EVEN", "TRAILING", "PARTIAL_TP"} <= set(planned)


def quiet_tick() -> tuple[Book, Observation]:
    """A long on BTC held as booked with its stop and target listed, a stop of ours left over
    on ETH and listed, nothing in flight."""
    held = replace(
        protected(position(Side.LONG, symbol=SYMBOLS[0]), "qt-s-0-r1-1"),
        take_profit_order_id="qt-t-0-r1-2",
    )
    stop = stop_order(held, "qt-s-0-r1-1")
    target = stop_order(held, "qt-t-0-r1-2", kind=OrderKind.TAKE_PROFIT_MARKET,
                        trigger=held.take_profit_price)  # fmt: skip
    leftover = stop_order(position(symbol=SYMBOLS[1], entry=Decimal(3000)), "qt-s-1-r1-3")
    working = {o.client_order_id: o for o in (stop, target, leftover)}
    snapshot = ExchangeSnapshot(
        NOW, SnapshotSource.STREAM, {held.symbol: held_as(held)}, (stop, target, leftover)
    )
    book = Book({held.symbol: held}, working=working)
    return book, Observation(snapshot, marks={held.symbol: Decimal(91_000)})


def _unlisted_and_cancelled(book: Book, observation: Observation) -> tuple[Book, Observation]:
    book, observation = _unlisted(book, observation, "qt-s-1-r1-3")
    gone = replace(book.working["qt-s-1-r1-3"], status=OrderStatus.CANCELED, updated_at=NOW)
    snapshot = replace(observation.snapshot, orders={gone.client_order_id: gone})
    return book, replace(observation, snapshot=snapshot)


def _intent_ended(book: Book, observation: Observation) -> tuple[Book, Observation]:
    order = Order("qt-x-0-r1-9", SYMBOLS[0], Side.LONG.exit_order_side, OrderKind.MARKET,
                  Decimal("0.2"), OrderStatus.UNKNOWN, NOW)  # fmt: skip
    ended = replace(order, status=OrderStatus.EXPIRED, updated_at=NOW)
    snapshot = replace(observation.snapshot, orders={order.client_order_id: ended})
    return replace(book, intents={order.client_order_id: Intent(order, NOW)}), replace(
        observation, snapshot=snapshot
    )


def _looked_up_unknown(book: Book, observation: Observation) -> tuple[Book, Observation]:
    book, observation = _unlisted(book, observation, "qt-s-1-r1-3")
    return book, replace(observation, found={"qt-s-1-r1-3": None})


def _unlisted(book: Book, observation: Observation, order_id: str) -> tuple[Book, Observation]:
    snapshot = observation.snapshot
    listed = tuple(o for o in snapshot.open_conditional_orders if o.client_order_id != order_id)
    snapshot = replace(snapshot, open_conditional_orders=listed)
    return book, replace(observation, snapshot=snapshot)


def _leftover_filled(book: Book, observation: Observation) -> tuple[Book, Observation]:
    order = book.working["qt-s-1-r1-3"]
    done = replace(order, status=OrderStatus.FILLED, filled_quantity=order.quantity,
                   average_price=order.trigger_price, updated_at=NOW)  # fmt: skip
    fill = Fill("t3", order.client_order_id, order.symbol, order.side, order.quantity,
                order.trigger_price or Decimal(1), Decimal("0.2"), NOW)  # fmt: skip
    snapshot = replace(observation.snapshot, orders={order.client_order_id: done})
    return book, replace(observation, snapshot=snapshot, fills={order.client_order_id: [fill]})


def _unechoed(book: Book, observation: Observation) -> tuple[Book, Observation]:
    return replace(book, unechoed={"qt-s-0-r1-1": (SYMBOLS[0], NOW)}), observation


def _held_less(book: Book, observation: Observation) -> tuple[Book, Observation]:
    held = held_as(book.positions[SYMBOLS[0]], Decimal("0.1"))
    snapshot = replace(observation.snapshot, positions={SYMBOLS[0]: held})
    return book, replace(observation, snapshot=snapshot)


def _held_elsewhere(book: Book, observation: Observation) -> tuple[Book, Observation]:
    other = ExchangePosition(SYMBOLS[2], Side.SHORT, Decimal(1), Decimal(150), 2)
    positions = {**observation.snapshot.positions, SYMBOLS[2]: other}
    snapshot = replace(observation.snapshot, positions=positions)
    return book, replace(observation, snapshot=snapshot)


@pytest.mark.parametrize(
    "disturb",
    [
        _unlisted_and_cancelled,
        _intent_ended,
        _looked_up_unknown,
        _leftover_filled,
        _unechoed,
        _held_less,
        _held_elsewhere,
    ],
)
def test_each_thing_to_settle_makes_a_tick_not_quiet_and_is_settled(
    disturb: Callable[[Book, Observation], tuple[Book, Observation]],
) -> None:
    """Each of these ticks differs from a quiet one only by something the settling steps act
    on: it is not quiet, and the full path plans what it always did."""
    book, observation = quiet_tick()
    fast, full, quiet = both(book, observation)
    assert quiet
    assert fast == full
    fast, full, quiet = both(*disturb(book, observation))
    assert not quiet
    assert fast == full
    assert fast != both(book, observation)[0]


def test_remembered_protection_checks_plan_as_fresh_ones() -> None:
    """The keeper remembers protection checks across ticks (ProtectionChecks): through stops
    that move and stay and a stop replaced on the exchange (a new listed object), every plan
    equals the one planned afresh, down to how each Decimal is spelled."""
    held = protected(position(Side.LONG, symbol=SYMBOLS[0]), "qt-s-0-r1-1")
    stop = stop_order(held, "qt-s-0-r1-1", trigger=held.stop_price)
    book = Book({held.symbol: held}, working={stop.client_order_id: stop})
    checks = ProtectionChecks()
    marks = (90_000, 90_010, 91_000, 91_000, 92_500, 92_500, 92_400, 93_000, 93_000)
    for step, mark in enumerate(marks):
        now = NOW + timedelta(minutes=5 * step)
        if step == 5:  # the exchange now lists the replacement at the managed stop
            current = book.positions[held.symbol]
            stop = stop_order(current, "qt-s-0-r1-1", trigger=current.stop_price)
        snapshot = ExchangeSnapshot(
            now, SnapshotSource.REST, {held.symbol: held_as(book.positions[held.symbol])}, (stop,)
        )
        observation = Observation(snapshot, marks={held.symbol: Decimal(mark)})
        remembered = plan(book, observation, now, CONTEXT, checks)
        fresh = plan(book, observation, now, CONTEXT)
        assert repr(remembered) == repr(fresh)  # equal, and every Decimal spelled the same
        book = remembered.book
    assert checks.hits > 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ticks(), st.sampled_from((0, 30, 90, 3600)))
def test_a_steady_book_plans_nothing(tick: tuple[Book, Observation], later_s: int) -> None:
    """keeper/steady.py, which lets a backtest repeat a step: where the tick would settle and
    reconcile nothing (Planner.quiet) and `steady` finds nothing to do (nothing to release,
    the stop maths and the protection at these marks and this time), the tick's whole plan is
    empty and keeps the book."""
    book, observation = tick
    now = NOW + timedelta(seconds=later_s)  # the protection's timers may have run out
    listed = _by_symbol(observation.snapshot.open_conditional_orders)
    if not Planner(book, observation, now, CONTEXT).quiet():
        return
    positions = steady(book, listed, observation.marks, now, CONTEXT, ProtectionChecks())
    if positions is not None:
        _assert_plans_nothing(book, observation, now, positions)


def _by_symbol(orders: tuple[Order, ...]) -> dict[str, list[Order]]:
    listed: dict[str, list[Order]] = {}
    for order in orders:
        listed.setdefault(order.symbol, []).append(order)
    return listed


def _assert_plans_nothing(
    book: Book,
    observation: Observation,
    now: datetime,
    positions: Mapping[str, Position] | None = None,
) -> None:
    """The tick's whole plan does nothing but (with `positions`) book those positions."""
    result = plan(book, observation, now, CONTEXT)
    assert (result.actions, result.events, result.records, result.trades) == ((), (), (), ())
    assert (result.notes, result.unreflected) == ((), ())
    assert result.book == (book if positions is None else replace(book, positions=positions))


def test_steady_sees_the_stop_maths_and_a_held_back_stop_move() -> None:
    """A long held as booked with its stop listed: steady inside its extremes (its own
    objects); at a new high only that high recorded, as the tick's plan would; not where the
    stop maths act. Its stop moved in the book but the exchange's held back by
    `stop_replace_min_interval_s`: steady until the interval runs out, then the plan
    replaces it."""
    held = protected(position(Side.LONG, symbol=SYMBOLS[0]), "qt-s-0-r1-1")
    held = replace(held, highest_price=Decimal(90_400), lowest_price=Decimal(89_000))
    held = replace(held, take_profit_order_id="qt-t-0-r1-2")
    stop = stop_order(held, "qt-s-0-r1-1")
    target = stop_order(
        held, "qt-t-0-r1-2", kind=OrderKind.TAKE_PROFIT_MARKET, trigger=held.take_profit_price
    )
    ours = {stop.client_order_id: stop, target.client_order_id: target}
    book = Book({held.symbol: held}, working=ours)
    snapshot = ExchangeSnapshot(
        NOW, SnapshotSource.REST, {held.symbol: held_as(held)}, (stop, target)
    )
    listed = _by_symbol(snapshot.open_conditional_orders)
    for mark in (Decimal(90_300), Decimal(90_500)):
        observation = Observation(snapshot, marks={held.symbol: mark})
        positions = steady(book, listed, observation.marks, NOW, CONTEXT, ProtectionChecks())
        assert positions is not None
        _assert_plans_nothing(book, observation, NOW, positions)
        kept = positions[held.symbol]
        assert (kept is held) is (mark < held.highest_price)
        assert kept.highest_price == max(mark, held.highest_price)  # a new high, nothing else
    observation = Observation(snapshot, marks={held.symbol: Decimal(91_500)})
    assert steady(book, listed, observation.marks, NOW, CONTEXT, ProtectionChecks()) is None
    assert plan(book, observation, NOW, CONTEXT).events  # the stop maths act there
    moved = replace(held, stop_price=held.stop_price + 100, stop_replaced_at=NOW)
    book = Book({held.symbol: moved}, working=ours)
    observation = Observation(snapshot, marks={held.symbol: Decimal(90_300)})
    interval = timedelta(seconds=SETTINGS.stop_replace_min_interval_s)
    soon, later = NOW + interval / 2, NOW + interval
    assert steady(book, listed, observation.marks, soon, CONTEXT, ProtectionChecks()) is not None
    _assert_plans_nothing(book, observation, soon)
    assert steady(book, listed, observation.marks, later, CONTEXT, ProtectionChecks()) is None
    assert any(
        type(a).__name__ == "PlaceStop" for a in plan(book, observation, later, CONTEXT).actions
    )
