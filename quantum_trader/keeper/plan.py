"""The keeper's planner: the books and what the exchange holds → bookings and order actions.

Pure and synchronous: `plan(book, observation, now, context)` returns the new book and what
to do; the keeper (keeper.py) carries it out. It runs at start, on every monitor tick and at
once after an order whose outcome is unknown, so start-up reconciliation, crash recovery and
the 5 s tick are one code path. Per symbol:

1. the ledger's quantity follows the exchange's. A reduction is booked from our exits that
   filled (market exits, triggered stops and take-profits), the rest as a close outside this
   program at the mark — unless an order of ours on that symbol is still unsettled, which may
   explain it later. An increase, or a position we did not hold, is adopted: protected by our
   stop already on the exchange, else by its entry's plan, else by the default;
2. an order of ours settles once the exchange reports how it ended and, if it filled, once the
   exchange position shows it (or `unknown_order_final_s` has passed); one the exchange does
   not know that long after it was sent was never accepted. Unsettled orders block new entries
   on their symbol;
3. each reconciled position is managed at its mark price (monitor/stops.py): exits, partial
   take-profit, break-even, trailing, time exit; then protected: one reduce-only stop of ours
   at the managed stop. Our conditional orders where no position needs them are cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderKind,
    OrderStatus,
    Position,
    PositionEvent,
    SnapshotSource,
)
from quantum_trader.keeper.book import Book, Intent, is_unsettled
from quantum_trader.keeper.booking import (
    Execution,
    TradeDraft,
    execution_of,
    grown,
    opened_position,
    reduced,
)
from quantum_trader.keeper.ids import Purpose, is_ours
from quantum_trader.keeper.manage import manage
from quantum_trader.keeper.protect import OrderAction, plan_protection, plan_release
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.monitor import stops
from quantum_trader.monitor.settings import MonitorSettings

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the keeper read this tick.

    `found`: orders looked up by client order id (None: the exchange does not know it);
    `fills`: the fills of settled orders, by client order id (absent: could not be read);
    `marks`: mark prices (a missing one is absent).
    """

    snapshot: ExchangeSnapshot
    found: Mapping[str, Order | None] = field(default_factory=dict)
    fills: Mapping[str, Sequence[Fill]] = field(default_factory=dict)
    marks: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """Settings, market rules and the market conditions the stop maths reads."""

    rules: Mapping[str, MarketRules]
    keeper: KeeperSettings
    monitor: MonitorSettings
    defensive_exit: bool = False
    turned_choppy: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Note:
    """One log line about what reconciliation found; `error` for what needs attention."""

    event: str
    symbol: str
    detail: str
    error: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    book: Book
    records: tuple[tuple[Order, tuple[Fill, ...]], ...] = ()
    trades: tuple[TradeDraft, ...] = ()
    events: tuple[PositionEvent, ...] = ()
    actions: tuple[OrderAction, ...] = ()
    notes: tuple[Note, ...] = ()


@dataclass(slots=True)
class _Outcome:
    """A settled order of ours with what it did; `intent` is None for a protective order."""

    execution: Execution
    purpose: Purpose
    intent: Intent | None
    fills: tuple[Fill, ...]


def lookups_needed(book: Book, snapshot: ExchangeSnapshot) -> list[tuple[str, str]]:
    """(symbol, client order id) of the orders to look up before planning: every unsettled
    intent the snapshot says nothing final about, and the protective orders of positions the
    exchange shows reduced or gone whose outcome the snapshot does not report."""
    wanted = [
        (i.symbol, i.client_order_id)
        for i in book.intents.values()
        if _ended(snapshot.orders.get(i.client_order_id)) is None
    ]
    open_ids = {o.client_order_id for o in snapshot.open_conditional_orders}
    for symbol, position in book.positions.items():
        held = snapshot.positions.get(symbol)
        if held is not None and _same(position, held):
            continue
        for order_id in (position.stop_order_id, position.take_profit_order_id):
            if order_id and order_id not in open_ids and order_id not in snapshot.orders:
                wanted.append((symbol, order_id))
    return wanted


