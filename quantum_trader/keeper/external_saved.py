"""The account's trades a held position's reductions were booked from — a person's, booked
for a reduction outside the program (keeper/external.py), and our own exits' — remembered
across restarts.

A reduction with no order of ours is booked at the newest account trades that add up to it,
leaving out those the books already took a reduction from (`Plan.reducing_trades`). The
read's window reaches back before that tick — after a restart to the position's opening — so
without this memory a later reduction whose own trades Binance does not list yet could be
booked at the older ones (their price and fee, once more). The keeper alone writes it: in the
repository's state (namespace `EXTERNAL_BOOKED`, by symbol, `{"trade_ids": [...]}`), each
symbol's entry saved in the same write as the bookings that took them (keeper/carry.py: a stop
between the two would forget them) and deleted once its position is gone.
An entry that cannot be read back (edited by hand, written by a run that saved something
else) is said once, with what was saved, and dropped: the keeper starts all the same.

The trades a symbol's last position was reduced and closed by are left out for the next
position on the symbol too, in memory (`left_out`): one adopted, with no entry of ours to
bound its window, reaches 5 min before the tick that adopted it, where that close lies (found
by the campaign with a person trading by hand, seed 30079, 2026-12-03: a close by hand was
booked again for the position adopted after it, its fee counted twice).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from quantum_trader.log import get_logger
from quantum_trader.ports import Repository, StateWrite
from quantum_trader.record import record

log = get_logger("keeper")
EXTERNAL_BOOKED = "external_booked"


class ExternalBooked:
    """By symbol, the ids of the account's trades booked for its position (held only)."""

    def __init__(self, booked: Mapping[str, frozenset[str]] | None = None) -> None:
        self._booked: dict[str, frozenset[str]] = dict(booked or {})
        self._closed: dict[str, frozenset[str]] = {}  # the last position gone, by symbol

    @classmethod
    async def restored(cls, repository: Repository, held: Collection[str]) -> ExternalBooked:
        """As the last run saved them, for the symbols `held` (an entry of a position gone
        while the daemon was stopped, or before its deletion was written, is deleted)."""
        booked = {}
        for symbol, saved in (await repository.load_state(EXTERNAL_BOOKED)).items():
            if symbol not in held:
                await repository.delete_state(EXTERNAL_BOOKED, symbol)
                continue
            try:
                booked[symbol] = _trade_ids(saved)
            except (KeyError, TypeError) as error:
                await _dropped(repository, symbol, saved, repr(error))
        return cls(booked)

    def left_out(self) -> Mapping[str, frozenset[str]]:
        """By symbol, the trades a reduction is never booked at: those booked for the
        position held, and for the last one gone on the symbol this run."""
        closed = self._closed
        if not closed:
            return self._booked
        return {
            s: self._booked.get(s, frozenset()) | closed.get(s, frozenset())
            for s in self._booked.keys() | closed.keys()
        }

    def changes(
        self,
        booked_now: Mapping[str, frozenset[str]],
        held: Collection[str],
        symbols: Callable[[str], bool],
    ) -> BookedChanges:
        """What a plan booking `booked_now` (`Plan.reducing_trades`) and leaving `held`
        changes for the `symbols` accepted: the trades added for each still held, each no
        longer held forgotten. Written with the plan's bookings (keeper/carry.py), then
        `keep`: a stop between the bookings and this memory would forget the trades."""
        booked = self._booked
        if not booked_now and not booked:  # a backtest's ticks
            return _NO_CHANGES
        saved: dict[str, frozenset[str]] = {}
        for symbol in sorted(booked_now.keys() & set(held)):
            ids = booked.get(symbol, frozenset()) | booked_now[symbol]
            if ids != booked.get(symbol) and symbols(symbol):
                saved[symbol] = ids
        deleted = [s for s in sorted(booked.keys() - set(held)) if symbols(s)]
        gone = (booked.keys() | booked_now.keys()) - set(held)
        closed = {
            s: booked.get(s, frozenset()) | booked_now.get(s, frozenset())
            for s in sorted(gone)
            if symbols(s)
        }
        return BookedChanges(saved, deleted, closed)

    def keep(self, changes: BookedChanges) -> None:
        """Take `changes` as written."""
        self._booked.update(changes.saved)
        for symbol in changes.deleted:
            self._booked.pop(symbol, None)
        self._closed.update(changes.closed)


@record
class BookedChanges:
    """By symbol, the trade ids to remember now, and the symbols to forget."""

    saved: Mapping[str, frozenset[str]]
    deleted: Sequence[str]
    closed: Mapping[str, frozenset[str]]  # the trades of each position gone: in memory only

    @property
    def state(self) -> list[StateWrite]:
        return [
            (EXTERNAL_BOOKED, symbol, {"trade_ids": sorted(ids)})
            for symbol, ids in self.saved.items()
        ]

    @property
    def state_deleted(self) -> list[tuple[str, str]]:
        return [(EXTERNAL_BOOKED, symbol) for symbol in self.deleted]


def _trade_ids(saved: Mapping[str, Any]) -> frozenset[str]:
    ids = saved["trade_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise TypeError(f"trade_ids is not a list of trade ids: {ids!r}")
    return frozenset(ids)


async def _dropped(repository: Repository, symbol: str, saved: Any, why: str) -> None:
    log.warning(
        "external_booked_unreadable",
        symbol=symbol,
        saved=saved,
        detail=(
            f"the account's trades booked for the position cannot be read again ({why}): "
            "they are no longer left out, so a reduction by hand whose own trades are not "
            "listed yet may be booked at them; the entry is dropped"
        ),
    )
    await repository.delete_state(EXTERNAL_BOOKED, symbol)


_NO_CHANGES = BookedChanges({}, (), {})
