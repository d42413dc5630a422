"""Whether a keeper tick would change nothing (a backtest repeats such steps). Pure.

The backtest repeats such steps (replay_quiet.py). After a tick that changed nothing, with
nothing of ours in flight or firing and the exchange holding and listing what the book holds,
the next tick's settling and reconciling find nothing again (Planner.quiet); what can still move
is what reads the mark and the clock: each position's stop maths (manage.py) and its
protection with its timers (a stop move held back by `stop_replace_min_interval_s`, a stop
stuck firing). This checks exactly those, with the planner's own functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import ExchangeSnapshot, Order
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


def steady(
    book: Book,
    listed: Mapping[str, Sequence[Order]],
    marks: Mapping[str, Decimal],
    now: datetime,
    context: Context,
    checks: ProtectionChecks,
) -> bool:
    """Whether every position of `book`, at its mark in `marks` and at `now`, keeps its stop
    maths and its protection (against the `listed` orders of its symbol) with nothing to do.
    The caller knows the book otherwise settled and consistent with the exchange."""
    if book.intents or book.unechoed or listed.keys() - book.positions.keys():
        return False  # in flight, or an order of ours to release where no position is held
    if any(order.triggered_at is not None for order in book.working.values()):
        return False
    for symbol, position in book.positions.items():
        mark = marks.get(symbol)
        if mark is None:
            return False
        managed, exits, events = manage(position, mark, now, context)
        if managed is not position or exits or events:
            return False
        rules = context.rules.get(symbol)
        check = checks.check(position, listed.get(symbol, ()), rules.tick_size if rules else None)
        check = as_of(check, now, context.monitor)
        if check.needs is not None or protection_actions(position, check, now, context.monitor):
            return False
    return True


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
    if lookups_needed(book, snapshot) or orders_to_read_fills(book, snapshot, {}):
        return False
    result = plan(book, Observation(snapshot, {}, {}, marks, known), now, context, checks)
    said = result.records or result.trades or result.events or result.actions or result.notes
    return not said and not result.unreflected and result.book == book
