"""The steps of a tick about reductions no order of ours explains, priced from the account's
own trades (keeper/external.py): what those trades say, the reason (keeper/forced.py), the
trades taken, and a close with nothing to book it at, which waits for a price
(keeper/unpriced.py). Pure; a part of `Planner` (keeper/planner.py), which holds the state
these steps read and write."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import ZERO, ExitReason, Fill, Order, Position
from quantum_trader.keeper.booking import TradeDraft, reduced
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.external import (
    ACCOUNT_TRADES_SLACK,
    ExternalExecution,
    added_by_hand,
    external_execution,
)
from quantum_trader.keeper.external_saved import LastExit
from quantum_trader.keeper.forced import forced_reason
from quantum_trader.keeper.part_settle import PART_TRADES_READ, awaited
from quantum_trader.keeper.plan import Context, Note, Observation
from quantum_trader.keeper.unpriced import ClosedBy, UnpricedClose
from quantum_trader.record import replace

AWAITS_PRICE = "external_close_awaits_price"


class ExternalSettling:
    """The steps; the attributes are the planner's (set in `Planner.__init__`)."""

    book: Draft
    observation: Observation
    now: datetime
    context: Context
    notes: list[Note]
    records: list[tuple[Order, tuple[Fill, ...]]]
    trades: list[TradeDraft]
    reducing_trades: dict[str, frozenset[str]]
    last_exits: dict[str, LastExit]

    def _last_exit_after(self, symbol: str, trade_ids: Collection[str]) -> LastExit | None:
        """Our last exit that left some of the position on `symbol` — booked this tick, or
        on an earlier one — when it came after every one of the account's trades
        `trade_ids`: it closed what they left, so the trade exits at its terms (seed 30721; and
        in a replay, seed 33545)."""
        last = self.last_exits.get(symbol) or self.observation.last_exits.get(symbol)
        if last is None:
            return None
        read = self.observation.account_fills.get(symbol, ())
        theirs = [f for f in read if f.trade_id in trade_ids]
        return last if theirs and last.after(theirs) else None

    def _terms_found(
        self, symbol: str, found: ExternalExecution
    ) -> tuple[Decimal, Decimal, str, ExitReason]:
        """Price, fee, the line's words and the reason of a reduction the account's trades
        show (`found`), its trades taken."""
        price, fee = found.price, found.fee_usdt
        self._took(symbol, found.trade_ids)
        how = f"the price of the account's {found.trades} trade(s) {price}, fee {fee}"
        reason = self._forced(symbol, found.trade_ids)
        if reason is not ExitReason.MANUAL:
            how += f"; the exchange's own {reason} order (keeper/forced.py)"
        return price, fee, how, reason

    def _await_price(
        self,
        position: Position,
        target: Decimal,
        opened: Decimal,
        why: str,
        mark: Decimal | None = None,
        closed_by: ClosedBy | None = None,
    ) -> Position | None:
        """A reduction with no order of ours, and neither the account's trades nor a mark to
        book it at — or a close whose trades could not be read, `mark` read (a price no one
        traded at: planner.py `_awaits_trades`): a part waits with the position booked as it
        was (its stop covers what is held; the next tick books it), and so does a close on a
        symbol where another awaits its price (one a symbol: a flip's other side closed too);
        a close leaves the books now and its trade awaits a price (keeper/unpriced.py). Never
        at a price no one may have traded at (was: the stop's; with a mark read, the mark's).
        `closed_by`: an exit of ours that took the rest after it, the trade's exit."""
        symbol = position.symbol
        lacks = ": no mark read" if mark is None else f" but the mark {mark}"
        detail = (
            f"{position.side} {position.quantity - target} gone from the exchange with no "
            f"order of ours to explain it, and nothing to book it at{lacks}{why}"
        )
        if target > 0 or symbol in self.book.unpriced:  # a part, or a close beside another
            detail += "; the position stays booked as it was until a tick reads a price"
            self.notes.append(Note(AWAITS_PRICE, symbol, detail, warning=True))
            return position
        self.book.unpriced[symbol] = UnpricedClose(position, self.now, opened, closed_by, mark=mark)
        self.book.drop_position(symbol)
        bound = self.context.keeper.external_close_mark_after_s
        if closed_by is not None:
            detail += f"; our {closed_by.client_order_id} closed the rest"
        detail += (
            f"; the position is gone from the books and its trade awaits the account's trades "
            f"(read every tick), or a mark read {bound:g} s after now "
            "(keeper.external_close_mark_after_s); no entry on the symbol meanwhile"
        )
        self.notes.append(Note(AWAITS_PRICE, symbol, detail, warning=True))
        return None

    def _awaits_trades(self, position: Position, target: Decimal) -> bool:
        """Whether a reduction with no order of ours waits for the account's trades, which
        could not be read, though a mark reads: a close (a flip's too) does, as one with no
        mark does — the mark is not a traded price (was: booked at it at once, 1.5 %
        off the person's price in the hand-trading campaign, seed 30003). Not a part (the
        position stays held: booked at the mark now, so managed at once, and amended once its
        trades are read: keeper/part_unread.py), nor a close beside another awaiting
        its price (one a symbol: booked at the mark now)."""
        symbol = position.symbol
        return (
            symbol in self.observation.account_unread
            and target == 0
            and symbol not in self.book.unpriced
        )

    def settle_unpriced(self) -> None:
        """Book the closes awaiting their price (keeper/unpriced.py) a price is read for now:
        the account's trades that add up to it (up to the slack after it was seen: later ones
        are another position's), else, `external_close_mark_after_s` after it was seen, the
        mark; closed when it was seen."""
        seen = self.observation
        bound = timedelta(seconds=self.context.keeper.external_close_mark_after_s)
        for symbol, waiting in sorted(self.book.unpriced.items()):
            if waiting.ours:  # our close, awaiting only its parts' trades
                self._book_ours_after_parts(waiting, bound)
                continue
            if symbol not in seen.account_fills and symbol not in seen.account_unread:
                continue  # not read yet: the keeper reads them and plans again
            position, until = waiting.position, waiting.since + ACCOUNT_TRADES_SLACK
            found, why = self._account_execution(position, waiting.quantity, waiting.opened, until)
            waited = self.now - waiting.since
            mark = seen.marks.get(symbol)
            if found is not None:
                price, fee, how, reason = self._terms_found(symbol, found)
                self._add_opened_fee(waiting, found.opened_fee_usdt)
            elif waiting.mark is not None and waited >= bound:  # the mark nearest the close
                price, fee, reason = waiting.mark, ZERO, ExitReason.MANUAL
                how = f"the mark {price} read when the close was seen{why}"
            elif mark is not None and waited >= bound:
                price, fee, reason = mark, ZERO, ExitReason.MANUAL
                seconds = f"{waited.total_seconds():g}"
                how = f"the mark {mark} read {seconds} s after the close was seen{why}"
            else:
                continue
            del self.book.unpriced[symbol]
            booked = reduced(position, waiting.quantity, price, fee, reason, waiting.since)
            detail = (
                f"{position.side} {waiting.quantity} gone from the exchange with no order of "
                f"ours to explain it, seen {waiting.since.isoformat()} with nothing to book it "
                f"at; booked at {how}"
            )
            ours = waiting.closed_by
            if ours is not None and isinstance(booked, TradeDraft):
                booked = replace(booked, exit_price=ours.price, reason=ours.reason)
                detail += (
                    f"; before our {ours.client_order_id}, which closed the rest: the trade's exit"
                )
            if isinstance(booked, TradeDraft):  # always: the whole position left
                self.trades.append(booked)
            self.notes.append(Note("position_closed_externally", symbol, detail, True))

    def _book_ours_after_parts(self, waiting: UnpricedClose, bound: timedelta) -> None:
        """Our close awaiting the trades of parts reduced by hand before it
        (part_settle.py `await_parts`): booked at its own terms once they are read (this
        tick's `settle_parts` ran first) or after `bound`, with the mark's terms for those
        still unread."""
        symbol, ours = waiting.symbol, waiting.closed_by
        assert ours is not None  # a close of ours keeps its terms (unpriced.py)
        left = awaited(self.book, waiting.position)
        waited = self.now - waiting.since
        if left and waited < bound:
            return
        del self.book.unpriced[symbol]
        booked = reduced(waiting.position, waiting.quantity, ours.price, ZERO, ours.reason,
                         waiting.since)  # fmt: skip
        if isinstance(booked, TradeDraft):  # always: the whole position left
            self.trades.append(booked)
        if left:
            detail = (
                f"our {ours.client_order_id}'s trade booked without the trades of what a person "
                f"reduced before it, not read in {waited.total_seconds():g} s: the mark's terms "
                "kept for it, its fee not booked"
            )
            self.notes.append(Note(PART_TRADES_READ, symbol, detail, warning=True))

    def _add_opened_fee(self, waiting: UnpricedClose, fee: Decimal) -> None:
        """A flip's other side, adopted while the close awaited its price: its share of the
        fee of the trade that crossed zero."""
        held = self.book.positions.get(waiting.symbol)
        if fee and held is not None and held.side is not waiting.position.side:
            self.book.put(replace(held, fees_usdt=held.fees_usdt + fee))

    def _forced(self, symbol: str, trade_ids: frozenset[str]) -> ExitReason:
        """LIQUIDATION or ADL when the exchange's own orders made those trades, else MANUAL."""
        seen = self.observation
        forced = seen.force_orders.get(symbol, {})
        return forced_reason(trade_ids, seen.account_fills.get(symbol, ()), forced)

    def _took(self, symbol: str, trade_ids: frozenset[str]) -> None:
        """The account's trades a reduction of `symbol` was booked from: never again for one
        (keeper/external.py)."""
        if trade_ids:
            self.reducing_trades[symbol] = self.reducing_trades.get(symbol, frozenset()) | trade_ids

    def _not_theirs(self, symbol: str) -> set[str]:
        """The account's trades on `symbol` a person's reduction or growth cannot be: this
        tick's fills of ours, and those a booking of this tick took (`_took`)."""
        return self.observation.trade_ids_read() | self.reducing_trades.get(symbol, frozenset())

    def _account_execution(
        self,
        position: Position,
        quantity: Decimal,
        opened: Decimal,
        until: datetime | None = None,
    ) -> tuple[ExternalExecution | None, str]:
        """What the account's trades (made by `until`, when given) say took `quantity` off, or
        None and why not."""
        symbol, seen = position.symbol, self.observation
        if symbol in seen.account_unread:
            return None, " (the account's trades could not be read)"
        fills = seen.account_fills.get(symbol)
        if fills is None:
            return None, ""  # not read yet: the keeper reads them and plans again
        if until is not None:
            fills = [f for f in fills if f.time <= until]
        unread = seen.fills_unread
        if any(o.symbol == symbol and o.client_order_id in unread for o, _ in self.records):
            return None, " (an order of ours on it has unread fills: not told apart)"
        ours = self._not_theirs(symbol)
        found = external_execution(position, quantity, fills, ours, opened)
        # Trades after those that closed it are another position's (a flip's other side).
        until = max(f.time for f in fills if f.trade_id in found.trade_ids) if found else None
        if added_by_hand(position, fills, ours, until):
            return None, " (the account's trades show it added to by hand since it opened)"
        if found is None:
            flip = f" and the {opened} opened the other way" if opened else ""
            return None, f" (the account's trades do not add up to {quantity}{flip})"
        return found, ""
