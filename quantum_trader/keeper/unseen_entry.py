"""The step of a tick about an entry of ours that filled and what is held when a tick first
settles it: a person may have traded the position away before any read of ours booked it.
Pure; a part of `Planner` (keeper/planner.py).

The suite's hand-trading seed 30006 (session 60): our long's answer came late, a person
flipped the long to a short, and the tick that settled our entry FILLED read the short: it
was adopted as a person's ("(default)"), our long never booked ("filled but not reflected"
once the grace period ran out). A buy of ours that filled opened a long, whatever is held
when it is first read: it is booked from its fill (`opened_unseen`), and what is held now is
a reduction of it no order of ours explains — a close, a flip, a part — booked as one of a
booked position is (keeper/reduce_settle.py `_reduce`: the account's trades, else the mark).

And while such an entry is in flight, its outcome not known or its fills not read, a
position held on its other side is not adopted (`awaits_entry`): it may be what a person
made of our fill (was: adopted while our entry was unanswered, then the entry settled FILLED
beside it and was never booked). Nor is one on its side while the entry's lookup finds
nothing: the positions were read first, so what they hold is not its fill (was: booked as
our entry's fill — restart seed 40947). Its stop is placed meanwhile, as for a reduction
awaiting an order of ours; it is adopted once the entry settles with nothing filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from quantum_trader.domain import ZERO, ExchangePosition, Position
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.exit_replay_settle import Outcome
from quantum_trader.keeper.fill_check import check_fill
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Note
from quantum_trader.keeper.reduce_settle import ReductionSettling
from quantum_trader.record import replace

ADOPTION_AWAITS_ENTRY = "adoption_awaits_entry"


class UnseenEntrySettling(ReductionSettling):
    """The step; the attributes are the planner's (set in `Planner.__init__`)."""

    unseen_entries: set[str]  # symbols whose position an entry of ours opened unseen, this tick

    if TYPE_CHECKING:  # the planner's own (keeper/planner.py)

        def _addition(self, position: Position, added: Decimal) -> tuple[Decimal, str]: ...

    def opened_unseen(
        self, symbol: str, held: ExchangePosition | None, entries: Sequence[Outcome]
    ) -> tuple[Position | None, bool]:
        """The position an entry of ours among `entries` opened, booked from its fill, where
        `held` does not show it (nothing held, the other side, or less of its side); and
        whether the symbol waits (its fill may come after the positions were read: they are
        read again first, what is held covered meanwhile). (None, False): the usual path."""
        outcome = next((o for o in entries if o.execution.quantity > 0), None)
        intent = outcome.intent if outcome is not None else None
        if outcome is None or intent is None or intent.plan is None:
            return None, False
        plan, execution, price = intent.plan, outcome.execution, outcome.execution.price
        if price is None:
            return None, False  # nothing to book it at: settled as before
        if held is not None and held.side is plan.side and held.quantity >= execution.quantity:
            return None, False  # held shows it: adopted with its plan (`_grow`)
        if self._read_again_first([outcome]):
            if held is not None:
                self._cover_held(held)
            return None, True
        filled = ExchangePosition(symbol, plan.side, execution.quantity, price, plan.leverage)
        stop, target = self._ours_on_exchange(filled)
        position = self._adoptable(filled, intent, stop, target, execution.fee_usdt)
        for order in (stop, target):
            if order is not None:
                self.book.add_working(order)
        self._consume(outcome, booked=True)
        self.book.put(position)
        self.unseen_entries.add(symbol)
        holds = "nothing" if held is None else f"{held.side} {held.quantity}"
        detail = (
            f"{position.side} {execution.quantity} @ {execution.price} "
            f"({execution.order.status}), stop {position.stop_price}; {holds} held when first "
            "read: traded by hand before, booked as a reduction of it"
        )
        self.notes.append(Note("position_opened", symbol, detail, warning=True))
        limit, checked = check_fill(position, plan, self.context)
        if limit is not None:
            self.book.limits[symbol] = limit
        self.notes += checked
        return position, False

    def beside_our_fill(
        self, adopted: Position, held: ExchangePosition, entries: Sequence[Outcome]
    ) -> Position:
        """`adopted`, opened by an entry of ours among `entries` and held as `held`, with the
        fee of what a person added beside our fill (more held on its side than our entries
        executed) taken as a growth by hand's is (the restart campaign, seed 41021: our
        entry's answer lost, a person bought 0.489 a second before our 0.639 filled; the
        1.128 held was booked as our entry's, the person's fee in no booking — an answered
        entry's growth was booked so already)."""
        ours = sum((o.execution.quantity for o in entries if _opens(o, held)), ZERO)
        if not 0 < ours < held.quantity:
            return adopted
        fee, how = self._addition(adopted, held.quantity - ours)
        detail = f"{ours} → {held.quantity}: added by hand beside our entry's fill{how}"
        self.notes.append(Note("position_grown", held.symbol, detail, error=True))
        return replace(adopted, fees_usdt=adopted.fees_usdt + fee)

    def awaits_entry(self, held: ExchangePosition) -> bool:
        """Whether `held`, booked nowhere, waits for an entry of ours in flight (its stop
        placed meanwhile): one on its other side (it may be what a person made of our fill),
        or one on its side that this tick's lookup did not find (`_not_found`)."""
        sides = [
            (i, i.plan.side)
            for i in self.book.intents_for(held.symbol)
            if i.purpose is Purpose.ENTRY and i.plan is not None
        ]
        against = [i for i, side in sides if side is not held.side]
        unknown = [i for i, side in sides if side is held.side and self._not_found(i)]
        if not against and not unknown:
            return False
        ids = ", ".join(i.client_order_id for i in (against or unknown))
        why = (
            "on the other side unsettled: not adopted until it settles (a person may have "
            "flipped its fill)"
            if against
            else "on its side not found on the exchange after the positions were read: "
            "not its fill; not adopted until it settles (a person's, or ours accepted late)"
        )
        detail = f"{held.side} {held.quantity} @ {held.entry_price} held, our entry {ids} {why}"
        detail += ", its stop placed meanwhile"
        self.notes.append(Note(ADOPTION_AWAITS_ENTRY, held.symbol, detail))
        self._cover_held(held)
        return True

    def _not_found(self, intent: Intent) -> bool:
        """Whether this tick's lookup of `intent`'s order found nothing. The lookups follow
        the positions' read (keeper/keeper.py `_tick`), and Binance lists an order that
        traded, so a position read before cannot hold its fill (the restart campaign, seed
        40947: our short's entry answered 503 and never executed; a person's short opened
        just after was booked as our entry's fill — our plan, "kept as filled" at 1.6 times
        its size, the person's fee in no booking)."""
        found = self.observation.found
        return intent.client_order_id in found and found[intent.client_order_id] is None


def _opens(outcome: Outcome, held: ExchangePosition) -> bool:
    """An entry of ours on `held`'s side."""
    intent = outcome.intent
    return intent is not None and intent.plan is not None and intent.plan.side is held.side