def orders_to_read_fills(
    book: Book, snapshot: ExchangeSnapshot, found: Mapping[str, Order | None]
) -> list[tuple[str, str]]:
    """(symbol, client order id) of our orders that ended with something filled."""
    ids = {i.client_order_id: i.symbol for i in book.intents.values()}
    for position in book.positions.values():
        for order_id in (position.stop_order_id, position.take_profit_order_id):
            if order_id:
                ids[order_id] = position.symbol
    wanted = []
    for order_id, symbol in ids.items():
        state = _state_of(order_id, snapshot, found)
        if state is not None and state.status.is_final and _may_have_filled(state):
            wanted.append((symbol, order_id))
    return wanted


def plan(book: Book, observation: Observation, now: datetime, context: Context) -> Plan:
    """Plan one tick (see the module docstring)."""
    planner = _Planner(book, observation, now, context)
    planner.clear_echoes()
    planner.settle_unfilled()
    for symbol in sorted(set(planner.book.positions) | set(observation.snapshot.positions)):
        planner.reconcile(symbol)
    planner.settle_leftovers()
    planner.manage_and_protect()
    planner.release_orphans()
    return planner.result()


def _ended(order: Order | None) -> Order | None:
    """`order` if it says how the order ended, or that a conditional order is working."""
    if order is None or order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
        return None
    if order.status is OrderStatus.OPEN and not order.kind.is_conditional:
        return None
    return order


def _state_of(
    order_id: str, snapshot: ExchangeSnapshot, found: Mapping[str, Order | None]
) -> Order | None:
    return _ended(snapshot.orders.get(order_id)) or _ended(found.get(order_id))


def _may_have_filled(order: Order) -> bool:
    return order.filled_quantity > 0 or (
        order.kind.is_conditional and order.status is OrderStatus.FILLED
    )


def _same(position: Position, held: ExchangePosition) -> bool:
    return held.side is position.side and held.quantity == position.quantity


class _Books:
    """The planner's working copy of the books: mutable, indexed by symbol, O(1) updates.

    Its methods mirror `Book`'s and return it, so planning code reads the same either way."""

    def __init__(self, book: Book) -> None:
        self.positions: dict[str, Position] = dict(book.positions)
        self.intents: dict[str, Intent] = dict(book.intents)
        self.unechoed: dict[str, str] = dict(book.unechoed)
        self._by_symbol: dict[str, dict[str, Intent]] = {}
        for intent in self.intents.values():
            self._by_symbol.setdefault(intent.symbol, {})[intent.client_order_id] = intent

    def intents_for(self, symbol: str) -> list[Intent]:
        return list(self._by_symbol.get(symbol, {}).values())

    def with_position(self, position: Position) -> _Books:
        self.positions[position.symbol] = position
        return self

    def without_position(self, symbol: str) -> _Books:
        self.positions.pop(symbol, None)
        return self

    def without_intent(self, client_order_id: str) -> _Books:
        intent = self.intents.pop(client_order_id, None)
        if intent is not None:
            self._by_symbol.get(intent.symbol, {}).pop(client_order_id, None)
        return self

    def frozen(self) -> Book:
        return Book(dict(self.positions), dict(self.intents), dict(self.unechoed))


