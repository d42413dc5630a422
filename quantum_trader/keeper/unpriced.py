"""A position closed outside the program, seen on a tick that could not read the account's
trades (a mark read or not): gone from the books at once, its trade booked once a price is read.

Such a close used to be booked at once at the position's stop price when no mark was read
either — a price no one may have traded at (the campaign with a person trading by hand, seed
30066, 2026-12-03: a 429 on both reads) — and at once at the mark when one was, no traded
price either (seed 30003: 1.5 % off the person's). Now the position leaves the books in
that tick (nothing to protect: its stops of ours are released; a flip's other side is adopted
and covered as always) and the close waits as an `UnpricedClose`, which blocks entries on the
symbol (`Book.blocked`): a new position's trades would share the symbol's trade history the
price is read from. Every tick reads the account's trades for it (keeper/external.py, the
position's window, trades up to the slack after the close was seen) and the planner books it
(external_settle.py `settle_unpriced`):

- at the trades that add up to it, with their fee, MANUAL (or LIQUIDATION/ADL: keeper/forced.py),
  as soon as a tick reads them;
- else, once `keeper.external_close_mark_after_s` has passed since the close was seen, at the
  mark read on the tick that saw it (`mark`; the nearest in time to the close: was the mark
  that later tick reads, 2.5 % off the person's price after a 95 s outage of the trades in
  the hand-trading campaign's seed 34361), or where none was, at the mark that tick reads,
  with no fee, the line naming that mark, when it was read and why the trades could not say
  it;
- with neither, it keeps waiting (and the symbol stays blocked): no price is invented.

The trade is closed at the tick that saw the position gone (its key in the repository: a
restart books it once). The waiting close is saved in the repository's state (namespace
`UNPRICED`, by symbol) in the write that deletes the position, and deleted in the trade's
write, so a stop between ticks leaves it waiting, booked once. A saved entry that cannot be
read back is said once and dropped (the close is then never booked: the line says so).
A close by hand that an exit of ours finished — reduce-only, it took what the person's
sale left, in the same tick (reduce_settle.py `_closed_by_ours`) — waits so too, since
2026-12-06: the person's part at their own trades, the trade's exit price and reason our
exit's (`ClosedBy`; was: the person's part booked at once at the mark, their fee in no
booking — the restart campaign with round trips, seed 40797). And an exit of ours that
closes a position some of which a person reduced and which was booked at the mark while the
trades were unreadable (keeper/part_unread.py) waits here for those trades (`ours`), at
most `keeper.external_close_mark_after_s`, its own terms kept.
A part reduction seen so does not wait here: with no mark, the position stays booked as it
was (its stop still covers what is held) and the next tick books the reduction; with a mark,
it is booked at the mark at once, the position being held and managed (reduce_settle.py
`_external_exit`, external_settle.py `_awaits_trades`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.domain import ZERO, ExitReason, Position
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository, StateWrite
from quantum_trader.record import record
from quantum_trader.storage.codec import decode_position, encode_position

log = get_logger("keeper")
UNPRICED = "external_unpriced"
_UNREADABLE = (AttributeError, ArithmeticError, IndexError, KeyError, TypeError, ValueError)


@record
class ClosedBy:
    """The exit of ours that took the rest of a position after a close outside the program:
    the trade's exit price and reason."""

    client_order_id: str
    price: Decimal
    reason: ExitReason

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.client_order_id, "price": str(self.price), "reason": self.reason}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClosedBy:
        price = Decimal(str(raw["price"]))
        if not price.is_finite() or price <= 0:
            raise ValueError(f"not a price: {raw['price']!r}")
        return cls(str(raw["order"]), price, ExitReason(raw["reason"]))


