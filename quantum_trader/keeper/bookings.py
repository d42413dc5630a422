"""A plan's bookings as writes that go together (`Repository.write`, or a closed trade's own
write): pure; keeper/carry.py writes them.

A stop (kill -9, a write refused) between two writes of one booking once left the books
half-written, and the restart booked the difference wrongly: a part exit's order saved filled
before the smaller position was booked again as a close outside the program (MANUAL); a flip's
new side saved before the closed side's trade lost that trade; the account's trades a
reduction was booked at, remembered after it, were forgotten and could be booked again. So
each symbol's bookings of a plan are one write: those of the symbols no trade closes together,
and those of a symbol a trade closes with that trade (keeper/carry.py).
"""

from __future__ import annotations

from collections.abc import Callable

from quantum_trader.domain import Fill, Order, Position
from quantum_trader.keeper.added_unread import added_writes
from quantum_trader.keeper.book import Book, is_unsettled
from quantum_trader.keeper.external_saved import BookedChanges, ExternalBooked
from quantum_trader.keeper.fee_carry import fee_writes
from quantum_trader.keeper.fill_check import limit_writes
from quantum_trader.keeper.orders import INTENTS
from quantum_trader.keeper.part_unread import part_writes
from quantum_trader.keeper.plan import Plan
from quantum_trader.keeper.unpriced import unpriced_writes
from quantum_trader.ports import Writes
from quantum_trader.record import record


@record
class Bookings:
    """A plan's writes for some of its symbols, and the account's trades they remember
    (`ExternalBooked.keep` once written)."""

    writes: Writes
    booked: BookedChanges


def changed(before: Position | None, after: Position) -> bool:
    """Whether `after` is to be saved over `before`."""
    return before is not after and before != after  # most ticks keep the very object


def bookings(
    before: Book,
    result: Plan,
    after: Book,
    external: ExternalBooked,
    mine: Callable[[str], bool],
) -> Bookings:
    """What `result` books from `before` to `after` for the symbols `mine` accepts: the
    orders' states and fills (the intents of those settled forgotten), the positions changed
    or gone, the account's trades booked for those still held or awaiting a close's price
    (`external`), the orders whose fees are unread (keeper/fees.py), the closes awaiting
    their price (keeper/unpriced.py), the limits of fills far from their plan
    (keeper/fill_check.py), the growths by hand whose trades are unread
    (keeper/added_unread.py) and the parts booked at the mark meanwhile (keeper/part_unread.py)."""
    orders: list[Order] = []
    fills: list[Fill] = []
    deleted: list[tuple[str, str]] = []
    for order, its_fills in result.records:
        if mine(order.symbol):
            orders.append(order)
            fills += its_fills
            if not is_unsettled(order):
                deleted.append((INTENTS, order.client_order_id))
    held, now_held = before.positions, after.positions
    saved = [p for s, p in now_held.items() if changed(held.get(s), p) and mine(s)]
    gone = [s for s in held.keys() - now_held.keys() if mine(s)]
    kept = now_held.keys() | after.unpriced.keys()
    booked = external.changes(result.reducing_trades, kept, mine, result.last_exits)
    fees, fees_read = fee_writes(before.fees_unread, after.fees_unread, mine)
    unpriced, priced = unpriced_writes(before.unpriced, after.unpriced, mine)
    limits, lifted = limit_writes(before.limits, after.limits, mine)
    added, added_read = added_writes(before.added_unread, after.added_unread, mine)
    parts, parts_read = part_writes(before.parts_unread, after.parts_unread, mine)
    deleted += booked.state_deleted + fees_read + priced + lifted + added_read + parts_read
    state = booked.state + fees + unpriced + limits + added + parts
    return Bookings(Writes(orders, fills, gone, saved, deleted, state), booked)
