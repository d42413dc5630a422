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
amended in the position's close by hand awaiting its price (keeper/unpriced.py: the same
outage) before that is booked; a close by an exit of ours waits for it the same way
(part_settle.py `await_parts`), at most `keeper.external_close_mark_after_s`, then is booked
with the mark's terms for it (amending a closed trade's PnL is not built). Saved in the
repository's state (namespace `parts_unread`, by symbol held or awaiting a close's price)
with the position's bookings, so a restart reads them too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.keeper.saved_by_symbol import instant, restored_by_symbol, state_writes
from quantum_trader.ports import Repository, StateWrite
from quantum_trader.record import record

PARTS_UNREAD = "parts_unread"


@record
class UnreadPart:
    """`quantity` of the position opened by `entry_order_id` reduced by hand, booked at
    `mark` by the tick at `since` while the account's trades could not be read."""

    quantity: Decimal
    mark: Decimal
    since: datetime
    entry_order_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantity": str(self.quantity),
            "mark": str(self.mark),
            "since": self.since.isoformat(),
            "entry_order_id": self.entry_order_id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> UnreadPart:
        quantity, mark = Decimal(str(raw["quantity"])), Decimal(str(raw["mark"]))
        for name, value in (("quantity", quantity), ("mark", mark)):
            if not value.is_finite() or value <= 0:
                raise ValueError(f"not a {name}: {raw[name]!r}")
        return cls(quantity, mark, instant(raw["since"]), str(raw["entry_order_id"]))


def part_writes(
    before: Mapping[str, tuple[UnreadPart, ...]],
    after: Mapping[str, tuple[UnreadPart, ...]],
    mine: Callable[[str], bool],
) -> tuple[list[StateWrite], list[tuple[str, str]]]:
    """The state entries to save and to delete (`PARTS_UNREAD`) from `before` to `after`, for
    the symbols `mine` accepts: written with the position's bookings (keeper/bookings.py)."""
    return state_writes(PARTS_UNREAD, before, after, mine, _encoded)


async def restored(
    repository: Repository, held: Collection[str]
) -> dict[str, tuple[UnreadPart, ...]]:
    """The parts of the positions `held` as the last run saved them; one that does not read
    back is said and dropped (the mark's terms then kept)."""
    return await restored_by_symbol(
        repository, PARTS_UNREAD, held, _decoded, "the mark's terms kept"
    )


def _encoded(parts: tuple[UnreadPart, ...]) -> dict[str, Any]:
    return {"parts": [p.to_dict() for p in parts]}


def _decoded(saved: Mapping[str, Any]) -> tuple[UnreadPart, ...]:
    return tuple(UnreadPart.from_dict(raw) for raw in saved["parts"])
