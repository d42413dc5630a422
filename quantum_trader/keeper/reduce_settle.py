"""The steps of a tick that book what left a position: our exits that ended with something
filled, booked at their own price (a fill the exchange's positions do not show yet waits, up to
a grace period), and a reduction no order of ours explains (`_external_exit`: the account's
trades, keeper/external_settle.py; a replay, keeper/round_trip_settle.py; else the mark), or
covered by a stop while an unsettled order of ours may explain it (`_await_orders`). Pure; a
part of `Planner` (keeper/planner.py), which holds the state these steps read and write, and
settles the orders whose `Outcome` they book.
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
    ExitReason,
    Fill,
    Order,
    Position,
    SnapshotSource,
)
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.booking import Execution, TradeDraft, exit_reason, reduced
from quantum_trader.keeper.cover import stop_awaiting_orders
from quantum_trader.keeper.external import ExternalExecution, unexplained_beside
from quantum_trader.keeper.external_saved import LastExit, strictly_before, trade_order
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.part_settle import await_parts
from quantum_trader.keeper.part_settle import remember as remember_part
from quantum_trader.keeper.plan import Note
from quantum_trader.keeper.protect import OrderAction
from quantum_trader.keeper.round_trip_settle import RoundTripSettling
from quantum_trader.keeper.unpriced import ClosedBy
from quantum_trader.record import replace

EXIT_OTHER_SIDE = "exit_filled_other_side"  # one of external.py's EXTERNAL_NOTES
EXIT_AFTER_STOP = "exit_filled_after_trades_by_hand"  # one of them too
EXIT_THEN_OPENED = "exit_filled_then_opened_by_hand"  # and this


@dataclass(slots=True)
class Outcome:
    """A settled order of ours with what it did; `intent` is None for a working stop/target;
    `unread`: its fills could not be read, it is booked from its state (keeper/fees.py)."""

    execution: Execution
    purpose: Purpose
    intent: Intent | None
    fills: tuple[Fill, ...]
    unread: bool = False


class ReductionSettling(RoundTripSettling):
    """The steps; the attributes are the planner's (set in `Planner.__init__`)."""

    snapshot: ExchangeSnapshot
    reflected: frozenset[str]  # Observation.reflected on a REST snapshot (a mirror may lag)
    unreflected: list[str]  # Plan.unreflected
    listed: dict[str, list[Order]]
    actions: list[OrderAction]
    opened_fees: dict[str, Decimal]
    last_exits: dict[str, LastExit]

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

    def _reduce(
        self, position: Position, held: ExchangePosition | None, exits: list[Outcome]
    ) -> Position | None:
        """Book what the exchange took off the position; None once it is closed."""
        replayed, after = self._exits_replayed(position, held, exits)
        if replayed:
            return after
        target = held.quantity if held is not None and held.side is position.side else ZERO
        closer: Outcome | None = None  # an exit of ours that ran out of position
        for outcome in exits:
            cid = outcome.execution.order.client_order_id
            # Not shown by the positions: filled after they were read, or the position
            # reopened since. One that ran out of position left none on its side: so too
            # when the positions show it held (a reduction by hand came before it).
            shown = position.quantity > target and not (_ran_out(outcome) and target > 0)
            if not shown and cid not in self.reflected:
                self.unreflected.append(cid)
                continue
            self._consume(outcome, booked=True)
            position = self.book.positions.get(position.symbol, position)
            room = ZERO if cid in self.reflected else target  # a reflected fill is booked whole
            booked = self._book_exit(position, outcome, position.quantity - room)
            self._took(position.symbol, frozenset(f.trade_id for f in outcome.fills))
            if booked is None:
                return None
            position = booked
            self.book.put(position)
            if _ran_out(outcome):
                closer = outcome
        if position.quantity <= target:
            return position
        flipped = held is not None and held.side is not position.side
        symbol = position.symbol
        if self.book.intents_for(symbol) or self.working_unsettled(symbol):
            self._await_orders(position, target, held if flipped else None)
            return position
        opened = held.quantity if held is not None and flipped else ZERO  # a flip's new side
        return self._external_exit(position, held, target, opened, closer)

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

    def _cover_held(self, held: ExchangePosition, entry: Intent | None = None) -> None:
        """A stop for what the exchange holds, as it would be adopted (`_adoptable`)."""
        other = self._adoptable(held, entry, *self._ours_on_exchange(held))
        mark = self.observation.marks.get(held.symbol)
        self.actions += stop_awaiting_orders(
            other, held.quantity, self.listed, mark, self.now, self.context
        )

    def _book_exit(self, position: Position, outcome: Outcome, at_most: Decimal) -> Position | None:
        execution = outcome.execution
        price, reason = self._exit_terms(position, outcome)
        quantity = min(execution.quantity, at_most)
        booked = reduced(position, quantity, price, execution.fee_usdt, reason, self.now)
        cid = execution.order.client_order_id
        if isinstance(booked, TradeDraft):
            ours = ClosedBy(cid, price, reason)
            waits = await_parts(self.book, position, execution.fee_usdt, ours, self.now)
            if waits is None:
                self._closed(booked)
            else:
                self.notes.append(waits)
            return None
        last = LastExit.of(cid, reason, price, outcome.fills)
        if last is not None:
            self.last_exits[position.symbol] = last
        return booked

    def _exit_terms(self, position: Position, outcome: Outcome) -> tuple[Decimal, ExitReason]:
        """The price and reason an exit of ours is booked at."""
        execution = outcome.execution
        price = execution.price or self.observation.marks.get(position.symbol)
        reason = exit_reason(position, execution.order, outcome.intent, self.context.monitor)
        return price or position.stop_price, reason

    def _read_again_first(self, exits: list[Outcome]) -> bool:
        """Whether an exit among `exits` may have filled after the positions were read (not
        `reflected`): the positions are read again first (`Plan.unreflected`)."""
        ids = (o.execution.order.client_order_id for o in exits)
        late = [cid for cid in ids if cid not in self.reflected]
        self.unreflected += late
        return bool(late)

    def _left_unexplained(self, position: Position, found: ExternalExecution) -> bool:
        """Whether trades in the window not ours are left beside those `found` took: a
        replay from the position as booked is tried first (its longest run:
        keeper/round_trip.py), `found` booked where none shows what is held."""
        fills = self.observation.account_fills.get(position.symbol, ())
        return unexplained_beside(fills, found.trade_ids, self.observation.trade_ids_read())

    def _external_exit(
        self,
        position: Position,
        held: ExchangePosition | None,
        target: Decimal,
        opened: Decimal,
        closer: Outcome | None = None,
    ) -> Position | None:
        """Book what left the position with no order of ours: at the account's own trades
        when they show it, else at the mark (keeper/external.py); `opened`: what the exchange
        now holds on the other side (a flip). `closer`: an exit of ours booked this tick that
        ran out of position (`_ran_out`): it came after this reduction, so a trade it closes
        is booked at its price and reason, not the person's (was: MANUAL, found by the
        campaign with a person trading by hand, 2026-12-03). A close whose trades could not
        be read awaits them even when the mark reads (`_awaits_trades`), also where an exit
        of ours closed its rest (the trade then takes our exit's price and reason, the
        person's part their own trades': `ClosedBy`; was: that part at the mark, seed
        40797). Trades that do not add up
        are replayed before the mark is taken (keeper/round_trip_settle.py)."""
        quantity = position.quantity - target
        found, why = self._account_execution(position, quantity, opened)
        if closer is None and (found is None or self._left_unexplained(position, found)):
            replayed, after = self._replayed_exit(position, held)
            if replayed:
                return after
        reason, unread_at_mark = ExitReason.MANUAL, False
        if found is not None:
            price, fee, how, reason = self._terms_found(position.symbol, found)
            self.opened_fees[position.symbol] = found.opened_fee_usdt
        else:
            mark = self.observation.marks.get(position.symbol)
            ours = closer.execution.price if closer is not None else None
            if (mark is None and ours is None) or self._awaits_trades(position, target):
                last = self._closed_by_ours(position, closer, None)
                closed_by = ClosedBy(*last) if last is not None else None
                return self._await_price(position, target, opened, why, mark, closed_by)
            price, fee = mark or ours or ZERO, ZERO
            how = f"the mark {price}{why}"
            unread_at_mark = mark is not None and position.symbol in self.observation.account_unread
            if mark is None and closer is not None:
                cid = closer.execution.order.client_order_id
                how = f"the price of our {cid} {price} (no mark read{why})"
        detail = (
            f"{position.side} {quantity} gone from the exchange with no order of ours to "
            f"explain it; booked at {how}"
        )
        booked = reduced(position, quantity, price, fee, reason, self.now)
        ours_last = self._closed_by_ours(position, closer, found)
        if ours_last is not None and isinstance(booked, TradeDraft):
            cid, price, reason = ours_last
            detail += f"; before our {cid}, which closed the rest: the trade's exit"
            booked = replace(booked, exit_price=price, reason=reason)
        if isinstance(booked, TradeDraft):
            self.notes.append(Note("position_closed_externally", position.symbol, detail, True))
            self._closed(booked)
            return None
        if unread_at_mark:  # a part: amended once its trades are read (keeper/part_unread.py)
            remember_part(self.book, booked, quantity, price, self.now)
            detail += "; amended to its trades once they are read"
        self.notes.append(Note("position_closed_externally", position.symbol, detail, True))
        return booked

    def _closed_by_ours(
        self, position: Position, closer: Outcome | None, found: ExternalExecution | None
    ) -> tuple[str, Decimal, ExitReason] | None:
        """The exit of ours that came after this reduction and took what it left: `closer`,
        booked this tick; else our last exit that left some of the position — booked this
        tick, or on an earlier one — when its trade came after every one of those `found` (a
        reduction by hand found only now: seed 30721, a market exit of ours capped by Binance
        to what a sell by hand left, booked from its answer or from a later lookup)."""
        if closer is not None:
            price, reason = self._exit_terms(position, closer)
            return closer.execution.order.client_order_id, price, reason
        symbol = position.symbol
        last = self.last_exits.get(symbol) or self.observation.last_exits.get(symbol)
        if last is None or found is None:
            return None
        read = self.observation.account_fills.get(symbol, ())
        theirs = [f for f in read if f.trade_id in found.trade_ids]
        if not theirs or not last.after(theirs):
            return None
        return last.client_order_id, last.price, last.reason

    def _closed(self, draft: TradeDraft) -> None:
        self.trades.append(draft)
        self.book.drop_position(draft.position.symbol)


def _other_side(position: Position, outcome: Outcome) -> bool:
    """An exit of ours whose side adds to `position` (reduce-only: it reduced another)."""
    return outcome.execution.order.side is not position.side.exit_order_side


def _ran_out(outcome: Outcome) -> bool:
    """A stop or take-profit of ours that executed less than its quantity: reduce-only, it
    ran out of position (Binance ends its market order EXPIRED with what it executed), so it
    took the last of it — any reduction not ours it was booked beside came before it."""
    order = outcome.execution.order
    return outcome.intent is None and 0 < outcome.execution.quantity < order.quantity


def _filled_for_all(position: Position, exits: list[Outcome]) -> bool:
    """Whether `exits` filled for all of `position`: something held after them is a position
    a person opened (or added to) on the symbol since — reduce-only, ours cannot have left any
    — maybe opened and flipped (the restart campaign, seed 40365: our stop filled, then an
    open and a flip by hand, all while the daemon was stopped; the short was adopted and the
    long never booked), replayed as `_other_side_exits` replays. Not while another order of
    ours is unsettled there (`_await_exits`)."""
    return bool(exits) and sum((o.execution.quantity for o in exits), ZERO) >= position.quantity
