"""The step of a tick that takes the trades of growths by hand booked while they could not be
read (keeper/added_unread.py says why). Pure; the planner runs it before any position is
reconciled, so a close in the same tick finds the growth's trades taken.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from quantum_trader.domain import ZERO
from quantum_trader.keeper.added_unread import of_position
from quantum_trader.keeper.draft import Draft
from quantum_trader.keeper.external import ACCOUNT_TRADES_SLACK, added_trades
from quantum_trader.keeper.plan import Context, Note, Observation
from quantum_trader.record import replace

GROWN_TRADES_READ = "position_grown_trades_read"


def settle_added_unread(
    book: Draft, seen: Observation, now: datetime, context: Context
) -> tuple[list[Note], dict[str, frozenset[str]]]:
    """The remembered growths whose trades this tick read and show: their fee booked in the
    position (or its close awaiting a price), they forgotten; those given up after
    `keeper.fees_unread_give_up_s`, or whose position is gone, forgotten. The lines, and by
    symbol the trades taken (never booked again)."""
    notes: list[Note] = []
    taken: dict[str, frozenset[str]] = {}
    give_up = timedelta(seconds=context.keeper.fees_unread_give_up_s)
    for symbol, waiting in sorted(book.added_unread.items()):
        held, unpriced = book.positions.get(symbol), book.unpriced.get(symbol)
        position = held if held is not None else unpriced.position if unpriced else None
        if position is None or not of_position(waiting, position):
            del book.added_unread[symbol]
            continue
        fills = seen.account_fills.get(symbol)
        ours = seen.trade_ids_read()
        until = waiting.last + ACCOUNT_TRADES_SLACK  # later ones: another growth's
        made = [f for f in fills or () if f.time <= until]
        found = added_trades(position, waiting.quantity, made, ours) if made else []
        what = f"{waiting.quantity} added by hand, booked {waiting.last.isoformat()}"
        if not found:
            if now - waiting.last >= give_up:
                del book.added_unread[symbol]
                detail = (
                    f"{what}: its trades not found in {give_up.total_seconds():g} s, its fee "
                    "not booked"
                )
                notes.append(Note(GROWN_TRADES_READ, symbol, detail, warning=True))
            continue  # unread, or not listed yet: read again at the next tick
        fee = sum((f.fee_usdt for f in found), ZERO)
        with_fee = replace(position, fees_usdt=position.fees_usdt + fee)
        if held is not None:
            book.put(with_fee)
        elif unpriced is not None:
            book.unpriced[symbol] = replace(unpriced, position=with_fee)
        del book.added_unread[symbol]
        taken[symbol] = frozenset(f.trade_id for f in found)
        detail = f"{what}: by the account's {len(found)} trade(s), fee {fee} booked"
        notes.append(Note(GROWN_TRADES_READ, symbol, detail))
    return notes, taken
