"""The steps of a tick that book what left a position: our exits that ended with something
filled, booked at their own price (a fill the exchange's positions do not show yet waits, up to
a grace period), and a reduction no order of ours explains (`_external_exit`: the account's
trades, keeper/external_settle.py; a replay, keeper/round_trip_settle.py; else the mark).
Exits booked with the trades by hand around them, and the cover while an unsettled order of
ours may explain a reduction, are keeper/exit_replay_settle.py's. Pure; a part of `Planner`
(keeper/planner.py), which holds the state these steps read and write, and settles the orders
whose `Outcome` they book.
"""

from __future__ import annotations

from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    ExchangePosition,
    ExitReason,
    Position,
)
from quantum_trader.keeper.booking import TradeDraft, exit_reason, reduced
from quantum_trader.keeper.exit_replay_settle import ExitReplaySettling, Outcome
from quantum_trader.keeper.external import ExternalExecution, unexplained_beside
from quantum_trader.keeper.external_saved import LastExit
from quantum_trader.keeper.part_settle import await_parts
from quantum_trader.keeper.part_settle import remember as remember_part
from quantum_trader.keeper.plan import Note
from quantum_trader.keeper.unpriced import ClosedBy
from quantum_trader.record import replace


class ReductionSettling(ExitReplaySettling):
    """The steps; the attributes are the planner's (set in `Planner.__init__`)."""

    opened_fees: dict[str, Decimal]

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
        finished = execution.order.updated_at if outcome.unread else None
        last = LastExit.of(cid, reason, price, outcome.fills, finished)
        if last is not None:
            self.last_exits[position.symbol] = last
        return booked

    def _exit_terms(self, position: Position, outcome: Outcome) -> tuple[Decimal, ExitReason]:
        """The price and reason an exit of ours is booked at."""
        execution = outcome.execution
        price = execution.price or self.observation.marks.get(position.symbol)
        reason = exit_reason(position, execution.order, outcome.intent, self.context.monitor)
        return price or position.stop_price, reason

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
        last = self._last_exit_after(position.symbol, found.trade_ids) if found else None
        return (last.client_order_id, last.price, last.reason) if last is not None else None

    def _closed(self, draft: TradeDraft) -> None:
        self.trades.append(draft)
        self.book.drop_position(draft.position.symbol)


def _ran_out(outcome: Outcome) -> bool:
    """A stop or take-profit of ours that executed less than its quantity: reduce-only, it
    ran out of position (Binance ends its market order EXPIRED with what it executed), so it
    took the last of it — any reduction not ours it was booked beside came before it."""
    order = outcome.execution.order
    return outcome.intent is None and 0 < outcome.execution.quantity < order.quantity
