"""One tick of planning (keeper/plan.py says what it does and why). Pure: no I/O, no clock.

`Planner` holds the tick's state and runs its steps, each group in a module of its own that it
inherits: our orders settled (settle.py), what left a position booked (reduce_settle.py; a
reduction no order of ours explains: external_settle.py, round_trip_settle.py; what happened
where the books held nothing: from_flat_settle.py), positions managed and protected
(guard.py). Here: the tick's order, each symbol reconciled, our orders' outcomes, and what a
position grew by.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ExchangePosition,
    Fill,
    Order,
    OrderKind,
    Position,
    PositionEvent,
    SnapshotSource,
)
from quantum_trader.keeper.added_settle import settle_added_unread
from quantum_trader.keeper.added_unread import remember
from quantum_trader.keeper.book import Book, Intent, TradeFees
from quantum_trader.keeper.booking import (
    TradeDraft,
    execution_of,
    grown,
    holds_more,
    holds_same,
)
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.exit_replay_settle import Outcome
from quantum_trader.keeper.external import added_trades, unexplained_beside
from quantum_trader.keeper.external_saved import LastExit
from quantum_trader.keeper.fees import remembered, settle_fees
from quantum_trader.keeper.fill_check import check_fill
from quantum_trader.keeper.firing import trigger_times
from quantum_trader.keeper.from_flat_settle import TRADES_UNREAD, FromFlatSettling
from quantum_trader.keeper.guard import Protecting
from quantum_trader.keeper.ids import Purpose, as_sent
from quantum_trader.keeper.part_settle import settle_parts_unread
from quantum_trader.keeper.plan import (
    Context,
    Note,
    Observation,
    Plan,
    may_have_filled,
)
from quantum_trader.keeper.protect import (
    OrderAction,
)
from quantum_trader.keeper.settle import OrderSettling
from quantum_trader.keeper.unseen_entry import UnseenEntrySettling
from quantum_trader.record import replace

ZERO = Decimal(0)


class Planner(OrderSettling, UnseenEntrySettling, FromFlatSettling, Protecting):
    def __init__(
        self,
        book: Book,
        observation: Observation,
        now: datetime,
        context: Context,
        checks: ProtectionChecks | None = None,
    ):
        self.book = Draft(book)
        self.checks = ProtectionChecks() if checks is None else checks
        self.observation = observation
        self.snapshot = observation.snapshot
        self.now = now
        self.context = context
        self.records: list[tuple[Order, tuple[Fill, ...]]] = []
        self.trades: list[TradeDraft] = []
        self.events: list[PositionEvent] = []
        self.actions: list[OrderAction] = []
        self.notes: list[Note] = []
        self.amendments: list[TradeFees] = []
        self.reducing_trades: dict[str, frozenset[str]] = {}
        self.last_exits: dict[str, LastExit] = {}
        self.flat_kept: set[str] = set()  # keeper/from_flat_settle.py `settle_flat_again`
        self.opened_fees: dict[str, Decimal] = {}  # a flip by hand: the new side's fee
        self.consistent: set[str] = set()
        self.entered: set[str] = set()  # an entry of ours settled into a position this tick
        self.unseen_entries: set[str] = set()  # keeper/unseen_entry.py
        rest = self.snapshot.source is SnapshotSource.REST
        self.reflected = observation.reflected if rest else frozenset()  # a mirror may lag
        self.unreflected: list[str] = []
        if rest:
            self.book.unechoed.clear()
        self.listed: dict[str, list[Order]] = {}
        self.listed_ids: dict[str, Order] = {}
        for order in map(as_sent, self.snapshot.open_conditional_orders):  # of those `read`
            self.listed.setdefault(order.symbol, []).append(order)
            self.listed_ids[order.client_order_id] = order

    def run(self, *, shortcut: bool = True) -> Plan:
        """Plan the tick; `shortcut` lets a quiet tick skip the settling steps (`quiet`), with
        the same plan (shortcut=False runs every step, for the tests that show it)."""
        for order in trigger_times(self.book.working.values(), self.listed_ids, self.state):
            self.book.add_working(order)  # a firing order blocks entries (keeper/firing.py)
        if self.book.fees_unread:  # before a close is booked, so its trade has these fees
            give_up = timedelta(seconds=self.context.keeper.fees_unread_give_up_s)
            records, notes, amendments = settle_fees(self.book, self.observation, self.now, give_up)
            self.records += records
            self.notes += notes
            self.amendments += amendments
        self.settle_added()  # growths by hand whose trades were unread: before any close
        self.settle_parts()  # and parts reduced by hand booked at the mark meanwhile
        if self.book.unpriced:  # closes by hand awaiting a price (keeper/unpriced.py)
            self.settle_unpriced()
        if self.observation.flat_again:  # round trips by hand (keeper/flat_reads.py)
            self.settle_flat_again()
        if self.observation.before_entry:  # and those before an entry of ours
            self.settle_before_entry()
        if shortcut and self.quiet():
            # what `reconcile` finds (see quiet)
            self.consistent.update(s for s in self.book.positions if self.read(s))
        else:
            self.clear_echoes()
            self.settle_unfilled()
            self.settle_gone_working()
            entering = {i.symbol for i in self.book.intents.values() if i.purpose is Purpose.ENTRY}
            held = set(self.book.positions) | set(self.snapshot.positions)
            for symbol in sorted(held | entering):  # an entry's fill may be held by no one
                if self.read(symbol):
                    self.reconcile(symbol)
            self.settle_leftovers()
        self.manage_and_protect()
        self.release_orphans()
        return Plan(
            self.book.frozen(),
            tuple(self.records),
            tuple(self.trades),
            tuple(self.events),
            tuple(self.actions),
            tuple(self.notes),
            tuple(self.unreflected),
            tuple(self.amendments),
            dict(self.reducing_trades),
            dict(self.last_exits),
            frozenset(self.flat_kept),
        )

    def settle_added(self) -> None:
        """The growths by hand booked while their trades could not be read, whose trades
        this tick reads (keeper/added_settle.py): taken, their fee booked (or their closed
        trade amended)."""
        if not self.book.added_unread:
            return
        notes, taken, amendments = settle_added_unread(
            self.book, self.observation, self.now, self.context
        )
        self.notes += notes
        self.amendments += amendments  # closed before they were read: their trades amended
        for symbol, ids in taken.items():
            self._took(symbol, ids)

    def settle_parts(self) -> None:
        """The parts reduced by hand booked at the mark while their trades could not be read,
        whose trades this tick reads (keeper/part_settle.py): the position amended to them."""
        if not self.book.parts_unread:
            return
        seen, ours = self.observation, self.observation.trade_ids_read()
        notes, taken = settle_parts_unread(self.book, seen, self.now, self.context, ours)
        self.notes += notes
        for symbol, ids in taken.items():
            self._took(symbol, ids)

    def quiet(self) -> bool:
        """Nothing to settle: no order of ours in flight or unechoed, nothing looked up or
        read, every working order still listed, and every position held as booked.

        Then the settling steps change nothing (each walks intents, unechoed or unlisted
        working orders, or needs an order's fills read) and `reconcile` finds every position
        consistent (no outcome to book, the quantities agree), so `run` may skip them: the
        usual monitor tick, where only the stop maths has work.
        """
        book, held, observation = self.book, self.snapshot.positions, self.observation
        if book.intents or book.unechoed or observation.found or observation.fills:
            return False
        if book.positions.keys() != held.keys():
            return False
        if any(cid not in self.listed_ids for cid in book.working):
            return False
        return all(
            holds_same(p, held[s]) and not self._entry_moved(p, held[s])
            for s, p in book.positions.items()
        )

    # -- positions -------------------------------------------------------------------------

    def reconcile(self, symbol: str) -> None:
        stream = self.snapshot.source is SnapshotSource.STREAM
        if stream and any(s == symbol for s, _ in self.book.unechoed.values()):
            self._cover_unechoed(symbol)  # the stream has not caught up with our booking yet
            return
        position = self.book.positions.get(symbol)
        held = self.snapshot.positions.get(symbol)
        outcomes = self._filled_outcomes(symbol)
        entries = [o for o in outcomes if o.purpose is Purpose.ENTRY]
        if position is None:  # an entry of ours traded away before it was read, if any
            position, waits = self.opened_unseen(symbol, held, entries)
            if waits or (position is None and held is not None and self.awaits_entry(held)):
                return
            if position is not None:
                entries = []
        booked = position
        exits = [o for o in outcomes if o.purpose is not Purpose.ENTRY]
        if position is not None:
            position = self._reduce(position, held, exits)
        if position is not None and held is not None and not outcomes:
            position = self._traded_between_looks(position, held, position is not booked)
        if held is not None and holds_more(position, held):
            position = self._grow(symbol, position, held, entries, [] if booked else exits)
        if position is None:
            return
        position = self._settle_entries(position, entries)
        self.book.put(position)
        if held is not None and holds_same(position, held):
            self.consistent.add(symbol)

    def _filled_outcomes(self, symbol: str) -> list[Outcome]:
        """Our orders on `symbol` that ended with something filled, fills read, oldest first."""
        if not (self.observation.fills or self.observation.fills_unread):
            return []  # an outcome needs a read of its fills (`_outcome`): the usual quiet tick
        outcomes = [
            self._outcome(i.client_order_id, i.purpose, i) for i in self.book.intents_for(symbol)
        ]
        for order in self.book.working_for(symbol):
            purpose = Purpose.STOP if order.kind is OrderKind.STOP_MARKET else Purpose.TARGET
            outcomes.append(self._outcome(order.client_order_id, purpose, None))
        found = [o for o in outcomes if o is not None]
        return sorted(found, key=lambda o: o.execution.order.updated_at or self.now)

    def _outcome(self, order_id: str, purpose: Purpose, intent: Intent | None) -> Outcome | None:
        state = self.state(order_id)
        if state is None or not state.status.is_final or not may_have_filled(state):
            return None
        if order_id in self.observation.fills_unread:  # booked now, its fee read later
            return Outcome(execution_of(state, ()), purpose, intent, (), unread=True)
        if order_id not in self.observation.fills:
            return None  # its fills were not read: settle it on a later tick
        fills = tuple(self.observation.fills[order_id])
        return Outcome(execution_of(state, fills), purpose, intent, fills)

    def _consume(self, outcome: Outcome, *, booked: bool = False) -> None:
        """Settle an outcome the books now reflect; `booked`: its fee is in a position's."""
        order = outcome.execution.order
        self.record(order, outcome.fills)
        if booked and outcome.unread:
            fee = outcome.execution.fee_usdt
            self.book.fees_unread[order.client_order_id] = remembered(order, fee, self.now)
        if outcome.intent is not None:
            self.book.drop_intent(outcome.intent.client_order_id)
        else:
            self.book.drop_working(order.client_order_id)
            self._forget_protection(order.symbol, order.client_order_id)
        if outcome.purpose is Purpose.TARGET and outcome.execution.quantity > 0:
            self.took_profit(order)

    def _grow(
        self,
        symbol: str,
        position: Position | None,
        held: ExchangePosition,
        entries: list[Outcome],
        exits: list[Outcome],
    ) -> Position:
        """`position` grown to `held`, or `held` adopted (None): replayed from flat with
        `exits` (our stops and take-profits on the symbol that filled) where it was read
        flat and no entry of ours opened it (keeper/from_flat_settle.py)."""
        if position is not None:
            if not entries and self._growth_awaits_orders(position, held):
                return position
            after = self._growth_replayed(position, held) if not entries else None
            if after is not None:
                return after
            detail = f"{position.quantity} → {held.quantity}"
            fee = ZERO
            if not entries:  # by hand: the trades that made it taken (seed 32221)
                fee, how = self._addition(position, held.quantity - position.quantity)
                detail += how
            self.notes.append(Note("position_grown", symbol, detail, error=not entries))
            return grown(position, held, fee)
        return self._adopted(symbol, held, entries, exits)

    def _adopted(
        self, symbol: str, held: ExchangePosition, entries: list[Outcome], exits: list[Outcome]
    ) -> Position:
        """`held` adopted, where the books hold nothing: `_grow`'s, for no position."""
        entry = self.latest_entry(held, [o.intent for o in entries])
        stop, target = self._ours_on_exchange(held)
        fees = self.opened_fees.pop(symbol, ZERO)
        flipped_here = symbol in self.unseen_entries  # the other side of our entry's fill
        replays = entry is None and not flipped_here
        leg, replayed = self._from_flat(symbol, held, exits) if replays else (None, "")
        if leg is not None:
            fees += leg.fees_usdt
        adopted = self._adoptable(held, entry, stop, target, fees)
        if replayed == TRADES_UNREAD:  # opened by hand from flat: its fee taken as a
            # growth's is (keeper/added_unread.py; was: never booked — restart seed 40645)
            remember(self.book.added_unread, adopted, held.quantity, self.now)
        if leg is not None and leg.reduced:  # reduced by hand before the look: its PnL kept
            adopted = replace(
                adopted, realized_pnl_usdt=leg.realized_usdt, initial_quantity=leg.opened
            )
        for order in (stop, target):
            if order is not None:
                self.book.add_working(order)
                self.record(order)  # saved with it: one sent unbooked (last_stand.py) too
        how = "our stop on the exchange" if stop else "its entry's plan" if entry else "default"
        detail = f"{held.side} {held.quantity} @ {held.entry_price}, stop {adopted.stop_price}"
        event = "position_opened" if entry is not None else "position_adopted"
        self.notes.append(Note(event, symbol, f"{detail} ({how}){replayed}", error=entry is None))
        if entry is not None:  # a person's part beside our fill: its fee taken
            adopted = self.beside_our_fill(adopted, held, entries)
        if entry is not None and entry.plan is not None:  # far from its plan: fill_check.py
            limit, checked = check_fill(adopted, entry.plan, self.context)
            if limit is not None:
                self.book.limits[symbol] = limit
            self.notes += checked
        return adopted

    def _growth_replayed(self, position: Position, held: ExchangePosition) -> Position | None:
        """A growth with no entry of ours that the newest adding trades do not show, or show
        leaving earlier trades unexplained — our short closed by hand and a larger one
        opened, while the daemon was stopped (the hand-trading campaign with a restart, seed
        40039: booked as an addition, its fee not booked, our close lost): replayed from the
        position as booked, what is held now after it; None where no run of the trades shows
        it (booked as a growth, as before)."""
        symbol, seen = position.symbol, self.observation
        fills = seen.account_fills.get(symbol)
        if fills is None or symbol in seen.account_unread:
            return None
        ours = seen.trade_ids_read()
        taken = added_trades(position, held.quantity - position.quantity, fills, ours)
        ids = {f.trade_id for f in taken}
        if taken and not unexplained_beside(fills, ids, ours):
            return None
        replayed, after = self._replayed_exit(position, held)
        return after if replayed else None

    def _addition(self, position: Position, added: Decimal) -> tuple[Decimal, str]:
        """The fee of the account's trades that added `added` to `position` by hand, and the
        line's words; the trades taken (never booked again: an addition the books hold is
        not one a later close must see unbooked, keeper/external.py `added_by_hand`). None
        read yet: the keeper reads them and plans again (`unread_external_exits`)."""
        symbol, seen = position.symbol, self.observation
        fills = seen.account_fills.get(symbol)
        if symbol in seen.account_unread:  # read on later ticks (keeper/added_unread.py)
            remember(self.book.added_unread, position, added, self.now)
            return ZERO, "; the account's trades could not be read: its fee booked once they are"
        if fills is None:
            return ZERO, ""
        taken = added_trades(position, added, fills, self._not_theirs(symbol))
        if not taken:
            return ZERO, "; the account's trades do not show it: its fee not booked"
        self._took(symbol, frozenset(f.trade_id for f in taken))
        fee = sum((f.fee_usdt for f in taken), ZERO)
        return fee, f"; by the account's {len(taken)} trade(s), fee {fee}"

    def _settle_entries(self, position: Position, entries: list[Outcome]) -> Position:
        """Entries the position reflects: record them and add their fees; each is `entered`
        (its take-profit placed after its stop: guard.py)."""
        for outcome in entries:
            plan = outcome.intent.plan if outcome.intent is not None else None
            if plan is None or plan.side is not position.side:
                continue
            self._consume(outcome, booked=True)
            self.entered.add(position.symbol)
            position = replace(position, fees_usdt=position.fees_usdt + outcome.execution.fee_usdt)
        return position

    def settle_leftovers(self) -> None:
        """Filled orders the exchange position never reflected within the grace period, and
        stops or targets that filled with no position left to reduce: record them (their
        quantity was booked from whatever the exchange position showed). Such a stop or
        target may have closed a position a person opened where the symbol was read flat:
        replayed from flat first (keeper/from_flat_settle.py)."""
        unheld = {o.symbol for o in self.book.working.values()} - self.book.positions.keys()
        for symbol in sorted(unheld - self.snapshot.positions.keys()):
            exits = [o for o in self._filled_outcomes(symbol) if o.intent is None]
            if exits:
                self._from_flat(symbol, None, exits)
        for order in list(self.book.working.values()):
            if order.symbol in self.book.positions:
                continue
            purpose = Purpose.STOP if order.kind is OrderKind.STOP_MARKET else Purpose.TARGET
            outcome = self._outcome(order.client_order_id, purpose, None)
            if outcome is not None:
                self._consume(outcome)
                detail = f"{order.client_order_id} filled with no position of ours left"
                self.notes.append(Note("order_settled_unreflected", order.symbol, detail, True))
        for intent in list(self.book.intents.values()):
            outcome = self._outcome(intent.client_order_id, intent.purpose, intent)
            updated = outcome.execution.order.updated_at if outcome else None
            if outcome is None or updated is None or self.now - updated < self.grace:
                continue
            self._consume(outcome)
            detail = f"{intent.purpose.name} {intent.client_order_id} filled but not reflected"
            self.notes.append(Note("order_settled_unreflected", intent.symbol, detail, True))
