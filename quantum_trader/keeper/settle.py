"""The settling steps of a tick that touch no position's quantity: intents that ended with
nothing filled or were never accepted, placements found working, working orders that ended
unfilled or that the exchange forgot (keeper/plan.py says when each settles). Pure; a part of
`Planner` (keeper/planner.py), which holds the state these steps read and write."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from quantum_trader.domain import ExchangeSnapshot, Fill, Order, OrderStatus
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Context, Note, Observation, may_have_filled, state_of
from quantum_trader.keeper.protect import is_stuck
from quantum_trader.record import replace


class OrderSettling:
    """The settling steps; the attributes are the planner's (set in `Planner.__init__`)."""

    book: Draft
    snapshot: ExchangeSnapshot
    observation: Observation
    now: datetime
    context: Context
    listed_ids: Mapping[str, Order]  # the listed conditional orders by client order id
    notes: list[Note]
    records: list[tuple[Order, tuple[Fill, ...]]]

    @property
    def grace(self) -> timedelta:
        """How long after it was sent (or last updated) an order of ours may go unseen: made
        where read, by the steps a quiet tick skips, not at every plan."""
        return timedelta(seconds=self.context.keeper.unknown_order_final_s)

    def read(self, symbol: str) -> bool:
        """Whether the snapshot lists `symbol`'s open orders. One it does not (a REST read of
        that symbol alone failed: keeper/reads.py) is left as booked this tick: not
        reconciled, managed or protected, and no order of ours there looked up, placed,
        cancelled or settled as gone from a list never read."""
        return self.snapshot.lists_orders_of(symbol)

    def state(self, order_id: str) -> Order | None:
        return state_of(order_id, self.snapshot, self.observation.found)

    def record(self, order: Order, fills: tuple[Fill, ...] = ()) -> None:
        self.records.append((order, fills))

    def clear_echoes(self) -> None:
        echoed = [
            c
            for c, state in ((c, self.snapshot.orders.get(c)) for c in self.book.unechoed)
            if state is not None and state.status.is_final
        ]
        for client_order_id in echoed:
            del self.book.unechoed[client_order_id]

    def settle_unfilled(self) -> None:
        """Intents that ended with nothing filled, placements found working, and orders the
        exchange has not known for `unknown_order_final_s`."""
        for intent in list(self.book.intents.values()):
            cid = intent.client_order_id
            state = self.state(cid)
            if state is None:
                if cid in self.observation.found and self.observation.found[cid] is None:
                    self._maybe_never_accepted(intent)
            elif state.kind.is_conditional and state.status is OrderStatus.OPEN:
                self.book.drop_intent(cid)
                self.record(state)
                self._now_working(intent, state)
            elif not may_have_filled(state):
                self.book.drop_intent(cid)
                self.record(state)

    def _now_working(self, intent: Intent, state: Order) -> None:
        """A placement whose answer was lost turned out to be working on the exchange."""
        self.book.add_working(state)
        position = self.book.positions.get(intent.symbol)
        if position is None or state.side is not position.side.exit_order_side:
            return
        if intent.purpose is Purpose.STOP and state.quantity == position.quantity:
            self.book.put(replace(position, stop_order_id=state.client_order_id))
        elif intent.purpose is Purpose.TARGET and position.take_profit_order_id is None:
            self.book.put(replace(position, take_profit_order_id=state.client_order_id))

    def _maybe_never_accepted(self, intent: Intent) -> None:
        if self.now - intent.sent_at < self.grace:
            return
        pending = intent.order.status is OrderStatus.PENDING
        status = OrderStatus.REJECTED if pending else OrderStatus.EXPIRED
        detail = f"not on the exchange {self.grace.total_seconds():.0f} s after it was sent"
        self.book.drop_intent(intent.client_order_id)
        self.record(replace(intent.order, status=status, detail=detail, updated_at=self.now))
        self.notes.append(Note("order_never_accepted", intent.symbol, detail))

    def settle_gone_working(self) -> None:
        """Working orders of ours that ended without filling, or that the exchange forgot."""
        for order in list(self.book.working.values()):
            cid = order.client_order_id
            if cid in self.listed_ids:
                continue
            state = self.state(cid)
            if state is not None and state.status.is_final and not may_have_filled(state):
                self._gone(order, state.status)
                self.record(state)
            elif state is None and cid in self.observation.found:
                detail = "no longer known to the exchange"
                self._gone(order, detail)
                self.record(replace(order, status=OrderStatus.EXPIRED, detail=detail))

    def working_unsettled(self, symbol: str) -> list[str]:
        """Our stops and take-profits on `symbol` the exchange no longer lists and whose end
        it has not told (their lookup failed, or they ended filled and their fills are not
        read), or that met their trigger and are executing, not stuck (`is_stuck`): each may
        have reduced the position, so a reduction waits for them as for an unsettled order
        of ours (was: booked closed outside the program, MANUAL, on the tick the stop's
        lookup failed — the campaign with a person trading by hand, 2026-12-03). Bounded as
        for such orders: a lookup that answers settles them, a stop firing for good counts
        once stuck."""
        waiting = []
        for order in self.book.working_for(symbol):
            cid = order.client_order_id
            listed = self.listed_ids.get(cid)
            state = listed if listed is not None else self.state(cid)
            if state is None or state.status.is_final:
                waiting.append(cid)  # unknown, or filled with its fills unread
            elif state.triggered_at is not None and not is_stuck(
                state, self.now, self.context.monitor
            ):
                waiting.append(cid)  # executing
        return waiting

    def _gone(self, order: Order, how: str) -> None:
        """Drop a working order that ended unfilled. A position's own stop is never cancelled
        by us (a new one goes on first): it ended on the exchange (Binance's demo trading has
        cancelled stops a minute after placing them) or by hand, so say so — but a close-all
        one the exchange ended with the position it would have closed."""
        position = self.book.positions.get(order.symbol)
        # Binance ends a close-all order with its position (time in force GTE): not a loss.
        with_position = order.close_position and order.symbol not in self.snapshot.positions
        if (
            position is not None
            and position.stop_order_id == order.client_order_id
            and not with_position
        ):
            detail = f"{order.client_order_id} {how}, not by this program: a new stop goes on now"
            self.notes.append(Note("protective_stop_gone", order.symbol, detail, True))
        self.book.drop_working(order.client_order_id)
        self._forget_protection(order.symbol, order.client_order_id)

    def took_profit(self, order: Order) -> None:
        """A take-profit of ours executed (some or all): it stays its position's own, so no
        take-profit is placed after it (keeper/target.py) — what is left, a part added by
        hand, say, is the stop's and the stop maths'."""
        position = self.book.positions.get(order.symbol)
        if position is not None and order.side is position.side.exit_order_side:
            self.book.put(replace(position, take_profit_order_id=order.client_order_id))

    def _forget_protection(self, symbol: str, client_order_id: str) -> None:
        position = self.book.positions.get(symbol)
        if position is None:
            return
        if position.stop_order_id == client_order_id:
            position = replace(position, stop_order_id=None)
        if position.take_profit_order_id == client_order_id:
            position = replace(position, take_profit_order_id=None)
        self.book.put(position)
