"""What the exchange holds, as one immutable picture: the position keeper plans against it.

A snapshot comes either from the websocket streams' mirror of the account (STREAM) or from
REST reads (REST); the keeper does not care which, only that it is whole: every non-zero
position, every open conditional order (ours and others') — or of the symbols it names, said
in the snapshot (`orders_of`) — and the latest state of those of our orders the source has
reported, by client order id.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import field
from datetime import datetime
from enum import StrEnum

from quantum_trader.domain.trading import ExchangePosition, Order
from quantum_trader.record import record


class SnapshotSource(StrEnum):
    STREAM = "STREAM"
    REST = "REST"


@record
class ExchangeSnapshot:
    """The account at `taken_at`: for a REST snapshot, no later than when the read of its
    positions was sent, on the clock that stamps the receipt of the user-data stream's events
    (`ExchangeStreams.now`), so a reseed of the streams' mirror can tell which events the reads
    may not show (execution/account_mirror.py); `orders_taken_at` likewise for the read of the
    open conditional orders (None: `taken_at`, when it was sent first or at once).

    `positions`: non-zero one-way positions by symbol. `open_conditional_orders`: every open
    STOP_MARKET / TAKE_PROFIT_MARKET order on the account — or, when `orders_of` is a set,
    those of its symbols alone (a REST read per symbol: keeper/reads.py); no order of any other
    symbol is known to be open or gone. `orders`: the latest state the source has seen of
    orders by client order id (the user-data stream reports every update of ours; a REST
    snapshot holds only what was looked up).
    """

    taken_at: datetime
    source: SnapshotSource
    positions: Mapping[str, ExchangePosition]
    open_conditional_orders: tuple[Order, ...]
    orders: Mapping[str, Order] = field(default_factory=dict)
    orders_taken_at: datetime | None = None
    orders_of: frozenset[str] | None = None  # None: every symbol's

    def lists_orders_of(self, symbol: str) -> bool:
        """Whether `open_conditional_orders` says which orders of `symbol` are open."""
        return self.orders_of is None or symbol in self.orders_of

    @property
    def conditional_orders_taken_at(self) -> datetime:
        """When the read of the open conditional orders was sent (see the class doc)."""
        return self.orders_taken_at or self.taken_at


@record
class StreamHealth:
    """How the websocket streams are doing, for the keeper, health and metrics.

    `usable` is True when the user-data stream is connected and its mirror was seeded by a
    REST snapshot after the last (re)connect, so `snapshot()` can be trusted.
    """

    connected: bool = False
    usable: bool = False
    last_message_at: datetime | None = None
    reconnects: int = 0
    gaps_detected: int = 0
    detail: str = "no streams"


@record
class StreamMoves:
    """What the user-data stream said moved (execution/account_mirror.py): by symbol, when
    the latest event about its position or a fill on it was received; `lost_before`, when
    the read of the mirror's last seed (after a (re)connect, or a gap a REST check found)
    was sent — an event before it may have been lost, so any symbol may have moved then
    (None: never seeded); `lost_since`, the receipt of the last event before the gap that
    seed followed (or the read of the seed before it): every event up to it came, so what
    was lost lies between the two (None: not known — never seeded before); `traded`, by
    symbol, the trades reported among the events kept (the last 5 min), by trade id, at
    their transaction time. Times on the clock that stamps each event's receipt, but
    `traded`'s (Binance's)."""

    by_symbol: Mapping[str, datetime] = field(default_factory=dict)
    lost_before: datetime | None = None
    lost_since: datetime | None = None
    traded: Mapping[str, Mapping[str, datetime]] = field(default_factory=dict)

    def unlisted(
        self, symbol: str, listed: Collection[str], start: datetime, end: datetime
    ) -> datetime | None:
        """The time of the latest trade on `symbol` reported within [`start`, `end`] whose id
        is not in `listed` (what GET userTrades listed for that window: Binance lists a
        trade a while after it), or None."""
        times = [
            at
            for trade_id, at in self.traded.get(symbol, {}).items()
            if start <= at <= end and trade_id not in listed
        ]
        return max(times, default=None)

    def since(self, symbol: str, at: datetime) -> bool:
        """Whether `symbol` may have moved at or after `at`: an event received then, or a
        seed's read sent after it (what was lost lies before that read)."""
        moved = self.by_symbol.get(symbol)
        lost = self.lost_before
        return (moved is not None and moved >= at) or (lost is not None and lost > at)

    def unseen_from(self, at: datetime) -> datetime:
        """Where a look at `at` that trusted the stream stops being sure nothing moved: `at`,
        or earlier where the last seed's gap began before it — a look between the gap's
        start and its discovery (a connection dead before the client noticed) read a symbol
        flat with the events since lost (the hand-trading campaign, seed 32930)."""
        lost, since = self.lost_before, self.lost_since
        if lost is not None and lost > at and since is not None and since < at:
            return since
        return at
