"""The step of a tick about a symbol the books held nothing on, where the last whole tick read
it flat (`Observation.flat_at`): what the account's trades since did, replayed from flat
(keeper/round_trip.py `replay_from_flat`). Pure; a part of `Planner` (keeper/planner.py).

A person may open a position there and flip it, or close it and open again, within one look
(hand-trading seed 30002: a long and its flip 14 s apart within one look stalled by 503s):
the look finds only what is held now, and the first round trip was never booked. Or an old
stop of ours, resting after the position it protected was closed by hand (its cancel
failed), closes a position the person opened in the same side meanwhile: it was recorded
as filled with no position of ours (`order_settled_unreflected`) and the person's round
trip never booked. Each position the trades (and such exits of ours) opened and closed is
now a trade of its own — closed by hand (MANUAL) or by our exit (its reason) — and the one
held now is adopted with its own trades' fees and what was realized of it; the trades read
before the flat look that it did not take are left out of its later reads.

A round trip where nothing is held after it (flat at the look before and now) is booked
where a reason to read the trades exists: the second look after a start, for the last run's
reads, and within a run a user-data event about the symbol since the look before
(`settle_flat_again`, keeper/flat_reads.py).

Nothing is replayed where no look ever read the symbol flat (a daemon's very first start;
after a restart the last run's saved reads bound it: keeper/flat_reads.py), while an order
of ours on the symbol is in flight or its fills unread (its trades cannot be told apart),
or when the trades are not read, cannot be, or do not show it: the position is adopted, or
our exit recorded, as before, and the line says so. The adoption is never held
back: a plan that needs the trades adopts, and the keeper reads them and plans again
(keeper/external.py `unread_external_exits`).
"""

from __future__ import annotations

from datetime import timedelta

from quantum_trader.domain import ExchangePosition, Fill, Order, SnapshotSource
from quantum_trader.keeper.before_entry import settles_now
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.exit_replay_settle import Outcome
from quantum_trader.keeper.external import ROUND_TRIPS_BETWEEN_LOOKS, ROUND_TRIPS_WHILE_STOPPED
from quantum_trader.keeper.plan import Note
from quantum_trader.keeper.reduce_settle import ReductionSettling
from quantum_trader.keeper.round_trip import EARLIER_MOST, Leg, replay_from_flat

# Why a position was adopted with no replay: its trades unread; its fee is read later.
TRADES_UNREAD = (
    "; the account's trades could not be read: its fee booked once they are, a round trip "
    "before it not booked"
)


