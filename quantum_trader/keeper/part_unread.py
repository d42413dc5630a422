"""A part of a position reduced by hand, booked at the mark while the account's trades could
not be read: remembered (`Book.parts_unread`) until a tick reads them, and then amended to the
person's own trades (keeper/part_settle.py) — the PnL at their price, their fee booked.

A part cannot wait for its price as a close does (keeper/unpriced.py): the position stays held
and managed, so the reduction is booked at once, at the mark (reduce_settle.py
`_external_exit`). Was: left so, the fee in no booking and the PnL at a price no one traded at
(the hand-trading campaigns with round trips, 2026-12-06: in 10 of 180 seeds a part
reduction's read of the trades met a 429). Now every tick reads the symbol's trades from the
tick before the reduction (keeper/external.py `closed_positions`) until the newest reducing
trades not ours, made by then (`ACCOUNT_TRADES_SLACK` after it, as for a close awaiting its
price), add up to the part: taken (never booked again), the position's realized PnL moved by
what their price differs from the mark's on that quantity and their fee added, one line
`position_reduced_trades_read`. Given up after `keeper.fees_unread_give_up_s`, said once;
forgotten with the position (its closed trade then keeps the mark's terms, as before). In
memory only: a restart forgets it (the mark's terms kept, as before).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from quantum_trader.record import record


@record
class UnreadPart:
    """`quantity` of the position opened by `entry_order_id` reduced by hand, booked at
    `mark` by the tick at `since` while the account's trades could not be read."""

    quantity: Decimal
    mark: Decimal
    since: datetime
    entry_order_id: str
