"""Whether a keeper tick would change nothing (a backtest repeats such steps). Pure.

The backtest repeats such steps (replay_quiet.py). After a tick that changed nothing, with
nothing of ours in flight or firing and the exchange holding and listing what the book holds,
the next tick's settling and reconciling find nothing again (Planner.quiet); what can still move
is what reads the mark and the clock: each position's stop maths (manage.py) and its
protection with its timers (a stop move held back by `stop_replace_min_interval_s`, a stop
stuck firing, a take-profit to place again: keeper/target.py). This checks exactly those, with
the planner's own functions; a new highest or lowest price recorded on a position is all such
a tick may then do without running.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import ExchangeSnapshot, Order, Position
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.manage import manage
from quantum_trader.keeper.plan import (
    Context,
    Observation,
    lookups_needed,
    orders_to_read_fills,
    plan,
)
from quantum_trader.keeper.protect import as_of, protection_actions
from quantum_trader.keeper.target import target_again


def steady(
    book: Book,
    listed: Mapping[str, Sequence[Order]],
    marks: Mapping[str, Decimal],
    now: datetime,
    context: Context,
    checks: ProtectionChecks,
) -> dict[str, Position] | None:
    """The positions of `book` after a tick at `now` reading `marks` and the `listed` orders
    of each symbol, when their stop maths and protection have nothing to do: the book's own
    objects, or copies that only record a new highest or lowest price (nothing a tick plans
    from reads those). None when the tick would do anything else. The caller knows the book
    otherwise settled and consistent with the exchange."""
    if book.intents or book.unechoed or book.fees_unread or book.unpriced or book.limits:
        return None  # in flight, fees or a close's price to read, a fill's excess to sell
    if listed.keys() - book.positions.keys():
        return None  # an order of ours to release
    for order in book.working.values():  # a loop: no generator a check
        if order.triggered_at is not None:
            return None
    positions: dict[str, Position] = {}
    for symbol, position in book.positions.items():
        mark = marks.get(symbol)
        if mark is None:
            return None
        managed, exits, events = manage(position, mark, now, context)
        if exits or events or not (managed is position or only_extremes_moved(managed, position)):
            return None
        rules = context.rules.get(symbol)
        check = checks.check(managed, listed.get(symbol, ()), rules.tick_size if rules else None)
        check = as_of(check, now, context.monitor)
        if check.needs is not None or protection_actions(managed, check, now, context.monitor):
            return None
        refused = book.targets_refused.get(symbol)
        orders = listed.get(symbol, ())
        if target_again(managed, orders, (), mark, refused, now, context.monitor, rules):
            return None  # a take-profit to place again (keeper/target.py)
        positions[symbol] = managed
    return positions


def only_extremes_moved(a: Position, b: Position) -> bool:
    """Equal but for the highest and lowest prices recorded (monitor/stops.py `_tracking`)."""
    return _BUT_EXTREMES(a) == _BUT_EXTREMES(b)


# One C call a side (this runs ~50k times a year in the backtest's quiet-step checks).
_BUT_EXTREMES = operator.attrgetter(
    *(f.name for f in fields(Position) if f.name not in ("highest_price", "lowest_price"))
)


def plans_nothing(
    book: Book,
    snapshot: ExchangeSnapshot,
    marks: Mapping[str, Decimal],
    now: datetime,
    context: Context,
    checks: ProtectionChecks,
    known: frozenset[str],
) -> bool:
    """Whether a tick at `now` reading `snapshot` and `marks` (`known`: the fills the last tick
    read) would leave everything as it is: nothing to look up or read, and its plan with
    nothing to record, send or say and the same book."""
    if book.fees_unread or book.unpriced or lookups_needed(book, snapshot):
        return False
    if orders_to_read_fills(book, snapshot, {}):
        return False
    result = plan(book, Observation(snapshot, {}, {}, marks, known), now, context, checks)
    said = result.records or result.trades or result.events or result.actions or result.notes
    return not said and not result.unreflected and result.book == book
