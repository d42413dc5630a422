"""The step of a tick about a position held as booked at another entry price: traded by hand
since the last look (keeper/round_trip.py says how it is seen and replayed). Pure; a part of
`Planner` (keeper/planner.py), which holds the state it reads and writes.

The first plan of the tick notes it (`ENTRY_MOVED`, one of external.py's `EXTERNAL_NOTES`):
the keeper reads the account's trades and plans again, as for any reduction with no order of
ours. The second books what the trades show, as a flip by hand is booked: the booked
position's reductions and close at their trades' price and fee, reason MANUAL (or the
exchange's own liquidation: keeper/forced.py); each position the person opened and closed in
between as a trade of its own; the position held now adopted at Binance's entry with the
default stop (booking.opened_position: not our old stop, placed for the old entry — the
protection step places the new one, then cancels the old), or the booked one kept, its entry
now Binance's. Trades that do not show it are said once: the entry price is remembered
(`Book.entries_seen`) and not looked at again until it moves once more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from quantum_trader.domain import ZERO, ExchangePosition, ExitReason, Fill, Order, Position
from quantum_trader.keeper.book import Intent
from quantum_trader.keeper.booking import TradeDraft, exit_reason, opened_position
from quantum_trader.keeper.external_settle import ExternalSettling
from quantum_trader.keeper.plan import Note
from quantum_trader.keeper.protect import on_tick_grid
from quantum_trader.keeper.round_trip import Leg, Replay, entry_moved, replay
from quantum_trader.record import replace

ENTRY_MOVED = "entry_price_moved"
ENTRY_UNEXPLAINED = "entry_price_moved_unexplained"

# A trade of an exit of ours in a replay (keeper/exit_replay_settle.py `_other_side_exits`): its
# order and intent, by trade id; the leg it closed takes the order's reason.
Closers = Mapping[str, tuple[Order, Intent | None]]


class RoundTripSettling(ExternalSettling):
    """The step; the attributes are the planner's (set in `Planner.__init__`)."""

    def _entry_moved(self, position: Position, held: ExchangePosition) -> bool:
        """Held as booked at another entry, not one said already to be unexplained."""
        if self.book.entries_seen.get(position.symbol) == held.entry_price:
            return False
        return entry_moved(position, held, self.context.rules.get(position.symbol))

    def _traded_between_looks(
        self, position: Position, held: ExchangePosition, reduced_now: bool
    ) -> Position | None:
        """`position` as the tick leaves it, held as `held`: a round trip by hand booked
        when the exchange's entry moved, and no order of ours on the symbol is in flight (it
        may explain it: a later tick sees). `reduced_now`: this tick booked a reduction with
        no order of ours (external.py): the trades had their say, and where they showed
        the position reopened by hand, the exchange's entry is the person's — remembered, not
        replayed from a position the books took at the mark."""
        if not self._entry_moved(position, held):
            return position
        if reduced_now:
            self.book.entries_seen[position.symbol] = held.entry_price
            return position
        symbol = position.symbol
        if self.book.intents_for(symbol) or self.working_unsettled(symbol):
            self.book.entries_moved[symbol] = held.entry_price  # for an exit of ours first
            return position
        self.book.entries_moved.pop(symbol, None)
        return self._round_trip(position, held)

    if TYPE_CHECKING:  # OrderSettling's (keeper/settle.py), beside this in the planner

        def working_unsettled(self, symbol: str) -> list[str]: ...

    def _round_trip(self, position: Position, held: ExchangePosition) -> Position | None:
        """Book what the account's trades show happened to `position`, held now as `held`:
        the position held now (None: none of ours, as booked)."""
        symbol, seen = position.symbol, self.observation
        what = (
            f"{held.side} {held.quantity} held as booked but at entry {held.entry_price} on the "
            f"exchange, {position.entry_price} in the books: traded by hand since the last look"
        )
        if symbol in seen.account_unread:
            what += "; the account's trades could not be read: kept as booked, read next tick"
            self.notes.append(Note(ENTRY_MOVED, symbol, what, warning=True))
            return position
        fills = seen.account_fills.get(symbol)
        if fills is None:  # the keeper reads them and plans again
            self.notes.append(Note(ENTRY_MOVED, symbol, f"{what}; the account's trades are read"))
            return position
        found = self._replay(position, held, fills)
        if found is None:
            self.book.entries_seen[symbol] = held.entry_price
            what += (
                "; the account's trades do not show how (one not listed yet, or older than "
                "the window): kept as booked, its entry and PnL the books'; not looked at "
                "again until the exchange's entry moves once more"
            )
            self.notes.append(Note(ENTRY_UNEXPLAINED, symbol, what, warning=True))
            return position
        self._took(symbol, found.trade_ids)
        self.book.entries_seen.pop(symbol, None)
        return self._book_replay(position, held, found)

    def _replayed_exit(
        self, position: Position, held: ExchangePosition | None
    ) -> tuple[bool, Position | None]:
        """A change the newest trades do not add up to (external.py), replayed from the
        position as booked: a flip by hand followed, before the keeper saw it, by a reduction,
        a close or a flip back (the hand-trading campaign's seed 30102: booked at the mark).
        (True, the position held now) when the trades show it; (False, None) when they were
        not read, or an order of ours on the symbol has unread fills (its trades cannot be
        told apart), or no run of them does."""
        symbol, seen = position.symbol, self.observation
        fills = seen.account_fills.get(symbol)
        unread = seen.fills_unread
        if any(o.symbol == symbol and o.client_order_id in unread for o, _ in self.records):
            return False, None
        if fills is None or symbol in seen.account_unread:
            return False, None
        found = self._replay(position, held, fills)
        if found is None:
            return False, None
        self._took(symbol, found.trade_ids)
        return True, self._book_replay(position, held, found)

    def _replay(
        self,
        position: Position,
        held: ExchangePosition | None,
        fills: Sequence[Fill],
        ours: Sequence[Fill] = (),
    ) -> Replay | None:
        """`replay` of the account's trades without this tick's fills of our orders (not
        recorded yet, so not left out when the trades were read), but with `ours`: the
        fills of exits of ours the replay books (`_other_side_exits`)."""
        read = self.observation.trade_ids_read()
        trades = [f for f in fills if f.trade_id not in read] + list(ours)
        return replay(position, held, trades, self.context.rules.get(position.symbol))

    def _book_replay(
        self,
        position: Position,
        held: ExchangePosition | None,
        found: Replay,
        closers: Closers | None = None,
    ) -> Position | None:
        """The replay's bookings: ours from its leg (what the person added to it before
        closing it counted: its quantity, average entry and PnL), those in between, and the
        position held now. A leg a trade of `closers` closed takes that exit's reason."""
        closers = closers or {}
        symbol, ours = position.symbol, found.ours
        after = replace(
            position,
            quantity=ours.quantity,
            entry_price=ours.entry_price,
            initial_quantity=position.initial_quantity + ours.opened,
            realized_pnl_usdt=position.realized_pnl_usdt + ours.realized_usdt,
            fees_usdt=position.fees_usdt + ours.fees_usdt,
        )
        price = ours.exit_price_by(_orders(closers)) if ours.reduced else position.entry_price
        how = f"booked at the account's trades' price {price}, fees {ours.fees_usdt} (replayed)"
        if ours.quantity == 0:
            closer = closers.get(ours.last_reduced_by)
            last = self._last_exit_after(symbol, ours.trade_ids) if closer is None else None
            if last is not None:  # our exit booked before the replay came after its trades
                reason, price = last.reason, last.price
                detail = (
                    f"{position.side} {position.quantity} closed by our {last.client_order_id} "
                    f"after trades by hand, the trade's exit; {how}"
                )
            elif closer is None:
                reason = self._forced(symbol, frozenset(ours.trade_ids))
                detail = f"{position.side} {position.quantity} closed with no order of ours; {how}"
            else:
                reason = exit_reason(position, *closer, self.context.monitor)
                cid = closer[0].client_order_id
                detail = (
                    f"{position.side} {position.quantity} closed by our {cid} after trades by "
                    f"hand; {how}"
                )
            if ours.opened:
                detail += f"; {ours.opened} added to it by hand before"
            self.notes.append(Note("position_closed_externally", symbol, detail, True))
            self.trades.append(TradeDraft(after, price, reason, self.now))
            self.book.drop_position(symbol)
        for leg in found.between:
            self._between(symbol, position.leverage, leg, closers)
        if held is None:
            return None
        if found.now_held is None:  # ours, reduced and added to by hand
            detail = f"{ours.reduced} of it reduced, {how}; {ours.opened} added by hand"
            self.notes.append(Note("position_traded_by_hand", symbol, detail, True))
            return replace(after, entry_price=held.entry_price)
        return self._adopt(held, found.now_held)

    def _between(self, symbol: str, leverage: int, leg: Leg, closers: Closers) -> None:
        """A position the person opened and closed between two looks: a trade of its own;
        closed by an exit of ours when its last trade is one of `closers` (a stop placed for
        the side the books held then: its reason, SL_HIT for a stop), else by hand."""
        closer = closers.get(leg.last_reduced_by)
        opened = ExchangePosition(symbol, leg.side, leg.opened, leg.entry_price, leverage)
        start = opened_position(opened, None, None, leg.opened_at, ZERO, self.context.keeper)
        closed = replace(
            start, quantity=ZERO, realized_pnl_usdt=leg.realized_usdt, fees_usdt=leg.fees_usdt
        )
        assert leg.closed_at is not None
        reason, how = ExitReason.MANUAL, "by hand"
        if closer is not None:
            reason = exit_reason(start, *closer, self.context.monitor)
            how = f"by our {closer[0].client_order_id} ({reason})"
        price = leg.exit_price_by(_orders(closers))
        self.trades.append(TradeDraft(closed, price, reason, leg.closed_at))
        detail = (
            f"{leg.side} {leg.opened} opened by hand and closed {how} between two looks, "
            f"booked at the account's trades: entry {leg.entry_price}, exit {price}, "
            f"fees {leg.fees_usdt}"
        )
        self.notes.append(Note("position_closed_externally", symbol, detail, True))

    def _adopt(self, held: ExchangePosition, leg: Leg) -> Position:
        """The position the person's trades opened, held now: adopted at Binance's entry with
        the default stop, as the other side of a flip by hand is, with its trades' fees."""
        keeper, rules = self.context.keeper, self.context.rules.get(held.symbol)
        adopted = opened_position(held, None, None, self.now, leg.fees_usdt, keeper)
        adopted = on_tick_grid(adopted, rules)
        if leg.reduced:
            adopted = replace(
                adopted, realized_pnl_usdt=leg.realized_usdt, initial_quantity=leg.opened
            )
        detail = f"{held.side} {held.quantity} @ {held.entry_price}, stop {adopted.stop_price}"
        self.notes.append(Note("position_adopted", held.symbol, f"{detail} (default)", True))
        return adopted


def _orders(closers: Closers) -> dict[str, str]:
    """Each trade of an exit of ours in a replay → its order's client id."""
    return {trade_id: order.client_order_id for trade_id, (order, _) in closers.items()}