class _Planner:
    def __init__(self, book: Book, observation: Observation, now: datetime, context: Context):
        self.book = _Books(book)
        self.observation = observation
        self.snapshot = observation.snapshot
        self.now = now
        self.context = context
        self.records: list[tuple[Order, tuple[Fill, ...]]] = []
        self.trades: list[TradeDraft] = []
        self.events: list[PositionEvent] = []
        self.actions: list[OrderAction] = []
        self.notes: list[Note] = []
        self.consistent: set[str] = set()
        self.grace = timedelta(seconds=context.keeper.unknown_order_final_s)
        if self.snapshot.source is SnapshotSource.REST:
            self.book.unechoed.clear()
        self.conditional_by_symbol: dict[str, list[Order]] = {}
        for order in self.snapshot.open_conditional_orders:
            self.conditional_by_symbol.setdefault(order.symbol, []).append(order)

    def state(self, order_id: str) -> Order | None:
        return _state_of(order_id, self.snapshot, self.observation.found)

    # -- orders that need no position to settle -------------------------------------------------

    def clear_echoes(self) -> None:
        echoed = [c for c in self.book.unechoed if _ended(self.snapshot.orders.get(c))]
        for client_order_id in echoed:
            del self.book.unechoed[client_order_id]

    def settle_unfilled(self) -> None:
        """Intents that ended with nothing filled, working conditional orders, and orders the
        exchange has not known for `unknown_order_final_s`."""
        for intent in list(self.book.intents.values()):
            cid = intent.client_order_id
            state = self.state(cid)
            if state is None:
                if cid in self.observation.found and self.observation.found[cid] is None:
                    self._maybe_never_accepted(intent)
                continue
            if state.kind.is_conditional and state.status is OrderStatus.OPEN:
                self._settle(intent, state, ())
                self._working(intent, state)
            elif not _may_have_filled(state):
                self._settle(intent, state, ())

    def _settle(self, intent: Intent, state: Order, fills: tuple[Fill, ...]) -> None:
        self.book = self.book.without_intent(intent.client_order_id)
        self.records.append((state, fills))

    def _working(self, intent: Intent, state: Order) -> None:
        """A placement whose answer was lost turned out to be working on the exchange."""
        position = self.book.positions.get(intent.symbol)
        if position is None or state.side is not position.side.exit_order_side:
            return
        if intent.purpose is Purpose.STOP and state.quantity == position.quantity:
            position = replace(position, stop_order_id=state.client_order_id)
        elif intent.purpose is Purpose.TARGET and position.take_profit_order_id is None:
            position = replace(position, take_profit_order_id=state.client_order_id)
        self.book = self.book.with_position(position)

    def _maybe_never_accepted(self, intent: Intent) -> None:
        if self.now - intent.sent_at < self.grace:
            return
        status = (
            OrderStatus.REJECTED
            if intent.order.status is OrderStatus.PENDING
            else OrderStatus.EXPIRED
        )
        detail = f"not on the exchange {self.grace.total_seconds():.0f} s after it was sent"
        self._settle(intent, replace(intent.order, status=status, detail=detail), ())
        self.notes.append(Note("order_never_accepted", intent.symbol, detail))

    # -- positions -------------------------------------------------------------------------------

    def reconcile(self, symbol: str) -> None:
        stream = self.snapshot.source is SnapshotSource.STREAM
        if stream and symbol in self.book.unechoed.values():
            return  # the stream has not caught up with our own booking yet
        position = self.book.positions.get(symbol)
        held = self.snapshot.positions.get(symbol)
        outcomes = self._filled_outcomes(symbol)
        if position is not None:
            exits = [o for o in outcomes if o.purpose is not Purpose.ENTRY]
            position = self._reduce(position, held, exits)
        entries = [o for o in outcomes if o.purpose is Purpose.ENTRY]
        waiting = position is not None and held is not None and held.side is not position.side
        if (
            held is not None
            and not waiting
            and (position is None or held.quantity > position.quantity)
        ):
            position = self._grow(symbol, position, held, entries)
        if position is not None:
            position = self._settle_entries(position, entries)
            self.book = self.book.with_position(position)
            if held is not None and _same(position, held):
                self.consistent.add(symbol)

    def _filled_outcomes(self, symbol: str) -> list[_Outcome]:
        """Our orders on `symbol` that ended with something filled, fills read, oldest first."""
        outcomes = []
        for intent in self.book.intents_for(symbol):
            outcome = self._outcome(intent.client_order_id, intent.purpose, intent)
            if outcome is not None:
                outcomes.append(outcome)
        position = self.book.positions.get(symbol)
        if position is not None:
            for order_id, purpose in (
                (position.stop_order_id, Purpose.STOP),
                (position.take_profit_order_id, Purpose.TARGET),
            ):
                outcome = self._outcome(order_id, purpose, None) if order_id else None
                if outcome is not None and outcome.execution.order.status is OrderStatus.FILLED:
                    outcomes.append(outcome)
        return sorted(outcomes, key=lambda o: o.execution.order.updated_at or self.now)

    def _outcome(self, order_id: str, purpose: Purpose, intent: Intent | None) -> _Outcome | None:
        state = self.state(order_id)
        if state is None or not state.status.is_final or not _may_have_filled(state):
            return None
        if order_id not in self.observation.fills:
            return None  # its fills could not be read: settle it on a later tick
        fills = tuple(self.observation.fills[order_id])
        return _Outcome(execution_of(state, fills), purpose, intent, fills)

    def _consume(self, outcome: _Outcome) -> None:
        """Settle an outcome the books now reflect."""
        order = outcome.execution.order
        self.records.append((order, outcome.fills))
        if outcome.intent is not None:
            self.book = self.book.without_intent(outcome.intent.client_order_id)
            return
        position = self.book.positions.get(order.symbol)
        if position is not None:
            cid = order.client_order_id
            self.book = self.book.with_position(
                replace(
                    position,
                    stop_order_id=None if position.stop_order_id == cid else position.stop_order_id,
                    take_profit_order_id=(
                        None
                        if position.take_profit_order_id == cid
                        else position.take_profit_order_id
                    ),
                )
            )

    def _reduce(
        self, position: Position, held: ExchangePosition | None, exits: list[_Outcome]
    ) -> Position | None:
        """Book what the exchange took off the position; None once it is closed."""
        target = held.quantity if held is not None and held.side is position.side else ZERO
        for outcome in exits:
            if position.quantity <= target:
                break
            self._consume(outcome)
            position = self.book.positions.get(position.symbol) or position
            execution = outcome.execution
            quantity = min(execution.quantity, position.quantity - target)
            price = execution.price or self.observation.marks.get(position.symbol)
            booked = reduced(
                position,
                quantity,
                price or position.stop_price,
                execution.fee_usdt,
                self._exit_reason(position, execution.order, outcome.intent),
                self.now,
            )
            if isinstance(booked, TradeDraft):
                self._closed(booked)
                return None
            position = booked
            self.book = self.book.with_position(position)
        if position.quantity <= target:
            return position
        if self.book.intents_for(position.symbol):
            detail = (
                f"exchange holds {target}, ledger {position.quantity}: "
                "an order of ours is unsettled"
            )
            self.notes.append(Note("reduction_awaits_orders", position.symbol, detail))
            return position
        return self._external_exit(position, target)

    def _external_exit(self, position: Position, target: Decimal) -> Position | None:
        mark = self.observation.marks.get(position.symbol)
        price = mark or position.stop_price
        detail = (
            f"{position.side} {position.quantity - target} gone from the exchange with no order "
            f"of ours to explain it; booked at {'the mark' if mark else 'the stop'} {price}"
        )
        self.notes.append(Note("position_closed_externally", position.symbol, detail, True))
        booked = reduced(
            position, position.quantity - target, price, ZERO, ExitReason.MANUAL, self.now
        )
        if isinstance(booked, TradeDraft):
            self._closed(booked)
            return None
        return booked

    def _closed(self, draft: TradeDraft) -> None:
        """Book the closed trade; the position is gone."""
        self.trades.append(draft)
        self.book = self.book.without_position(draft.position.symbol)

    def _grow(
        self,
        symbol: str,
        position: Position | None,
        held: ExchangePosition,
        entries: list[_Outcome],
    ) -> Position:
        if position is not None:
            detail = f"{position.quantity} → {held.quantity}"
            self.notes.append(Note("position_grown", symbol, detail, error=not entries))
            return grown(position, held, ZERO)
        entry = self._latest_entry(symbol, entries)
        stop, target = self._ours_on_exchange(held)
        adopted = opened_position(
            held,
            entry.plan if entry is not None else None,
            entry.client_order_id if entry is not None else None,
            entry.sent_at if entry is not None else self.now,
            ZERO,
            self.context.keeper,
            stop,
            target,
        )
        adopted = self._rounded(adopted)
        how = "our stop on the exchange" if stop else "its entry's plan" if entry else "default"
        detail = (
            f"{held.side} {held.quantity} @ {held.entry_price}, stop {adopted.stop_price} ({how})"
        )
        event = "position_opened" if entry is not None else "position_adopted"
        self.notes.append(Note(event, symbol, detail, error=entry is None))
        return adopted

    def _latest_entry(self, symbol: str, entries: list[_Outcome]) -> Intent | None:
        candidates = [o.intent for o in entries if o.intent is not None]
        candidates += [i for i in self.book.intents_for(symbol) if i.purpose is Purpose.ENTRY]
        with_plan = [i for i in candidates if i.plan is not None]
        return max(with_plan, key=lambda i: i.sent_at, default=None)

    def _settle_entries(self, position: Position, entries: list[_Outcome]) -> Position:
        """Entries the position reflects: record them and add their fees."""
        for outcome in entries:
            if outcome.intent is None or outcome.intent.plan is None:
                continue
            if outcome.intent.plan.side is not position.side:
                continue
            self._consume(outcome)
            position = replace(position, fees_usdt=position.fees_usdt + outcome.execution.fee_usdt)
        return position

    def settle_leftovers(self) -> None:
        """Filled orders the exchange position never reflected within the grace period: record
        them (their quantity was booked by whatever the exchange position showed)."""
        for intent in list(self.book.intents.values()):
            outcome = self._outcome(intent.client_order_id, intent.purpose, intent)
            updated = outcome.execution.order.updated_at if outcome else None
            if outcome is None or updated is None or self.now - updated < self.grace:
                continue
            self._consume(outcome)
            detail = f"{intent.purpose.name} {intent.client_order_id} filled but not reflected"
            self.notes.append(Note("order_settled_unreflected", intent.symbol, detail, True))

    def _ours_on_exchange(self, held: ExchangePosition) -> tuple[Order | None, Order | None]:
        mine = [
            o
            for o in self.conditional_by_symbol.get(held.symbol, ())
            if o.side is held.side.exit_order_side and is_ours(o.client_order_id) and o.reduce_only
        ]
        stop = next((o for o in mine if o.kind is OrderKind.STOP_MARKET), None)
        target = next((o for o in mine if o.kind is OrderKind.TAKE_PROFIT_MARKET), None)
        return stop, target

    def _rounded(self, position: Position) -> Position:
        rules = self.context.rules.get(position.symbol)
        if rules is None:
            return position
        return replace(
            position,
            stop_price=rules.round_price(position.stop_price),
            initial_stop_price=rules.round_price(position.initial_stop_price),
            take_profit_price=rules.round_price(position.take_profit_price),
        )

    def _exit_reason(self, position: Position, order: Order, intent: Intent | None) -> ExitReason:
        if intent is not None and intent.reason is not None:
            return intent.reason
        if order.kind is OrderKind.TAKE_PROFIT_MARKET:
            return ExitReason.TP_HIT
        if order.kind is OrderKind.STOP_MARKET:
            level = stops.break_even_level(position, self.context.monitor)
            return stops.stop_exit_reason(position, level)
        return ExitReason.MANUAL

    # -- manage and protect -----------------------------------------------------------------------

    def manage_and_protect(self) -> None:
        for symbol in sorted(self.consistent):
            position = self.book.positions.get(symbol)
            if position is None:
                continue
            if any(i.purpose is Purpose.EXIT for i in self.book.intents_for(symbol)):
                continue  # an exit of ours is in flight: a later tick books it
            position, actions, events = manage(
                position, self.observation.marks.get(symbol), self.now, self.context
            )
            self.book = self.book.with_position(position)
            self.events += events
            if actions:
                self.actions += actions
                continue
            rules = self.context.rules.get(symbol)
            self.actions += plan_protection(
                position,
                self.conditional_by_symbol.get(symbol, []),
                self.now,
                self.context.monitor,
                tick_size=rules.tick_size if rules else None,
            )

    def release_orphans(self) -> None:
        """Cancel our conditional orders on symbols with no position and no unsettled order."""
        busy = set(self.book.positions) | {i.symbol for i in self.book.intents.values()}
        for symbol in sorted(self.conditional_by_symbol.keys() - busy):
            self.actions += plan_release(symbol, self.conditional_by_symbol[symbol])

    def result(self) -> Plan:
        return Plan(
            self.book.frozen(),
            tuple(self.records),
            tuple(self.trades),
            tuple(self.events),
            tuple(self.actions),
            tuple(self.notes),
        )


__all__ = ["Context", "Note", "Observation", "Plan", "is_unsettled", "lookups_needed", "plan"]
