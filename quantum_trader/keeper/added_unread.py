"""A growth by hand booked while the account's trades could not be read: what it added is
remembered (`Book.added_unread`) until a tick reads them, and then its trades are taken and
their fee booked in the position.

The restart campaign, seed 40304 (session 59): a growth by hand booked while the trades
answered 429 had no fee, and a later close by hand (the daemon stopped meanwhile) refused the
account's trades — they showed an addition the books never took, so the close might have
been the person's (keeper/external.py `added_by_hand`) — and was booked at the mark. Now
every tick reads the symbol's trades from the last tick before the growth (keeper/external.py
`closed_positions`) until the newest adding trades not ours add up to what was added
(`added_trades`, as a growth read at once takes them): taken, never booked again, their fee
added to the position (or to its close awaiting a price, keeper/unpriced.py), one line
`position_grown_trades_read`. A close in the same tick is booked after that, at its own
trades. After `keeper.fees_unread_give_up_s` it is given up, said once (the fee not booked).
Saved in the repository's state (namespace `added_unread`, by symbol) with the position's
bookings, so a restart reads them too.

A position that closes first — our stop, an exit of ours, a close by hand, in that tick or a
later one — leaves it remembered against the closed trade (`trade`, bound when the carrier
books it: keeper/fee_carry.py), as our orders' unread fees are (keeper/fees.py). The plan
that closes it keeps it, so the tick reads the trades for it: read then, its fee is in the
trade as booked. Else the ticks read the symbol's trades for it in the closed `position`'s
window, and once they show it the trade is amended by its fee, once (`trade_fees_amended`);
given up after the same bound (was: forgotten with its position, the closed trade short of
its fee for good — the restart campaign, seed 41774, 0.2827 USDT). One a symbol: a later
position held there reads its own window, where these trades are not (given up then), and a
growth of it unread too replaces this one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, MutableMapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.domain import Position
from quantum_trader.keeper.saved_by_symbol import instant, restored_by_symbol, state_writes
from quantum_trader.keeper.trade_ref import TradeRef
from quantum_trader.ports import Repository, StateWrite
from quantum_trader.record import record, replace
from quantum_trader.storage.codec import decode_position, encode_position

ADDED_UNREAD = "added_unread"


@record
class UnreadAddition:
    """`quantity` added by hand to the position on its symbol (opened by `entry_order_id`),
    booked at `since` (a tick) while the account's trades could not be read.

    `trade`: the closed trade it was left out of, when its position closed first (None: its
    fee goes to the position), with that `position` as booked at the close (whose window
    its trades are read in)."""

    quantity: Decimal
    since: datetime
    entry_order_id: str  # the position's: one closed or flipped since is not this one's
    last: datetime  # the latest of such growths, where two were (`since` the first's)
    trade: TradeRef | None = None
    position: Position | None = None  # with `trade`

    def to_dict(self) -> dict[str, Any]:
        saved: dict[str, Any] = {
            "quantity": str(self.quantity),
            "since": self.since.isoformat(),
            "entry_order_id": self.entry_order_id,
            "last": self.last.isoformat(),
        }
        if self.trade is not None and self.position is not None:
            saved["trade"] = self.trade.to_dict()
            saved["position"] = list(encode_position(self.position))
        return saved

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> UnreadAddition:
        quantity = Decimal(str(raw["quantity"]))
        if not quantity.is_finite() or quantity <= 0:
            raise ValueError(f"not a quantity: {raw['quantity']!r}")
        since, last = instant(raw["since"]), instant(raw["last"])
        added = cls(quantity, since, str(raw["entry_order_id"]), last)
        if "trade" in raw:
            position = decode_position(tuple(raw["position"]))
            added = replace(added, trade=TradeRef.from_dict(raw["trade"]), position=position)
        return added


def remember(
    added_unread: MutableMapping[str, UnreadAddition],
    position: Position,
    added: Decimal,
    now: datetime,
) -> None:
    """`added` to `position` with its trades unread: remembered, beside one before."""
    earlier = added_unread.get(position.symbol)
    since = now
    if earlier is not None and earlier.entry_order_id == position.entry_order_id:
        added, since = added + earlier.quantity, earlier.since
    added_unread[position.symbol] = UnreadAddition(added, since, position.entry_order_id, now)


def of_position(waiting: UnreadAddition, position: Position | None) -> bool:
    """Whether `waiting` was remembered for `position` (not one closed, or flipped, since)."""
    return position is not None and position.entry_order_id == waiting.entry_order_id


def closed_with(
    trade: TradeRef, position: Position, added: Mapping[str, UnreadAddition]
) -> UnreadAddition | None:
    """The growth of `position` remembered in `added` (the books after the plan that closed
    it), its trades unread still, remembered against its closed `trade` now; None where there
    is none."""
    waiting = added.get(position.symbol)
    if waiting is None or waiting.trade is not None or not of_position(waiting, position):
        return None
    return replace(waiting, trade=trade, position=position)


def added_writes(
    before: Mapping[str, UnreadAddition],
    after: Mapping[str, UnreadAddition],
    mine: Callable[[str], bool],
) -> tuple[list[StateWrite], list[tuple[str, str]]]:
    """The state entries to save and to delete (`ADDED_UNREAD`) from `before` to `after`, for
    the symbols `mine` accepts: written with the position's bookings (keeper/bookings.py)."""
    return state_writes(ADDED_UNREAD, before, after, mine, UnreadAddition.to_dict)


async def restored(repository: Repository, held: Collection[str]) -> dict[str, UnreadAddition]:
    """The growths of the positions `held` (or closes awaiting a price), and those remembered
    against a closed trade, as the last run saved them; one that does not read back is said
    and dropped (its fee then not booked)."""
    saved = await repository.load_state(ADDED_UNREAD)
    closed = {s for s, raw in saved.items() if isinstance(raw, Mapping) and "trade" in raw}
    lost = "its fee will not be booked"
    decode = UnreadAddition.from_dict
    return await restored_by_symbol(repository, ADDED_UNREAD, {*held, *closed}, decode, lost)
