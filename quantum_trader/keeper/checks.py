"""Protection checks remembered across ticks: the planner asks for one per position every tick,
and on most ticks nothing it reads has changed. Pure."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from decimal import Decimal

from quantum_trader.domain import Order, Position
from quantum_trader.keeper.protect import ProtectionCheck, check_protection


class ProtectionChecks:
    """`check_protection` remembered per symbol across ticks.

    A check is reused only for the very same inputs: the position's fields it reads (the same
    objects, so a Decimal spelled differently is never taken for an equal one), the same
    listed order objects (frozen), the same tick size. It then equals a fresh check, so plans
    do not depend on it; it saves the work on the ticks where nothing moved.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple[object, ...], tuple[Order, ...], ProtectionCheck]] = {}
        self.hits = 0

    def check(
        self, position: Position, orders: Sequence[Order], tick_size: Decimal | None
    ) -> ProtectionCheck:
        inputs = (
            position.side,
            position.quantity,
            position.stop_price,
            position.stop_order_id,
            position.take_profit_order_id,
            tick_size,
        )
        known = self._known.get(position.symbol)
        if known is not None and _identical(known[0], inputs) and _identical(known[1], orders):
            self.hits += 1
            return known[2]
        check = check_protection(position, orders, tick_size)
        self._known[position.symbol] = (inputs, tuple(orders), check)
        return check


def _identical(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))
