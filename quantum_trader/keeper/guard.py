"""The last steps of a tick: each reconciled position managed at its mark and protected, and
our conditional orders where no position needs them released; and what a position adopted,
or not reconciled while the stream has not echoed our order, is protected by. Pure; a part
of `Planner` (keeper/planner.py), which holds the state these steps read and write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    ExchangePosition,
    ExchangeSnapshot,
    MarketRules,
    Order,
    OrderKind,
    Position,
    PositionEvent,
)
from quantum_trader.keeper.book import EntryLimit, Intent
from quantum_trader.keeper.booking import opened_position
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.cover import clear_of_mark, stop_while_unechoed
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.exit_stops import guarded_exits
from quantum_trader.keeper.fill_check import limit_exits
from quantum_trader.keeper.ids import Purpose, is_ours
from quantum_trader.keeper.manage import manage
from quantum_trader.keeper.plan import Context, Note, Observation
from quantum_trader.keeper.protect import (
    OrderAction,
    PlaceTarget,
    SendExit,
    StopWhy,
    as_of,
    closing_stop,
    entry_target,
    on_tick_grid,
    plan_release,
    protection_actions,
)
from quantum_trader.keeper.target import target_again


class Protecting:
    """The steps; the attributes are the planner's (set in `Planner.__init__`)."""

    book: Draft
    observation: Observation
    snapshot: ExchangeSnapshot
    now: datetime
    context: Context
    checks: ProtectionChecks
    consistent: set[str]
    entered: set[str]  # an entry of ours settled into a position this tick (planner.py)
    listed: dict[str, list[Order]]
    events: list[PositionEvent]
    actions: list[OrderAction]
    notes: list[Note]
    working_unsettled: Callable[[str], list[str]]  # settle.py's, through the planner

    def manage_and_protect(self) -> None:
        for symbol in sorted(self.consistent):
            position = self.book.positions.get(symbol)
            if position is None:
                continue
            listed = self.listed.get(symbol, [])
            # An exit of ours in flight, or its own stop firing (not stuck: protect.py).
            exiting = (
                any(i.purpose is Purpose.EXIT for i in self.book.intents_for(symbol))
                or closing_stop(position, listed, self.now, self.context.monitor) is not None
            )
            actions: list[SendExit] = []
            mark = self.observation.marks.get(symbol)
            limit = self._limit(position)
            if not exiting and limit is not None:  # a fill far from its plan (fill_check.py)
                actions = limit_exits(position, limit)
            elif not exiting:  # else an exit of ours is in flight: a later tick books it
                position, actions, events = manage(position, mark, self.now, self.context)
                self.book.put(position)
                self.events += events
            rules = self.context.rules.get(symbol)
            tick_size = rules.tick_size if rules else None
            check = self.checks.check(position, listed, tick_size)
            check = as_of(check, self.now, self.context.monitor)
            if check.needs is StopWhy.STUCK:
                detail = "its stop met the trigger but is still open: another goes beside it"
                self.notes.append(Note("stop_stuck_triggering", symbol, detail, True))
            if actions:  # exits now, covered (exit_stops.py); the stop is resized once booked
                gap = self.context.keeper.refused_exit_stop_gap_pct
                planned = guarded_exits(position, check, actions, mark, tick_size, gap)
            else:
                cover = protection_actions(position, check, self.now, self.context.monitor)
                planned = clear_of_mark(cover, mark if exiting else None, self.context)
            if symbol in self.entered and not exiting:
                planned = _with_target(planned, entry_target(position, planned))
            else:  # last: the stop goes first (keeper/target.py)
                planned = [*planned, *self._target_again(position, planned, mark, rules)]
            self.actions += planned

    def _unsettled(self, symbol: str) -> bool:
        """An order of ours on `symbol` whose outcome is unknown: in flight, or a stop or
        take-profit that may have filled (settle.working_unsettled); the tick that settles it
        decides what the position still needs."""
        return bool(self.book.intents_for(symbol) or self.working_unsettled(symbol))

    def _target_again(
        self,
        position: Position,
        planned: Sequence[OrderAction],
        mark: Decimal | None,
        rules: MarketRules | None,
    ) -> list[PlaceTarget]:
        """The take-profit `position` lacks (keeper/target.py), none while an order of ours
        on the symbol is unsettled; said once an episode: not again while a refusal is
        retried."""
        symbol, monitor = position.symbol, self.context.monitor
        refused = self.book.targets_refused.get(symbol)
        listed = self.listed.get(symbol, [])
        again = target_again(position, listed, planned, mark, refused, self.now, monitor, rules)
        if not again or self._unsettled(symbol):
            return []
        if refused is None:
            place = again[0]
            detail = (
                f"no take-profit of ours: placing one again, {place.quantity} at {place.trigger}"
            )
            self.notes.append(Note("take_profit_missing", symbol, detail, warning=True))
        return again

    def _limit(self, position: Position) -> EntryLimit | None:
        """The most `position` may hold after a fill far from its plan (keeper/fill_check.py),
        None once it holds no more (then forgotten: a later addition by hand is not sold)."""
        limit = self.book.limits.get(position.symbol)
        if limit is not None and 0 < position.quantity <= limit.quantity:
            del self.book.limits[position.symbol]
            return None
        return limit

    def release_orphans(self) -> None:
        """Cancel our conditional orders on symbols with no position and no unsettled order."""
        if self.listed.keys() <= self.book.positions.keys():
            return  # every listed symbol holds a position
        busy = set(self.book.positions) | {i.symbol for i in self.book.intents.values()}
        for symbol in sorted(self.listed.keys() - busy):
            self.actions += plan_release(symbol, self.listed[symbol])

    # -- what an adopted or unechoed position is protected by -------------------------------

    def latest_entry(
        self, held: ExchangePosition, settled: Sequence[Intent | None]
    ) -> Intent | None:
        """The newest entry of ours with a plan on `held`'s symbol and side, among those
        `settled` this tick and those in flight: what the position the exchange now holds
        was opened by. Not one on the other side: a buy of ours in flight does not open a
        short (the hand-trading campaign, seed 32932: a person's short, opened while our
        long's entry was unanswered, was booked with the long's plan — its stop mirrored,
        its target "passed" — and closed at market by us at once)."""
        candidates = [i for i in settled if i is not None]
        candidates += [i for i in self.book.intents_for(held.symbol) if i.purpose is Purpose.ENTRY]
        opening = held.side.exit_order_side
        fits = [i for i in candidates if i.plan is not None and i.order.side is not opening]
        return max(fits, key=lambda i: i.sent_at, default=None)

    def _cover_unechoed(self, symbol: str) -> None:
        """Not reconciled from the stream yet, but protected (cover.stop_while_unechoed)."""
        position = self.book.positions.get(symbol)
        if position is not None:
            mark, reported = self.observation.marks.get(symbol), self.snapshot.orders
            self.actions += stop_while_unechoed(
                position, self.book.working, self.listed, reported, mark, self.now, self.context
            )

    def _adoptable(
        self,
        held: ExchangePosition,
        entry: Intent | None,
        stop: Order | None,
        target: Order | None,
        fees_usdt: Decimal = ZERO,
    ) -> Position:
        """The position the keeper adopts for `held`: protected by `stop`, a stop of ours
        already on the exchange, else by `entry`'s plan, else the default
        (booking.opened_position)."""
        adopted = opened_position(
            held,
            entry.plan if entry is not None else None,
            entry.client_order_id if entry is not None else None,
            entry.sent_at if entry is not None else self.now,
            fees_usdt,
            self.context.keeper,
            stop,
            target,
        )
        return on_tick_grid(adopted, self.context.rules.get(held.symbol))

    def _ours_on_exchange(self, held: ExchangePosition) -> tuple[Order | None, Order | None]:
        mine = [
            o
            for o in self.listed.get(held.symbol, ())
            if o.side is held.side.exit_order_side and is_ours(o.client_order_id) and o.reduce_only
        ]
        stop = next((o for o in mine if o.kind is OrderKind.STOP_MARKET), None)
        target = next((o for o in mine if o.kind is OrderKind.TAKE_PROFIT_MARKET), None)
        return stop, target


def _with_target(planned: list[OrderAction], target: list[PlaceTarget]) -> list[OrderAction]:
    """`planned` with `target` after its stop and before its exits, as an entry booked from
    its answer has them (keeper/answer.py)."""
    first_exit = next((i for i, a in enumerate(planned) if isinstance(a, SendExit)), len(planned))
    return [*planned[:first_exit], *target, *planned[first_exit:]]
