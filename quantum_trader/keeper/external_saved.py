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
between the two would forget them); once its position is gone, its trades stay as the
entry's `closed_ids` (below).
An entry that cannot be read back (edited by hand, written by a run that saved something
else) is said once, with what was saved, and dropped: the keeper starts all the same.

The trades a symbol's last position was reduced and closed by are left out for the next
position on the symbol too (`left_out`): one adopted, with no entry of ours to bound its
window, reaches 5 min before the tick that adopted it, where that close lies (found by the
campaign with a person trading by hand, seed 30079, 2026-12-03: a close by hand was booked
again for the position adopted after it, its fee counted twice). Saved too since 2026-12-05
(`"closed_ids"`, kept on a symbol no longer held, with those of the positions gone before
it, the newest 100): the
first look after a restart read the close of a position adopted before the stop from 5 min
before its adoption, where a round trip by hand booked by the last run lay, and took that
round trip's buy for an addition (the campaign with a restart, seed 40212).

Beside them, the last exit of ours that reduced the held position and left some (`LastExit`:
its order, reason, price and last trade), saved in the same entry (`"last_exit"`): a
reduction by hand found a tick later whose trades came before it closes the trade with our
exit's price and reason, not the person's (the campaign with a person trading by hand, seed
30721: our market exit, reduce-only, executed what a sell by hand left; booked from its
answer, the person's part the next tick, the trade MANUAL at the person's price).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import field
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantum_trader.domain import ExitReason, Fill
from quantum_trader.log import get_logger
from quantum_trader.ports import Repository, StateWrite
from quantum_trader.record import record

log = get_logger("keeper")
EXTERNAL_BOOKED = "external_booked"
# The trades of positions gone kept by symbol: the newest, as many as a replay takes
# (keeper/round_trip.py MOST_TRADES).
CLOSED_KEPT = 100


@record
class LastExit:
    """An exit of ours that reduced a position and left some: what a trade it turns out to
    have closed is booked at (keeper/reduce_settle.py)."""

    client_order_id: str
    reason: ExitReason
    price: Decimal
    time: datetime  # its last trade's, in the exchange's time
    trade_id: str

    @classmethod
    def of(
        cls,
        client_order_id: str,
        reason: ExitReason,
        price: Decimal,
        fills: Sequence[Fill],
        finished: datetime | None = None,
    ) -> LastExit | None:
        """Placed by its last trade; without fills (read later: keeper/fees.py), by when the
        exchange `finished` the order, with no trade id (a trade at that very time is then
        not taken for one before it); None with neither: nothing to place it by (the
        hand-trading campaign, seed 33491: our stop that ran out after a sale by hand, its
        fills unread, booked a tick before the sale; the trade was closed MANUAL at the
        person's price)."""
        if not fills:
            return None if finished is None else cls(client_order_id, reason, price, finished, "")
        last = max(fills, key=trade_order)
        return cls(client_order_id, reason, price, last.time, last.trade_id)

    def after(self, fills: Sequence[Fill]) -> bool:
        """Whether this exit's last trade came after every one of `fills` (by time, then by
        Binance's trade id, which grows with each trade of a symbol)."""
        mine = trade_order(self)
        return all(strictly_before(trade_order(f), mine) for f in fills)

    def encoded(self) -> dict[str, str]:
        return {
            "order": self.client_order_id,
            "reason": self.reason.value,
            "price": str(self.price),
            "time": self.time.isoformat(),
            "trade_id": self.trade_id,
        }


def trade_order(trade: Fill | LastExit) -> tuple[datetime, int | None]:
    """A trade's place: its time, then its id when numeric (Binance's are)."""
    trade_id = trade.trade_id
    return trade.time, int(trade_id) if trade_id.isdigit() else None


def strictly_before(one: tuple[datetime, int | None], other: tuple[datetime, int | None]) -> bool:
    """Strictly before; at the same time only the ids can tell (neither numeric: not)."""
    if one[0] != other[0]:
        return one[0] < other[0]
    return one[1] is not None and other[1] is not None and one[1] < other[1]


