"""By entry of ours, the last time before it was sent that the keeper read its symbol flat on
the exchange (the tick's time; the read comes after it): where the account's trades are read
from for that position's reductions by hand, not from the entry's own first fill.

A person may have opened a position on the symbol after that read, and our entry then met it
— Binance nets them (one-way mode) — with no trade of the person after ours (seed 32035 of
the hand-trading campaign). Nothing of a last position on the symbol lies after that read
(the reason the trades before an entry are left out: the last position's exit): it had been
seen gone.

The daemon's keeper saves it (the repository's state, namespace `FLAT_BEFORE`, by symbol:
the entry and the time) before the entry is sent, so a restart reads the position's trades
from there too (the restart campaign, seed 40824: a person's sell 61 ms before our long's
fill met it, booked at the mark while the trades could not be read; after the restart the
window began at our fill, the person's trade was never found and its fee never booked). A
saved time whose position is no longer booked is deleted at the start; a backtest saves
nothing (no person trades beside it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from quantum_trader.domain import ExchangePosition, Position
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.saved_by_symbol import instant
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository

log = get_logger("keeper")
FLAT_BEFORE = "flat_before"
KEPT_ENTRIES = 64  # entries remembered: one matters until the tick after it, or a few more


class FlatBefore:
    def __init__(
        self, repository: Repository | None = None, restored: Mapping[str, datetime] | None = None
    ) -> None:
        self._repository = repository  # None: nothing saved (a backtest)
        self._at: dict[str, datetime] = dict(restored or {})

    @classmethod
    async def restored(cls, repository: Repository, book: Book) -> FlatBefore:
        """As the last run saved them, for the positions `book` holds (or closed, awaiting a
        price); the rest deleted, one that cannot be read back said once."""
        held = [*book.positions.values(), *(u.position for u in book.unpriced.values())]
        entries = {p.entry_order_id: p.symbol for p in held}
        at: dict[str, datetime] = {}
        for symbol, saved in (await repository.load_state(FLAT_BEFORE)).items():
            try:
                entry, when = str(saved["entry"]), instant(saved["at"])
            except (KeyError, TypeError, ValueError) as error:
                _said_unreadable(symbol, saved, repr(error))
            else:
                if entries.get(entry) == symbol:
                    at[entry] = when
                    continue
            await repository.delete_state(FLAT_BEFORE, symbol)
        return cls(repository, at)

    async def record(
        self,
        client_order_id: str,
        symbol: str,
        last_read: tuple[datetime, Mapping[str, ExchangePosition]] | None,
    ) -> None:
        """The entry about to be sent on `symbol`, where the last read showed it flat."""
        if last_read is None or symbol in last_read[1]:
            return
        self._at[client_order_id] = last_read[0]
        if len(self._at) > KEPT_ENTRIES:
            del self._at[next(iter(self._at))]  # the oldest
        if self._repository is not None:
            payload = {"entry": client_order_id, "at": last_read[0].isoformat()}
            await self._repository.save_state(FLAT_BEFORE, symbol, payload)

    def since(
        self, entered: Mapping[str, datetime], positions: Mapping[str, Position]
    ) -> dict[str, datetime]:
        """`entered` (by symbol, the position's entry's first fill), each moved back to when
        its symbol was last read flat before the entry, where that is known and earlier."""
        since = dict(entered)
        for symbol, at in entered.items():
            flat = self._at.get(positions[symbol].entry_order_id)
            if flat is not None and flat < at:
                since[symbol] = flat
        return since


def _said_unreadable(symbol: str, saved: Any, why: str) -> None:
    log.warning(
        "flat_before_unreadable",
        symbol=symbol,
        saved=saved,
        detail=(
            f"where the last run read the symbol flat before its entry cannot be read again "
            f"({why}): the position's trades are read from its entry's fill; dropped"
        ),
    )