class FromFlatSettling(ReductionSettling):
    """The step; the attributes are the planner's (set in `Planner.__init__`)."""

    flat_kept: set[str]  # `Plan.flat_kept`

    def _from_flat(
        self, symbol: str, held: ExchangePosition | None, exits: list[Outcome]
    ) -> tuple[Leg | None, str]:
        """Replay from flat what happened on `symbol` since the last look read it flat, with
        `exits` (our stops and take-profits on it that ended filled, fills read) among the
        trades: each position opened and closed booked, `exits` settled. The leg of what is
        held now (`held`; None: nothing is), or None and the adoption line's words on why
        not (`exits` then left as they are: settle_leftovers records them)."""
        trades, why_not = self._trades_since_flat(symbol, held, exits)
        if trades is None:
            return None, why_not
        flat = self.observation.flat_at[symbol]
        earlier = 0 if flat.restored else EARLIER_MOST  # a restart forgot what it booked
        found = replay_from_flat(held, trades, flat.at, self.context.rules.get(symbol), earlier)
        if found is None:
            return None, (
                f"; the account's {len(trades)} trade(s) since it was read flat do not show how "
                "it was opened (one not listed yet): a round trip before it, if any, not booked"
            )
        closers: dict[str, tuple[Order, Intent | None]] = {}
        for outcome in exits:
            self._consume(outcome)
            for fill in outcome.fills:
                closers[fill.trade_id] = (outcome.execution.order, None)
        # Those before the flat read it did not take are not what is held now (an earlier
        # position's, or a round trip no look saw: the restart campaign, seed 40398, whose
        # trades a later replay of the position adopted here took in): left out from now on.
        before = frozenset(f.trade_id for f in trades if f.time < flat.at) - found.trade_ids
        self._took(symbol, found.trade_ids | before)
        leverage = held.leverage if held is not None else flat.leverage
        for leg in found.between:
            self._between(symbol, leverage, leg, closers)
        how = f"; by the account's {len(found.trade_ids)} trade(s) since it was read flat"
        if found.between:
            how += f", {len(found.between)} round trip(s) before it booked"
        return found.now_held, how

    def settle_flat_again(self) -> None:
        """The round trips a person made on a symbol the books hold nothing on, read flat at
        a look before and again now (`Observation.flat_again`): each a trade of its own,
        closed by hand, at its trades. While the daemon was stopped (the hand-trading
        campaign with a restart, seed 40016: an open, a reduction and a close by hand while
        stopped, never booked), or between two looks within a run (a long opened and closed
        before the keeper read the positions again: seed 40065's, then taken for an addition
        by a later close's replay). Only trades since the read: those before it are our own
        position's or were booked. Not yet where an order of ours is unsettled there (its
        trades cannot be told apart) or the trades are unread: the read is kept for a later
        tick (`Plan.flat_kept`; was: moved on to this tick, the round trip never booked —
        the restart campaign with round trips, seed 40467, by its log most likely our old
        stop's lookup refused by a 429 as a person opened and closed). Trades that do not
        take flat back to flat (one not listed yet: Binance lists a trade a while after it)
        are read again each tick until `keeper.external_close_mark_after_s` after the last
        of them (was: said, and never booked), then said, nothing booked; none at all listed
        since the read where the stream reported a trade there the read does not list, the
        same from that trade (`_none_listed`; was: never booked, nothing said)."""
        seen = self.observation
        for symbol, flat in sorted(seen.flat_again.items()):
            if symbol in seen.snapshot.positions or symbol in self.book.positions:
                continue
            fills = seen.account_fills.get(symbol)
            if self.book.intents_for(symbol) or self.working_unsettled(symbol) or fills is None:
                self.flat_kept.add(symbol)  # for a later tick (unread: said by the read)
                continue
            read = seen.trade_ids_read()  # the window reaches 5 min before the flat read
            trades = [f for f in fills if f.trade_id not in read and f.time >= flat.at]
            event = ROUND_TRIPS_WHILE_STOPPED if flat.restored else ROUND_TRIPS_BETWEEN_LOOKS
            if not trades:
                self._none_listed(symbol, event)
                continue
            rules = self.context.rules.get(symbol)
            found = replay_from_flat(None, trades, flat.at, rules, earlier=0)
            if found is None or not found.between:
                if self._unlisted_yet(trades):
                    self.flat_kept.add(symbol)  # one not listed yet, most likely: read again
                    continue
                when = "while the daemon was stopped" if flat.restored else "since it was read flat"
                detail = (
                    f"the account's {len(trades)} trade(s) on it {when} do not take it from "
                    f"flat back to flat, {self._listing_s.total_seconds():g} s after the last "
                    "(one never listed?): not booked"
                )
                self.notes.append(Note(event, symbol, detail, True))
                continue
            self._took(symbol, found.trade_ids)
            for leg in found.between:
                self._between(symbol, flat.leverage, leg, {})

    @property
    def _listing_s(self) -> timedelta:
        """How long after a person's trade one of the same round trip may still be unlisted."""
        return timedelta(seconds=self.context.keeper.external_close_mark_after_s)

    def _unlisted_yet(self, trades: list[Fill]) -> bool:
        """Whether `trades`, not back to flat on a symbol REST read flat, may lack one not
        listed yet. Read from the mirror, a position it missed is as likely: planned again
        from REST (keeper/recheck.py `rest_recheck_of_trades`, on the note)."""
        rest = self.snapshot.source is SnapshotSource.REST
        return rest and self.now - max(f.time for f in trades) < self._listing_s

    def _none_listed(self, symbol: str, event: str) -> None:
        """No trade listed since `symbol`'s flat read. Where the stream reported one there
        that the read does not list (`Observation.unlisted_fills`: a person's, by its id),
        read again until `_listing_s` after it (kept), then said, nothing booked."""
        unlisted = self.observation.unlisted_fills.get(symbol)
        if unlisted is None:
            return
        if self.now - unlisted < self._listing_s:
            self.flat_kept.add(symbol)
            return
        detail = (
            f"the user-data stream reported a trade on it at {unlisted.isoformat()} that the "
            f"account's trades do not list {self._listing_s.total_seconds():g} s after "
            "(never listed?): not booked"
        )
        self.notes.append(Note(event, symbol, detail, True))

    def settle_before_entry(self) -> None:
        """The round trips a person made on a symbol read flat at a look, before an entry of
        ours there (`Observation.before_entry`): the trades from the look to our entry's
        first fill, each round trip they show a trade of its own, closed by hand; what is
        left (a position our entry met) stays for the position's own reads. A read of them
        waiting for a settling, or kept across our entry (the restart campaign, seeds
        40288 and 40289: a read refused by a 503, then our entry booked: never booked), or
        told apart from the position's own trades by their read (`BeforeEntry.told_apart`:
        booked whatever the position does this tick)."""
        seen, rules = self.observation, self.context.rules
        for symbol, before in sorted(seen.before_entry.items()):
            if not before.told_apart and not settles_now(self.book, seen.snapshot, rules, symbol):
                continue
            found = replay_from_flat(
                None, before.trades, before.flat.at, rules.get(symbol), earlier=0
            )
            if found is None or not found.between:
                continue  # no round trip: a position our entry met, if anything
            self._took(symbol, found.trade_ids)
            for leg in found.between:
                self._between(symbol, before.flat.leverage, leg, {})

    def _trades_since_flat(
        self, symbol: str, held: ExchangePosition | None, exits: list[Outcome]
    ) -> tuple[list[Fill] | None, str]:
        """The trades to replay from flat — the account's since the flat look, this tick's
        fills of ours but `exits`' left out (not recorded yet when they were read) — or None
        and why not (empty words: not yet — the trades are read, or the positions read
        again, and the tick planned again)."""
        seen = self.observation
        if symbol not in seen.flat_at:
            return None, ""
        ids = {o.execution.order.client_order_id for o in exits}
        unsettled = [cid for cid in self.working_unsettled(symbol) if cid not in ids]
        if self.book.intents_for(symbol) or unsettled or any(o.unread for o in exits):
            return None, "; an order of ours on it is unsettled: not replayed"
        if held is not None and self._read_again_first(exits):
            return None, ""
        if symbol in seen.account_unread:  # its fee read later (keeper/planner.py)
            return None, TRADES_UNREAD
        fills = seen.account_fills.get(symbol)
        if fills is None:
            return None, ""  # the keeper reads them and plans again
        read = seen.trade_ids_read()
        ours = [f for o in exits for f in o.fills]
        return [f for f in fills if f.trade_id not in read] + ours, ""