@record
class UnpricedClose:
    """A close outside the program awaiting its price: `position` as booked before it,
    `opened` what the exchange held the other way then (a flip, else 0), `since` the tick
    that saw it gone (the trade's close time). `closed_by`: an exit of ours that took the
    rest after it (the trade's exit). `ours`: the close was all that exit's (its fee in
    `position`), which waits only for the trades of parts reduced by hand before it and
    booked at the mark (keeper/part_unread.py), at most `keeper.external_close_mark_after_s`.
    `mark`: the mark read on the tick that saw it, if one was (its price once that bound
    has passed with no trade read)."""

    position: Position
    since: datetime
    opened: Decimal = ZERO
    closed_by: ClosedBy | None = None
    ours: bool = False
    mark: Decimal | None = None

    @property
    def symbol(self) -> str:
        return self.position.symbol

    @property
    def quantity(self) -> Decimal:
        return self.position.quantity

    def blocks(self) -> str:
        """Why no entry may go to its symbol meanwhile."""
        if self.ours:
            return (
                f"our close ({self.position.side} {self.quantity}) awaits the trades of a part "
                f"reduced by hand since {self.since.isoformat()}"
            )
        return (
            f"a close outside the program ({self.position.side} {self.quantity}) awaits its "
            f"price since {self.since.isoformat()}"
        )

    def to_dict(self) -> dict[str, Any]:
        saved: dict[str, Any] = {
            "position": list(encode_position(self.position)),
            "since": self.since.isoformat(),
            "opened": str(self.opened),
        }
        if self.closed_by is not None:
            saved["closed_by"] = self.closed_by.to_dict()
        if self.ours:
            saved["ours"] = True
        if self.mark is not None:
            saved["mark"] = str(self.mark)
        return saved

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> UnpricedClose:
        opened = Decimal(str(raw["opened"]))
        if not opened.is_finite():
            raise ValueError(f"not a finite quantity: {raw['opened']!r}")
        position = decode_position(tuple(raw["position"]))
        terms = raw.get("closed_by")
        closed_by = None if terms is None else ClosedBy.from_dict(terms)
        ours = raw.get("ours", False) is True
        if ours and closed_by is None:
            raise ValueError("a close of ours without its terms")
        mark = None if raw.get("mark") is None else Decimal(str(raw["mark"]))
        if mark is not None and not (mark.is_finite() and mark > 0):
            raise ValueError(f"not a price: {raw['mark']!r}")
        since = datetime.fromisoformat(raw["since"])
        return cls(position, since, opened, closed_by, ours, mark)


def unpriced_writes(
    before: Mapping[str, UnpricedClose],
    after: Mapping[str, UnpricedClose],
    symbols: Callable[[str], bool],
) -> tuple[list[StateWrite], list[tuple[str, str]]]:
    """The state entries to save and to delete (`UNPRICED`) from `before` to `after`, for the
    `symbols` accepted: written with the bookings that add or book them (keeper/bookings.py)."""
    if before is after or not (before or after):  # most ticks
        return [], []
    saved: list[StateWrite] = [
        (UNPRICED, symbol, after[symbol].to_dict())
        for symbol in sorted(after)
        if before.get(symbol) != after[symbol] and symbols(symbol)
    ]
    deleted = [(UNPRICED, s) for s in sorted(before.keys() - after.keys()) if symbols(s)]
    return saved, deleted


async def saved_closes(repository: Repository) -> dict[str, UnpricedClose]:
    """The closes awaiting their price as saved, those that read back (changes nothing: the
    `status` command reads them beside a running daemon)."""
    unpriced = {}
    for symbol, saved in (await repository.load_state(UNPRICED)).items():
        try:
            unpriced[symbol] = UnpricedClose.from_dict(saved)
        except _UNREADABLE:
            continue
    return unpriced


async def restored(repository: Repository) -> dict[str, UnpricedClose]:
    """The closes awaiting their price, by symbol, as the last run saved them."""
    unpriced = {}
    for symbol, saved in (await repository.load_state(UNPRICED)).items():
        try:
            unpriced[symbol] = UnpricedClose.from_dict(saved)
        except _UNREADABLE as error:
            log.warning(
                "external_unpriced_unreadable",
                symbol=symbol,
                saved=saved,
                detail=(
                    f"a close outside the program awaiting its price cannot be read again "
                    f"({error!r}): its trade will not be booked; the entry is dropped"
                ),
            )
            await repository.delete_state(UNPRICED, symbol)
    return unpriced
