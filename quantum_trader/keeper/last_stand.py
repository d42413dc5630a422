"""The keeper's last act when nothing can be booked any more (a StorageFailed stops the daemon:
the disk full, the database locked by another program, the data directory gone).

The loops stop at the first write refused, and that write may be the one that books an
entry's fill, before its stop is sent (keeper/carry.py writes first, then sends): the exchange
then holds a position with no stop while the daemon is down — until a start that may itself
be refused for the same cause. So before the daemon exits, the keeper reads the exchange once
more, plans as a tick would, and sends the protective stops that plan places, without their
intents saved (nothing can be). Each is one of ours (its client order id says so), which the
next start finds on the exchange: a position found without its booking is adopted with the
stop of ours it finds there (keeper/guard.py `_adoptable`).
"""

from __future__ import annotations

from collections.abc import Sequence

from quantum_trader.domain import ExchangeSnapshot, OrderKind
from quantum_trader.keeper.ids import is_ours
from quantum_trader.keeper.plan import Plan
from quantum_trader.keeper.protect import PlaceStop, SendExit, StopWhy


def stops_to_place(result: Plan, snapshot: ExchangeSnapshot) -> Sequence[PlaceStop]:
    """The protective stops `result` places but moves of a stop of ours listed (it protects);
    and, for a symbol no stop of ours covers on the exchange, the stop an exit of the plan
    would place if refused (an entry filled past its target is exited at once, its stop only
    then). Never the exits themselves, which nothing would book, nor a stop beside one the
    exchange holds."""
    covered = {
        o.symbol
        for o in snapshot.open_conditional_orders
        if o.kind is OrderKind.STOP_MARKET and o.reduce_only and is_ours(o.client_order_id)
    }
    placed: list[PlaceStop] = []
    for action in result.actions:
        if isinstance(action, PlaceStop):
            # A move beside a stop of ours protects nothing more, and a close-all one would be
            # refused beside the old (Binance keeps one a side, -4130).
            if not (action.why is StopWhy.MOVED and action.symbol in covered):
                placed.append(action)
        elif isinstance(action, SendExit) and action.symbol not in covered:
            placed += [a for a in action.if_refused if isinstance(a, PlaceStop)]
    return placed
