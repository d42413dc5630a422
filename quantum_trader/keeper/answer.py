"""Book one order of ours from the exchange's direct answer to it. Pure.

The tick reconciles against what the exchange holds; an answer is the exchange's own word on
one order, so it is booked at once: an entry that filled becomes a position protected in the
same step (stop, then take-profit), an exit that filled reduces or closes its position, a
working conditional order becomes the position's stop or target. With the streams in use the
order is remembered as not yet echoed, so a stream picture older than it is not trusted. An
order whose fills could not be read is booked from the answer alone and its fee read later
(keeper/fees.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ExchangePosition,
    Fill,
    Order,
    OrderStatus,
    Position,
)
from quantum_trader.keeper.book import Book, EntryLimit, Intent
from quantum_trader.keeper.booking import (
    Execution,
    TradeDraft,
    executed_at,
    execution_of,
    exit_reason,
    grown,
    opened_position,
    reduced,
)
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.exit_stops import refused_exit_trigger
from quantum_trader.keeper.external_saved import LastExit
from quantum_trader.keeper.fees import remembered
from quantum_trader.keeper.fill_check import check_fill, limit_exits, with_limit
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.part_settle import await_parts
from quantum_trader.keeper.plan import Context, Note, Plan
from quantum_trader.keeper.protect import (
    CancelOrder,
    OrderAction,
    PlaceStop,
    StopWhy,
    entry_target,
    exchange_trigger,
)
from quantum_trader.keeper.unpriced import ClosedBy
from quantum_trader.record import replace

Records = tuple[tuple[Order, tuple[Fill, ...]], ...]


def answered(
    book: Book,
    intent: Intent,
    state: Order,
    fills: Sequence[Fill] | None,
    now: datetime,
    context: Context,
    *,
    echo: bool,
) -> Plan:
    """The books after `state`, the exchange's answer to `intent`, and what follows from it;
    `fills` None when they could not be read."""
    records: Records = ((state, tuple(fills or ())),)
    if state.kind.is_conditional and state.status is OrderStatus.OPEN:  # not final: no echo due
        return Plan(_working(book, intent, state, now), records)
    book = book.without_intent(intent.client_order_id)
    if echo and state.status.is_final:
        echo_due = {intent.client_order_id: (intent.symbol, now)}
        book = replace(book, unechoed={**book.unechoed, **echo_due})
    execution = execution_of(state, fills)
    if execution.quantity <= 0 or execution.price is None:
        return Plan(book, records)
    if fills is None and (intent.purpose is Purpose.ENTRY or intent.symbol in book.positions):
        book = book.with_fees_unread(remembered(state, execution.fee_usdt, now))
    if intent.purpose is Purpose.ENTRY:
        return _entered(book, intent, execution, records, now, context)
    position = book.positions.get(intent.symbol)
    if position is None:
        return Plan(book, records)
    reason = exit_reason(position, state, intent, context.monitor)  # a stop by where it stood
    quantity = min(execution.quantity, position.quantity)
    # Closed when the exit executed, not at `now`: the REST tick after an entry in doubt runs
    # at the entry's own time, so a close it sent was booked at the opening (an outside probe,
    # 2026-12-06). Never before the opening (the exchange's clock against ours).
    closed_at = max(executed_at(state, fills, now), position.opened_at)
    booked = reduced(position, quantity, execution.price, execution.fee_usdt, reason, closed_at)
    took = frozenset(f.trade_id for f in fills or ())  # never taken again: keeper/external.py
    reducing = {intent.symbol: took} if took else {}
    if isinstance(booked, TradeDraft):
        target = position.take_profit_order_id
        done = target is not None and target not in book.working  # one that executed: settle.py
        leftovers = tuple(
            CancelOrder(position.symbol, order_id)
            for order_id in (position.stop_order_id, None if done else target)
            if order_id is not None and not _firing(book, order_id)
        )
        ours = ClosedBy(intent.client_order_id, execution.price, reason)
        after, trades, notes = _closed(book, position, booked, ours, execution.fee_usdt, now)
        return Plan(
            after,
            records,
            trades=trades,
            actions=leftovers,
            notes=notes,
            reducing_trades=reducing,  # nor for a position adopted after it (external_saved)
        )
    if intent.purpose is Purpose.TARGET:  # none after a take-profit that executed (target.py)
        booked = replace(booked, take_profit_order_id=intent.client_order_id)
    last = LastExit.of(intent.client_order_id, reason, execution.price, fills or ())
    last_exits = {intent.symbol: last} if last is not None else {}
    book = book.with_position(booked)
    return Plan(book, records, reducing_trades=reducing, last_exits=last_exits)


def _closed(
    book: Book,
    position: Position,
    booked: TradeDraft,
    ours: ClosedBy,
    fee: Decimal,
    now: datetime,
) -> tuple[Book, tuple[TradeDraft, ...], tuple[Note, ...]]:
    """The books after our exit `ours` (its `fee`) closed `position` (`booked`), the trade to
    book and the lines: the trade now, or, while parts of the position booked at the mark
    await their trades, the close waiting for them (part_settle.py `await_parts`)."""
    if position.symbol in book.parts_unread:
        draft = Draft(book)
        waits = await_parts(draft, position, fee, ours, now)
        if waits is not None:
            return draft.frozen(), (), (waits,)
    return book.without_position(position.symbol), (booked,), ()


def _firing(book: Book, order_id: str) -> bool:
    """Our order met its trigger when last read: Binance refuses to cancel it (-2011), and it
    blocks entries on its symbol until it ends (keeper/firing.py)."""
    order = book.working.get(order_id)
    return order is not None and order.triggered_at is not None


def _working(book: Book, intent: Intent, state: Order, now: datetime) -> Book:
    """The book with `intent` settled into `state`, a working stop or take-profit, and its
    position naming it: one copy of the book (each copy of its fourteen fields costs ≈ 11,000
    instructions, and every stop and take-profit placed comes here)."""
    cid = state.client_order_id
    intents = {c: i for c, i in book.intents.items() if c != intent.client_order_id}
    working = {**book.working, cid: state}
    position = book.positions.get(intent.symbol)
    if position is None:
        return replace(book, intents=intents, working=working)
    if intent.purpose is Purpose.STOP:
        changed = replace(position, stop_order_id=cid, stop_replaced_at=now)
    else:
        changed = replace(position, take_profit_order_id=cid)
    positions = {**book.positions, changed.symbol: changed}
    return replace(book, intents=intents, working=working, positions=positions)


def _entered(
    book: Book,
    intent: Intent,
    execution: Execution,
    records: Records,
    now: datetime,
    context: Context,
) -> Plan:
    """An entry filled (wholly, partly, or EXPIRED with some executed): book and protect it."""
    plan = intent.plan
    assert plan is not None, "entries always carry their plan"
    assert execution.price is not None
    existing = book.positions.get(intent.symbol)
    quantity = execution.quantity + (existing.quantity if existing else Decimal(0))
    price = execution.price
    if existing is not None and existing.side is plan.side:
        price = (
            existing.entry_price * existing.quantity + execution.price * execution.quantity
        ) / quantity
    held = ExchangePosition(intent.symbol, plan.side, quantity, price, plan.leverage)
    limit: EntryLimit | None = None
    checked: list[Note] = []
    if existing is not None and existing.side is plan.side:
        position = grown(existing, held, execution.fee_usdt)
    else:
        position = opened_position(
            held, plan, intent.client_order_id, now, execution.fee_usdt, context.keeper
        )
        limit, checked = check_fill(position, plan, context)  # far from its plan: fill_check.py
        book = with_limit(book, intent.symbol, limit)
    actions = _protection(position, context, limit)
    note = Note(
        "position_opened",
        intent.symbol,
        f"{position.side} {execution.quantity} @ {execution.price} "
        f"({execution.order.status}), stop {position.stop_price}",
    )
    notes = (note, *checked)
    return Plan(book.with_position(position), records, actions=tuple(actions), notes=notes)


def _protection(
    position: Position, context: Context, limit: EntryLimit | None
) -> list[OrderAction]:
    """Stop, then take-profit; for a fill far from its plan (`limit`: keeper/fill_check.py)
    the stop clear of the fill, no take-profit when it is exited, then its exit."""
    rules = context.rules.get(position.symbol)
    tick = rules.tick_size if rules else None
    side = position.side.exit_order_side
    trigger = exchange_trigger(position, tick)
    if limit is not None:  # Binance refuses a stop the mark, near the fill, has reached
        gap = context.keeper.refused_exit_stop_gap_pct
        trigger = refused_exit_trigger(position.side, trigger, position.entry_price, tick, gap)
    exits = limit_exits(position, limit) if limit is not None else []
    stop = PlaceStop(position.symbol, side, position.quantity, trigger, StopWhy.ENTRY)
    return [stop, *entry_target(position, exits), *exits]
