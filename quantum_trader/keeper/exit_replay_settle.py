"""The steps of a tick that book exits of ours together with the trades a person made around
them: an exit on the side that adds to the position (it closed a side a person opened), exits
that filled for all of the position with something held after (opened by hand since), and
exits on a position an earlier run booked, after trades not ours — each replayed from the
position as booked with the account's trades (keeper/round_trip.py); and, while an unsettled
order of ours may explain what the exchange shows, the cover that waits for it
(`_await_orders`). Pure; a part of `Planner` (keeper/planner.py) through
keeper/reduce_settle.py, which books the usual exits one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from quantum_trader.domain import (
    ZERO,
    ExchangePosition,
    ExchangeSnapshot,
    Fill,
    Order,
    Position,
    SnapshotSource,
)
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.booking import Execution
from quantum_trader.keeper.cover import stop_awaiting_orders
from quantum_trader.keeper.external_saved import strictly_before, trade_order
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Note
from quantum_trader.keeper.protect import OrderAction
from quantum_trader.keeper.round_trip_settle import RoundTripSettling

EXIT_OTHER_SIDE = "exit_filled_other_side"  # one of external.py's EXTERNAL_NOTES
EXIT_AFTER_STOP = "exit_filled_after_trades_by_hand"  # one of them too
EXIT_THEN_OPENED = "exit_filled_then_opened_by_hand"  # and this
EXIT_BEYOND_BOOKED = "exit_filled_beyond_booked"  # and this
EXIT_AFTER_MOVED = "exit_filled_after_entry_moved"  # and this
GROWTH_AWAITS_ORDERS = "growth_awaits_orders"


@dataclass(slots=True)
class Outcome:
    """A settled order of ours with what it did; `intent` is None for a working stop/target;
    `unread`: its fills could not be read, it is booked from its state (keeper/fees.py)."""

    execution: Execution
    purpose: Purpose
    intent: Intent | None
    fills: tuple[Fill, ...]
    unread: bool = False


class ExitReplaySettling(RoundTripSettling):
    """The steps; the attributes are the planner's (set in `Planner.__init__`)."""

    snapshot: ExchangeSnapshot
    reflected: frozenset[str]  # Observation.reflected on a REST snapshot (a mirror may lag)
    unreflected: list[str]  # Plan.unreflected
    listed: dict[str, list[Order]]
    actions: list[OrderAction]

    if TYPE_CHECKING:  # the planner's own and Protecting's (keeper/guard.py), beside this

        def _consume(self, outcome: Outcome, *, booked: bool = False) -> None: ...

        def latest_entry(
            self, held: ExchangePosition, settled: Sequence[Intent | None]
        ) -> Intent | None: ...

        def _ours_on_exchange(
            self, held: ExchangePosition
        ) -> tuple[Order | None, Order | None]: ...

        def _adoptable(
            self,
            held: ExchangePosition,
            entry: Intent | None,
            stop: Order | None,
            target: Order | None,
            fees_usdt: Decimal = ZERO,
        ) -> Position: ...

    def _exits_replayed(
        self, position: Position, held: ExchangePosition | None, exits: list[Outcome]
    ) -> tuple[bool, Position | None]:
        """Exits of ours the trades by hand around them must be replayed with: (True, what
        is held after) when they were; (False, None): booked one by one, as usual."""
        if any(_other_side(position, outcome) for outcome in exits):
            return self._other_side_exits(position, held, exits)
        if held is not None and _filled_for_all(position, exits):
            if self._others_unsettled(position, exits):
                return True, self._await_exits(position, held)
            ids = ", ".join(o.execution.order.client_order_id for o in exits)
            what = (
                f"our {ids} filled for all of {position.side} {position.quantity}, and "
                f"{held.side} {held.quantity} held after: opened by hand since"
            )
            return self._other_side_exits(position, held, exits, what, EXIT_THEN_OPENED)
        if held is None and _filled_beyond(position, exits):
            if self._others_unsettled(position, exits):
                return False, None  # an entry of ours may have added it: booked as before
            ids = ", ".join(o.execution.order.client_order_id for o in exits)
            what = (
                f"our {ids} filled {_filled(exits)} of {position.side} {position.quantity} booked: "
                "added to by hand before"
            )
            return self._other_side_exits(position, held, exits, what, EXIT_BEYOND_BOOKED)
        moved = self.book.entries_moved.get(position.symbol)
        if exits and moved is not None:
            ids = ", ".join(o.execution.order.client_order_id for o in exits)
            what = (
                f"our {ids} filled on {position.side} {position.quantity} after Binance's entry "
                f"moved to {moved}, its replay awaiting an order of ours: traded by hand before"
            )
            return self._other_side_exits(position, held, exits, what, EXIT_AFTER_MOVED)
        if exits and position.symbol in self.observation.restored_unseen:
            return self._exits_after_a_stop(position, held, exits)
        return False, None

    def _others_unsettled(self, position: Position, exits: list[Outcome]) -> bool:
        """Whether an order of ours on the symbol other than `exits` is unsettled: its fills
        cannot be told apart from a person's trades yet."""
        ids = {o.execution.order.client_order_id for o in exits}
        return any(i.client_order_id not in ids for i in self.book.intents_for(position.symbol))

    def _await_exits(self, position: Position, held: ExchangePosition) -> Position:
        """`_filled_for_all`, while another order of ours there is unsettled: nothing booked,
        what is held covered, the exits read again at the next tick (was: booked for only what
        the positions' difference showed — the cap for a conditional order whose executed
        quantity is assumed — and the person's trades before them never booked: the
        hand-trading campaign, seed 33350). Once that order is settled they are replayed as
        any exits filled for all of a position with something held after."""
        flipped = held if held.side is not position.side else None
        self._await_orders(position, ZERO if flipped else held.quantity, flipped)
        return position

    def _exits_after_a_stop(
        self, position: Position, held: ExchangePosition | None, exits: list[Outcome]
    ) -> tuple[bool, Position | None]:
        """Exits of ours filled on a position an earlier run booked, before any tick of this
        run found it held as booked: a person may have traded on it while the daemon was
        stopped — a flip and a flip back, then our stop fired on the person's position (the
        hand-trading campaign with a restart, seeds 40033 and 40041: booked as our position
        stopped out, the person's closes lost). The account's trades are read; where trades
        not ours came after the position opened and before our exits' fills, it is replayed
        as `_other_side_exits` replays (True, what is held after); else (False, None): booked
        as before."""
        symbol, seen = position.symbol, self.observation
        if symbol in seen.account_unread:
            return False, None
        fills = seen.account_fills.get(symbol)
        ids = ", ".join(o.execution.order.client_order_id for o in exits)
        what = (
            f"our {ids} filled on {position.side} {position.quantity}, booked before the "
            "start, after trades not ours"
        )
        if self._read_again_first(exits):
            return True, position
        if fills is None:
            detail = f"{what}?; the account's trades are read"
            self.notes.append(Note(EXIT_AFTER_STOP, symbol, detail))
            return True, position
        ours = seen.trade_ids_read() | {f.trade_id for o in exits for f in o.fills}
        filled = [trade_order(f) for o in exits for f in o.fills]
        if not filled:
            return False, None
        first = min(filled)
        if not any(
            f.trade_id not in ours
            and f.time > position.opened_at
            and strictly_before(trade_order(f), first)
            for f in fills
        ):
            return False, None
        return self._other_side_exits(position, held, exits, what)

    def _other_side_exits(
        self,
        position: Position,
        held: ExchangePosition | None,
        exits: list[Outcome],
        what: str | None = None,
        event: str = EXIT_OTHER_SIDE,
    ) -> tuple[bool, Position | None]:
        """An exit of ours among `exits` whose side adds to `position`: it cannot have reduced
        it, so it closed a side a person opened — our old side's stop, still resting when
        the keeper adopted the other side of a flip by hand, fired after a flip back (the
        hand-trading campaign's seed 31013: booked against the position, at the stop's price
        and reason, the person's close and the side they opened missing). Replayed from the
        position as booked with the account's trades and every exit's fills
        (keeper/round_trip.py): (True, the position held now) when they show it, or while the
        trades are not read (the keeper reads them and plans again) or an exit may have
        filled after the positions were read (`Plan.unreflected`: read again, as for any exit
        the positions do not show); (False, None), said, when the trades cannot show it:
        booked as before. `what` and `event`: the line's words and event, a caller's own
        case's (`_exits_after_a_stop`, `_filled_for_all`)."""
        symbol, seen = position.symbol, self.observation
        other = [o.execution.order.client_order_id for o in exits if _other_side(position, o)]
        what = what or (
            f"our {', '.join(other)} filled on the side that adds to {position.side} "
            f"{position.quantity}: it closed a position opened by hand"
        )
        if self._read_again_first(exits):
            return True, position
        fills = seen.account_fills.get(symbol)
        if fills is None and symbol not in seen.account_unread:
            self.notes.append(Note(event, symbol, f"{what}; the account's trades are read"))
            return True, position
        found = None
        if fills is not None and not any(o.unread for o in exits):
            ours = [f for o in exits for f in o.fills]
            found = self._replay(position, held, fills, ours)
        if found is None:
            what += (
                "; the account's trades could not be read or do not show how: booked against "
                "the position as before, its exit price and reason our order's"
            )
            self.notes.append(Note(event, symbol, what, warning=True))
            return False, None
        closers: dict[str, tuple[Order, Intent | None]] = {}
        for outcome in exits:
            self._consume(outcome, booked=True)
            for fill in outcome.fills:
                closers[fill.trade_id] = (outcome.execution.order, outcome.intent)
        self._took(symbol, found.trade_ids)
        self.book.entries_seen.pop(symbol, None)
        self.book.entries_moved.pop(symbol, None)
        self.notes.append(Note(event, symbol, f"{what}; replayed from the account's trades"))
        return True, self._book_replay(position, held, found, closers)

    def _await_orders(
        self, position: Position, target: Decimal, flipped: ExchangePosition | None
    ) -> None:
        """The exchange shows less than the ledger and an unsettled order of ours may explain
        it: cover what it holds meanwhile. Only REST may say a position is gone: while just the
        stream shows the reduction (it may have missed an event), cover what we booked.
        `flipped`: what the exchange holds on the other side, covered too, as it would be
        adopted (`_adoptable`), the stop then adopted with it (was: nothing covered it until
        our order settled, up to `unknown_order_final_s`)."""
        holds = f"{target}" if flipped is None else f"{flipped.side} {flipped.quantity}"
        ledger = f"{position.side} {position.quantity}" if flipped else f"{position.quantity}"
        detail = f"exchange holds {holds}, ledger {ledger}: an order of ours is unsettled"
        self.notes.append(Note("reduction_awaits_orders", position.symbol, detail))
        held = target if self.snapshot.source is SnapshotSource.REST else position.quantity
        mark = self.observation.marks.get(position.symbol)
        self.actions += stop_awaiting_orders(
            position, held, self.listed, mark, self.now, self.context
        )
        if flipped is not None:
            self._cover_held(flipped, self.latest_entry(flipped, []))

    def _growth_awaits_orders(self, position: Position, held: ExchangePosition) -> bool:
        """Whether a growth of `position` to `held` with no entry of ours waits: a stop or
        take-profit of ours on the symbol has ended unseen or is executing
        (`working_unsettled`), and it may have closed the position before a person opened
        what is held (the hand-trading campaign, seed 33556: our stop closed the long, a
        person opened a larger one, the stop's lookup met a 429 — booked as a growth by
        hand, then the stop booked against it: two trades merged into one, the person's fee
        in no booking). What is held is covered meanwhile; once the order is settled, its
        fill is replayed with the person's trades (`_filled_for_all`), or the growth booked
        as before."""
        unsettled = self.working_unsettled(position.symbol)
        if not unsettled:
            return False
        detail = (
            f"exchange holds {held.quantity}, ledger {position.quantity}: our "
            f"{', '.join(unsettled)} unsettled (it may have closed the position before "
            "what is held was opened)"
        )
        self.notes.append(Note(GROWTH_AWAITS_ORDERS, position.symbol, detail))
        mark = self.observation.marks.get(position.symbol)
        self.actions += stop_awaiting_orders(
            position, held.quantity, self.listed, mark, self.now, self.context
        )
        return True

    def _cover_held(self, held: ExchangePosition, entry: Intent | None = None) -> None:
        """A stop for what the exchange holds, as it would be adopted (`_adoptable`)."""
        other = self._adoptable(held, entry, *self._ours_on_exchange(held))
        mark = self.observation.marks.get(held.symbol)
        self.actions += stop_awaiting_orders(
            other, held.quantity, self.listed, mark, self.now, self.context
        )

    def _read_again_first(self, exits: list[Outcome]) -> bool:
        """Whether an exit among `exits` may have filled after the positions were read (not
        `reflected`): the positions are read again first (`Plan.unreflected`)."""
        ids = (o.execution.order.client_order_id for o in exits)
        late = [cid for cid in ids if cid not in self.reflected]
        self.unreflected += late
        return bool(late)