class ExternalBooked:
    """By symbol, the ids of the account's trades booked for its position (held only), and
    the last exit of ours that left some of it."""

    def __init__(
        self,
        booked: Mapping[str, frozenset[str]] | None = None,
        last: Mapping[str, LastExit] | None = None,
        closed: Mapping[str, frozenset[str]] | None = None,
        *,
        keep_closed: bool = True,
    ) -> None:
        self._booked: dict[str, frozenset[str]] = dict(booked or {})
        self._last: dict[str, LastExit] = dict(last or {})
        # by symbol, the trades of the positions gone there (and round trips booked), newest
        self._closed: dict[str, frozenset[str]] = dict(closed or {})
        self._keep_closed = keep_closed  # False: a backtest's (no person reads them)

    @classmethod
    async def restored(
        cls, repository: Repository, held: Collection[str], *, keep_closed: bool = True
    ) -> ExternalBooked:
        """As the last run saved them: the trades booked for the symbols `held` and their last
        exits, and the trades of positions gone (`closed_ids`) on any symbol; an entry of a
        symbol not held with none of those is deleted (a position gone while the daemon was
        stopped, or a backtest's)."""
        booked, last, closed = {}, {}, {}
        for symbol, saved in (await repository.load_state(EXTERNAL_BOOKED)).items():
            try:
                if saved.get("closed_ids"):
                    closed[symbol] = _trade_ids(saved, "closed_ids")
                if symbol not in held:
                    if symbol not in closed:
                        await repository.delete_state(EXTERNAL_BOOKED, symbol)
                    continue
                booked[symbol] = _trade_ids(saved)
                if saved.get("last_exit") is not None:
                    last[symbol] = _last_exit(saved["last_exit"])
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError) as error:
                booked.pop(symbol, None)
                closed.pop(symbol, None)
                await _dropped(repository, symbol, saved, repr(error))
        return cls(booked, last, closed, keep_closed=keep_closed)

    def last_exits(self) -> Mapping[str, LastExit]:
        """By symbol held, the last exit of ours that left some of the position (a copy: a
        plan reads it while the books move on)."""
        return dict(self._last)

    def left_out(self) -> Mapping[str, frozenset[str]]:
        """By symbol, the trades a reduction is never booked at: those booked for the
        position held, and for those gone on the symbol (the newest `CLOSED_KEPT`)."""
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
        last_now: Mapping[str, LastExit] | None = None,
    ) -> BookedChanges:
        """What a plan booking `booked_now` (`Plan.reducing_trades`) and `last_now`
        (`Plan.last_exits`) and leaving `held` changes for the `symbols` accepted: the trades
        added for each still held, its last exit of ours, each no longer held forgotten.
        Written with the plan's bookings (keeper/carry.py), then `keep`: a stop between the
        bookings and this memory would forget the trades."""
        booked, last_now = self._booked, last_now or {}
        if not booked_now and not booked and not last_now:  # a backtest's ticks
            return _NO_CHANGES
        saved: dict[str, frozenset[str]] = {}
        last: dict[str, LastExit] = {}
        for symbol in sorted((booked_now.keys() | last_now.keys()) & set(held)):
            ids = booked.get(symbol, frozenset()) | booked_now.get(symbol, frozenset())
            exit_ = last_now.get(symbol) or self._last.get(symbol)
            if (ids != booked.get(symbol) or exit_ != self._last.get(symbol)) and symbols(symbol):
                saved[symbol] = ids
                if exit_ is not None:
                    last[symbol] = exit_
        gone = (booked.keys() | booked_now.keys()) - set(held)
        closed = {
            s: newest(
                self._closed.get(s, frozenset())
                | booked.get(s, frozenset())
                | booked_now.get(s, frozenset())
            )
            for s in sorted(gone)
            if symbols(s) and self._keep_closed
        }
        deleted = [s for s in sorted(booked.keys() - set(held)) if symbols(s)]
        kept = {s: ids for s, ids in self._closed.items() if s in saved}
        return BookedChanges(saved, deleted, closed, last, kept)

    def keep(self, changes: BookedChanges) -> None:
        """Take `changes` as written."""
        self._booked.update(changes.saved)
        self._last.update(changes.last)
        for symbol in changes.deleted:
            self._booked.pop(symbol, None)
            self._last.pop(symbol, None)
        self._closed.update(changes.closed)


@record
class BookedChanges:
    """By symbol, the trade ids to remember now, and the symbols to forget."""

    saved: Mapping[str, frozenset[str]]
    deleted: Sequence[str]  # the symbols whose position is gone (their entry: `closed`)
    closed: Mapping[str, frozenset[str]]  # the trades of each position gone
    last: Mapping[str, LastExit]  # of the symbols saved
    closed_kept: Mapping[str, frozenset[str]] = field(default_factory=dict)  # of those saved

    @property
    def state(self) -> list[StateWrite]:
        writes: list[StateWrite] = []
        for symbol, ids in self.saved.items():
            entry: dict[str, Any] = {"trade_ids": sorted(ids)}
            if symbol in self.last:
                entry["last_exit"] = self.last[symbol].encoded()
            if self.closed_kept.get(symbol):
                entry["closed_ids"] = sorted(self.closed_kept[symbol])
            writes.append((EXTERNAL_BOOKED, symbol, entry))
        for symbol, ids in self.closed.items():
            if symbol not in self.saved:
                writes.append(
                    (EXTERNAL_BOOKED, symbol, {"trade_ids": [], "closed_ids": sorted(ids)})
                )
        return writes

    @property
    def state_deleted(self) -> list[tuple[str, str]]:
        """The entries of positions gone whose trades are not kept (a backtest's: the
        others are written over with their `closed_ids`)."""
        return [(EXTERNAL_BOOKED, symbol) for symbol in self.deleted if symbol not in self.closed]


def newest(trade_ids: frozenset[str]) -> frozenset[str]:
    """The `CLOSED_KEPT` newest of `trade_ids` (Binance's grow with each trade of a symbol):
    a close booked before the last position gone may lie in a later read's window too (the
    campaign with a restart, seed 40236: an adopted short's open and close by hand, then our
    short and a flip of it — the close of the long it left read from 5 min before it, where
    the first short's trades lay)."""
    if len(trade_ids) <= CLOSED_KEPT:
        return trade_ids
    ordered = sorted(trade_ids, key=lambda i: (i.isdigit(), int(i) if i.isdigit() else 0, i))
    return frozenset(ordered[-CLOSED_KEPT:])


def _trade_ids(saved: Mapping[str, Any], key: str = "trade_ids") -> frozenset[str]:
    ids = saved[key]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise TypeError(f"{key} is not a list of trade ids: {ids!r}")
    return frozenset(ids)


def _last_exit(saved: Mapping[str, Any]) -> LastExit:
    texts = [saved[k] for k in ("order", "reason", "price", "time", "trade_id")]
    if not all(isinstance(t, str) for t in texts):
        raise TypeError(f"last_exit holds a value that is not text: {dict(saved)!r}")
    order, reason, price, time, trade_id = texts
    amount, moment = Decimal(price), datetime.fromisoformat(time)
    if not amount.is_finite() or amount <= 0 or moment.tzinfo is None:
        raise ValueError(f"last_exit's price or time is not one a trade has: {dict(saved)!r}")
    return LastExit(order, ExitReason(reason), amount, moment, trade_id)


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


_NO_CHANGES = BookedChanges({}, (), {}, {})
