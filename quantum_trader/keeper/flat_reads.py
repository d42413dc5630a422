"""Where the keeper last read each symbol flat with nothing booked (`FlatRead`): what
happened there since is replayed from flat with the account's trades
(keeper/from_flat_settle.py). In memory: the first look after a start replays nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from quantum_trader.domain import ExchangePosition, Position
from quantum_trader.keeper.plan import FlatRead


class FlatReads:
    def __init__(self) -> None:
        self._at: dict[str, FlatRead] = {}
        self._leverage: dict[str, int] = {}  # by symbol, of the last position read there

    def unbooked(self, booked: Mapping[str, Position]) -> dict[str, FlatRead]:
        """The flat reads of symbols the books hold nothing on now (not where an entry of
        ours was booked since, from its answer: keeper/answer.py)."""
        return {s: read for s, read in self._at.items() if s not in booked}

    def after_tick(
        self,
        universe: Iterable[str],
        held: Mapping[str, ExchangePosition],
        booked: Mapping[str, Position],
        now: datetime,
    ) -> None:
        """A whole tick at `now` read `held` and left `booked`: the symbols of `universe`
        flat with nothing booked read flat now; those read flat before and held since that
        the books hold nothing on yet keep their read (a tick that could not read the
        symbol's orders plans nothing there: hand-trading seed 30002 lost its read so)."""
        self._leverage.update((s, p.leverage) for s, p in held.items())
        flat = {s: r for s, r in self._at.items() if s in held and s not in booked}
        for symbol in universe:
            if symbol not in held and symbol not in booked:
                flat[symbol] = FlatRead(now, self._leverage.get(symbol, 1))
        self._at = flat
