"""The step of a tick that amends the parts reduced by hand that were booked at the mark while
the account's trades could not be read (keeper/part_unread.py says why). Pure; the planner runs
it before any position is reconciled.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import ZERO, Fill, Position
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.external import ACCOUNT_TRADES_SLACK, external_execution
from quantum_trader.keeper.part_unread import UnreadPart
from quantum_trader.keeper.plan import Context, Note, Observation
from quantum_trader.keeper.unpriced import ClosedBy, UnpricedClose
from quantum_trader.record import replace

PART_TRADES_READ = "position_reduced_trades_read"
PARTS_AWAITED = "close_awaits_parts"


def remember(
    book: Draft, position: Position, quantity: Decimal, mark: Decimal, now: datetime
) -> None:
    """The part of `position` just booked at `mark`, its trades unread."""
    part = UnreadPart(quantity, mark, now, position.entry_order_id)
    book.parts_unread[position.symbol] = (*book.parts_unread.get(position.symbol, ()), part)


def awaited(book: Draft, position: Position) -> list[UnreadPart]:
    """The parts of `position` booked at the mark whose trades are still unread."""
    parts = book.parts_unread.get(position.symbol, ())
    return [p for p in parts if p.entry_order_id == position.entry_order_id]


def await_parts(
    book: Draft, position: Position, fee: Decimal, ours: ClosedBy, now: datetime
) -> Note | None:
    """An exit of ours (`ours`, its `fee`) that closes `position` while parts of it booked at
    the mark await their trades: the trade waits for them as a close by hand awaits its price
    (keeper/unpriced.py: the position leaves the books, entries on the symbol are blocked),
    then is booked at our exit's terms and the parts' own (external_settle.py
    `settle_unpriced`; at most `keeper.external_close_mark_after_s`, then with the mark's
    terms for them). The line saying so; None (book it now) when no part awaits, or another
    close awaits there."""
    symbol = position.symbol
    parts = awaited(book, position)
    if not parts or symbol in book.unpriced:
        return None
    waiting = replace(position, fees_usdt=position.fees_usdt + fee)
    book.unpriced[symbol] = UnpricedClose(waiting, now, ZERO, ours, ours=True)
    book.drop_position(symbol)
    reduced = sum((p.quantity for p in parts), ZERO)
    detail = (
        f"our {ours.client_order_id} closed {position.side} {position.quantity} at {ours.price}; "
        f"its trade awaits the account's trades for what a person reduced before it ({reduced} "
        "booked at the mark), no entry on the symbol meanwhile"
    )
    return Note(PARTS_AWAITED, symbol, detail, warning=True)


def settle_parts_unread(
    book: Draft, seen: Observation, now: datetime, context: Context, ours: Collection[str]
) -> tuple[list[Note], dict[str, frozenset[str]]]:
    """The remembered parts whose trades this tick read and show, oldest first: the position
    amended (or its close awaiting a price, keeper/unpriced.py: this step runs before such
    closes are booked), they forgotten; those given up, or whose position is gone, forgotten.
    The lines, and by symbol the trades taken (`ours`: trades not a person's, or taken
    already)."""
    notes: list[Note] = []
    taken: dict[str, frozenset[str]] = {}
    give_up = timedelta(seconds=context.keeper.fees_unread_give_up_s)
    for symbol, parts in sorted(book.parts_unread.items()):
        left: list[UnreadPart] = []
        for part in parts:
            held, unpriced = book.positions.get(symbol), book.unpriced.get(symbol)
            if held is not None and held.entry_order_id == part.entry_order_id:
                position, closing = held, None
            elif unpriced is not None and unpriced.position.entry_order_id == part.entry_order_id:
                position, closing = unpriced.position, unpriced  # a flip's other side held
            else:
                continue  # another position's (its trade booked already): forgotten
            fills = seen.account_fills.get(symbol, ())
            made = [f for f in fills if f.time <= part.since + ACCOUNT_TRADES_SLACK]
            not_theirs = {*ours, *taken.get(symbol, ())}
            if closing is not None and not closing.ours:  # the close's trades are not the part's
                closed_by = _closing_trades(closing, fills, not_theirs)
                not_theirs |= closed_by if closed_by is not None else {t.trade_id for t in made}
            found = external_execution(position, part.quantity, made, not_theirs)
            what = f"{part.quantity} reduced by hand, booked at the mark {part.mark}"
            if found is None:
                if now - part.since < give_up:
                    left.append(part)  # unread, or not listed yet: read at the next tick
                    continue
                detail = (
                    f"{what} at {part.since.isoformat()}: its trades not found in "
                    f"{give_up.total_seconds():g} s, the mark's terms kept, its fee not booked"
                )
                notes.append(Note(PART_TRADES_READ, symbol, detail, warning=True))
                continue
            moved = (found.price - part.mark) * part.quantity * position.side.sign + ZERO  # no -0
            position = replace(
                position,
                realized_pnl_usdt=position.realized_pnl_usdt + moved,
                fees_usdt=position.fees_usdt + found.fee_usdt,
            )
            if closing is None:
                book.put(position)
            else:
                book.unpriced[symbol] = replace(closing, position=position)
            taken[symbol] = taken.get(symbol, frozenset()) | found.trade_ids
            detail = (
                f"{what}: by the account's {found.trades} trade(s) at {found.price}, fee "
                f"{found.fee_usdt}; its PnL moved by {moved}"
            )
            notes.append(Note(PART_TRADES_READ, symbol, detail))
        if left:
            book.parts_unread[symbol] = tuple(left)
        else:
            del book.parts_unread[symbol]
    return notes, taken


def _closing_trades(
    unpriced: UnpricedClose, fills: Sequence[Fill], ours: Collection[str]
) -> frozenset[str] | None:
    """The trades that closed the position awaiting its price, as keeper/external_settle.py
    will find them (the newest made by the slack after the close adding up to it), or None
    when they do not add up: the part's trades are then not told apart from them (the part
    waits, and keeps the mark's terms if the close is booked at the mark)."""
    until = unpriced.since + ACCOUNT_TRADES_SLACK
    made = [f for f in fills if f.time <= until]
    found = external_execution(unpriced.position, unpriced.quantity, made, ours, unpriced.opened)
    return found.trade_ids if found is not None else None
