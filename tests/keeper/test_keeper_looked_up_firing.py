"""A stop of ours firing that the snapshot leaves out of the open orders: GET openAlgoOrders
may not list firing orders (Binance does not say), on REST or in a mirror reseeded from such a
read. The tick looks it up by id; as the lookup found it (or, where the lookup failed, as the
book last recorded it) it is planned exactly as a listed firing stop is (`plan.as_looked_up`,
keeper/firing.py): the position's exit in flight, no stop and no exit beside it, until it
counts as stuck, then a stop goes beside it (STUCK). Was: counted missing, another stop placed
(Binance refuses it, -2021, with the mark past the trigger) or a close at market racing the
stop's own order. Pure planning; on the stand-in:
tests/execution/test_triggering_stop_on_standin.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from position_builders import NOW, SETTINGS, position, protected, stop_order

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    MarketRules,
    Order,
    OrderStatus,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.plan import Context, Observation, Plan, as_looked_up, plan
from quantum_trader.keeper.settings import KeeperSettings

BTC = "BTC/USDT:USDT"
STOP = "qt-s-BTC-a-1"
STUCK_AFTER = timedelta(seconds=SETTINGS.stop_stuck_after_s)
RULES = {BTC: MarketRules(BTC, Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5))}
CONTEXT = Context(RULES, KeeperSettings(), SETTINGS)
HELD = protected(position(), STOP)  # long 0.2 from 90000, stop 87300
SHOWN = {BTC: ExchangePosition(BTC, HELD.side, HELD.quantity, HELD.entry_price, 3)}
RESTING = stop_order(HELD, STOP)  # as the exchange answered its placement

SINCE = pytest.mark.parametrize(
    "since", [timedelta(seconds=1), STUCK_AFTER], ids=["just-fired", "stuck"]
)
MARK = pytest.mark.parametrize(
    "mark", [Decimal(87_000), Decimal(88_000)], ids=["mark-through-the-stop", "mark-above-it"]
)


def firing(since: timedelta) -> Order:
    return replace(RESTING, triggered_at=NOW - since)


def rest(*listed: Order, orders_of: frozenset[str] | None = None) -> ExchangeSnapshot:
    return ExchangeSnapshot(NOW, SnapshotSource.REST, SHOWN, listed, orders_of=orders_of)


def rest_tick(
    book: Book, listed: tuple[Order, ...], found: dict[str, Order | None], mark: Decimal
) -> Plan:
    """A REST tick with the position held as booked: the snapshot as the lookups found it."""
    snapshot = as_looked_up(rest(*listed), found, book)
    return plan(book, Observation(snapshot, found, marks={BTC: mark}), NOW, CONTEXT)


@SINCE
@MARK
def test_a_stop_looked_up_firing_is_planned_as_a_listed_one(
    since: timedelta, mark: Decimal
) -> None:
    book = Book({BTC: HELD}, working={STOP: RESTING})
    state = firing(since)

    looked_up = rest_tick(book, (), {STOP: state}, mark)
    listed = rest_tick(book, (state,), {STOP: state}, mark)  # the mirror's: listed, looked up

    assert (looked_up.actions, looked_up.notes) == (listed.actions, listed.notes)
    stuck = [n.event for n in looked_up.notes if n.event == "stop_stuck_triggering"]
    if since < STUCK_AFTER:  # its exit in flight: nothing beside it
        assert (looked_up.actions, stuck) == ((), [])
    else:  # no protection any more: a stop beside it, said once
        assert looked_up.actions != ()
        assert stuck == ["stop_stuck_triggering"]


@SINCE
@MARK
def test_a_stop_the_book_records_firing_is_planned_so_while_its_lookup_fails(
    since: timedelta, mark: Decimal
) -> None:
    """The lookup failed (nothing found): the trigger time the book kept from the last one."""
    state = firing(since)
    book = Book({BTC: HELD}, working={STOP: state})

    unlisted = rest_tick(book, (), {}, mark)

    assert unlisted.actions == rest_tick(book, (state,), {}, mark).actions
    if since < STUCK_AFTER:
        assert unlisted.actions == ()


def test_only_an_open_order_of_the_book_the_snapshot_leaves_out_is_added() -> None:
    """Firing as the lookup or the book knows it, resting as the lookup found it (the
    mirror missed its NEW event); not gone, ended, nor resting by the book's word alone."""
    state = firing(timedelta(seconds=1))
    book = Book({BTC: HELD}, working={STOP: RESTING})
    ended = replace(state, status=OrderStatus.FILLED, triggered_at=None, updated_at=NOW)

    assert as_looked_up(rest(), {STOP: state}, book).open_conditional_orders == (state,)
    assert as_looked_up(rest(state), {STOP: state}, book).open_conditional_orders == (state,)
    assert as_looked_up(rest(), {STOP: RESTING}, book).open_conditional_orders == (RESTING,)
    for found in ({STOP: None}, {STOP: ended}, {}):  # gone, ended, resting unread
        assert as_looked_up(rest(), found, book).open_conditional_orders == ()
    unread = rest(orders_of=frozenset())  # its symbol's orders not read this tick
    assert as_looked_up(unread, {STOP: state}, book).open_conditional_orders == ()
    reported = replace(rest(), orders={STOP: ended})  # the mirror's record says it ended
    assert as_looked_up(reported, {STOP: state}, book).open_conditional_orders == ()
    assert as_looked_up(rest(), {STOP: state}, Book()).open_conditional_orders == ()