def _other_side(position: Position, outcome: Outcome) -> bool:
    """An exit of ours whose side adds to `position` (reduce-only: it reduced another)."""
    return outcome.execution.order.side is not position.side.exit_order_side


def _filled_for_all(position: Position, exits: list[Outcome]) -> bool:
    """Whether `exits` filled for all of `position`: something held after them is a position
    a person opened (or added to) on the symbol since — reduce-only, ours cannot have left any
    — maybe opened and flipped (the restart campaign, seed 40365: our stop filled, then an
    open and a flip by hand, all while the daemon was stopped; the short was adopted and the
    long never booked), replayed as `_other_side_exits` replays. Not while another order of
    ours is unsettled there (`_await_exits`)."""
    return bool(exits) and _filled(exits) >= position.quantity


def _filled_beyond(position: Position, exits: list[Outcome]) -> bool:
    """Whether `exits` filled for more than `position`: reduce-only, they sold what was
    held, so a person had added to it unseen (the hand-trading campaign, seed 33553: our
    stop, still standing for more than the position booked after our market exit, sold
    what a person had added; the stop was booked for what was booked, the person's trade
    and fee in no booking). Replayed as `_filled_for_all` is, with nothing held after."""
    return _filled(exits) > position.quantity


def _filled(exits: list[Outcome]) -> Decimal:
    """What `exits` executed together."""
    return sum((o.execution.quantity for o in exits), ZERO)
