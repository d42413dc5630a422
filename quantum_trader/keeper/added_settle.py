"""The step of a tick that takes the trades of growths by hand booked while they could not be
read (keeper/added_unread.py says why). Pure; the planner runs it before any position is
reconciled, so a close in the same tick finds the growth's trades taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import ZERO, Fill, Position
from quantum_trader.keeper.added_unread import UnreadAddition, of_position
from quantum_trader.keeper.book import TradeFees
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.external import ACCOUNT_TRADES_SLACK, added_trades
from quantum_trader.keeper.fees import amendment
from quantum_trader.keeper.plan import Context, Note, Observation
from quantum_trader.record import replace

GROWN_TRADES_READ = "position_grown_trades_read"


def settle_added_unread(
    book: Draft, seen: Observation, now: datetime, context: Context
) -> tuple[list[Note], dict[str, frozenset[str]], list[TradeFees]]:
    """The remembered growths whose trades this tick read and show: their fee booked in the
    position (or its close awaiting a price), or, where it closed first, its closed trade
    to amend by it; they forgotten; those given up after `keeper.fees_unread_give_up_s`, or
    whose position is gone with no trade to remember them against, forgotten. The lines, by
    symbol the trades taken (never booked again), and the amendments."""
    notes: list[Note] = []
    taken: dict[str, frozenset[str]] = {}
    give_up = timedelta(seconds=context.keeper.fees_unread_give_up_s)
    made: list[TradeFees] = []
    for symbol, waiting in sorted(book.added_unread.items()):
        position = waiting.position if waiting.trade is not None else _held(book, symbol, waiting)
        if position is None:
            del book.added_unread[symbol]
            continue
        found = _found(waiting, position, seen.account_fills.get(symbol), seen)
        what = f"{waiting.quantity} added by hand, booked {waiting.last.isoformat()}"
        if not found:
            if now - waiting.last >= give_up:
                del book.added_unread[symbol]
                notes.append(_given_up(symbol, waiting, what, give_up))
            continue  # unread, or not listed yet: read again at the next tick
        fee = sum((f.fee_usdt for f in found), ZERO)
        taken[symbol] = frozenset(f.trade_id for f in found)
        detail = f"{what}: by the account's {len(found)} trade(s), fee {fee}"
        del book.added_unread[symbol]
        if waiting.trade is None:
            _book_fee(book, symbol, position, fee)
            notes.append(Note(GROWN_TRADES_READ, symbol, f"{detail} booked"))
            continue
        named = f"{waiting.quantity} added by hand (trades {', '.join(sorted(taken[symbol]))})"
        made.append(amendment(book, waiting.trade, fee, (named,)))
        closed = waiting.trade.closed_at.isoformat()
        notes.append(Note(GROWN_TRADES_READ, symbol, f"{detail} for its trade closed {closed}"))
    return notes, taken, made


def _held(book: Draft, symbol: str, waiting: UnreadAddition) -> Position | None:
    """The position `waiting` was remembered for, held or closed awaiting a price (a flip's
    old side: the new side is held beside it), if either is."""
    unpriced = book.unpriced.get(symbol)
    for position in (book.positions.get(symbol), unpriced.position if unpriced else None):
        if of_position(waiting, position):
            return position
    return None


def _found(
    waiting: UnreadAddition, position: Position, fills: Sequence[Fill] | None, seen: Observation
) -> list[Fill]:
    """The account's trades this tick read that made the growth (none: unread, or not
    listed yet)."""
    until = waiting.last + ACCOUNT_TRADES_SLACK  # later ones: another growth's
    made = [f for f in fills or () if f.time <= until]
    return added_trades(position, waiting.quantity, made, seen.trade_ids_read()) if made else []


def _book_fee(book: Draft, symbol: str, position: Position, fee: Decimal) -> None:
    """`fee` added to `position`, held or awaiting its close's price."""
    with_fee = replace(position, fees_usdt=position.fees_usdt + fee)
    unpriced = book.unpriced.get(symbol)
    if unpriced is not None and unpriced.position is position:
        book.unpriced[symbol] = replace(unpriced, position=with_fee)
    else:
        book.put(with_fee)


def _given_up(symbol: str, waiting: UnreadAddition, what: str, give_up: timedelta) -> Note:
    whose = "not booked" if waiting.trade is None else "left out of its closed trade's fees"
    seconds = f"{give_up.total_seconds():g}"
    detail = f"{what}: its trades not found in {seconds} s, its fee {whose}"
    return Note(GROWN_TRADES_READ, symbol, detail, warning=True)
