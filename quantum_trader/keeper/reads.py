"""What a keeper tick reads of the exchange, and the one owner of how often it checks the
streams' mirror against REST (keeper/keeper.py calls it; the planning is pure elsewhere).

The mirror is used while the streams are usable; REST otherwise, every
`keeper.rest_check_interval_s` in full (positions and open conditional orders) to check the
mirror, every `keeper.rest_position_check_s` for positions alone (and the open conditional
orders of each held symbol while 4 at most are held: keeper/stop_check.py), and at once when
an order of ours booked from its answer has not been echoed by the stream. User-data events
carry no sequence number: only such reads find one that was lost. Each REST read is stamped
when it is sent, on the streams' clock (`ExchangeStreams.now`), so a reseed from it re-applies
only the events it may not show (execution/account_mirror.py).

With no usable stream every tick reads REST: the positions, and the open conditional orders
of each symbol held or named by the book while 4 at most are (weight 1 each; `_orders`), of
every symbol (weight 40) only at the full check, every `keeper.rest_check_interval_s`: the
one read that finds a stray stop of ours on a symbol the book does not name (was: weight 40
every tick, 480 a minute).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import ExchangePosition, ExchangeSnapshot, Fill, Order, SnapshotSource
from quantum_trader.errors import MarketDataError, RetryLater
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.fee_carry import read_fills as fills_of
from quantum_trader.keeper.fee_carry import say_fills_unread
from quantum_trader.keeper.plan import Observation, Plan
from quantum_trader.keeper.recheck import (
    POSITIONS_MOVED,
    mirror_difference,
    positions_difference,
    rest_recheck_of_trades,
)
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.keeper.stop_check import (
    STOPS_READ_PER_SYMBOL_AT_MOST,
    read_orders_of,
    stops_difference,
)
from quantum_trader.log import get_logger
from quantum_trader.ports import Exchange, ExchangeStreams
from quantum_trader.record import replace

log = get_logger("keeper")
Reads = tuple[dict[str, list[Fill]], frozenset[str]]  # fills read, and the ids not read


def symbols_of_ours(book: Book) -> frozenset[str]:
    """The symbols `book` holds a position or an order of ours (working or in flight) on:
    those whose open orders a tick may act on (a stop to place, move or release)."""
    working = (o.symbol for o in book.working.values())
    return frozenset((*book.positions, *working, *(i.symbol for i in book.intents.values())))


def with_firing(fresh: ExchangeSnapshot, mirrored: ExchangeSnapshot) -> ExchangeSnapshot:
    """`fresh` (REST, which agrees with the mirror) with the orders the mirror holds firing
    that it leaves out of the open ones: GET openAlgoOrders may not list firing orders
    (Binance does not say; recheck.mirror_difference), and the check's tick is planned from
    REST, so a stop executing would count as missing on that tick alone."""
    listed = {o.client_order_id for o in fresh.open_conditional_orders}
    firing = tuple(
        o
        for o in mirrored.open_conditional_orders
        if o.triggered_at is not None
        and o.client_order_id not in listed
        and fresh.lists_orders_of(o.symbol)
    )
    if not firing:
        return fresh
    return replace(fresh, open_conditional_orders=(*fresh.open_conditional_orders, *firing))


class ExchangeReads:
    """The keeper's reads of the exchange: the snapshot (mirror or REST), our orders looked
    up, their fills, the mark prices."""

    def __init__(
        self, exchange: Exchange, streams: ExchangeStreams | None, settings: KeeperSettings
    ) -> None:
        self._exchange = exchange
        self._streams = streams
        self._settings = settings
        self._rest_checked_at: datetime | None = None
        self._positions_checked_at: datetime | None = None  # REST read of positions alone

    def checked(self, now: datetime) -> None:
        """The exchange was read in full at `now` (a start's reconciliation, a repeated quiet
        tick): the next full check is due `rest_check_interval_s` later."""
        self._rest_checked_at = now

    async def snapshot(
        self,
        now: datetime,
        unechoed: Iterable[datetime],
        *,
        rest: bool,
        ours: Set[str] = frozenset(),
    ) -> ExchangeSnapshot:
        """The mirror while the streams are usable and it needs no check; REST otherwise, and
        every `rest_check_interval_s`, or as soon as the cheaper check of positions alone
        (every `rest_position_check_s`) finds them different: a position the stream did not
        show gets its stop this tick, not at the next full check. `ours`: the symbols the
        book names a position or order of ours on, whose orders a REST-only tick reads
        (`_orders`)."""
        streams = self._streams
        interval = timedelta(seconds=self._settings.rest_check_interval_s)
        due = self._rest_checked_at is None or now - self._rest_checked_at >= interval
        mirrored = streams.snapshot(now) if streams is not None else None
        positions: Mapping[str, ExchangePosition] | None = None
        positions_sent = self._sent(now)  # when the positions read alone was sent, if made
        if mirrored is not None and not rest and not due and not self._echo_overdue(now, unechoed):
            if not self._position_check_due(now):
                return mirrored
            positions = await self._positions_unlike(mirrored, now)
            if positions is None:
                return mirrored
        if positions is None:
            positions_sent = self._sent(now)
            positions = {p.symbol: p for p in await self._exchange.fetch_positions()}
        orders_sent = self._sent(now)
        wanted = None if mirrored is not None or due else ours | positions.keys()
        orders, orders_of = await self._orders(wanted)
        fresh = ExchangeSnapshot(
            positions_sent,
            SnapshotSource.REST,
            positions,
            orders,
            orders_taken_at=orders_sent,
            orders_of=orders_of,
        )
        self._positions_checked_at = now
        if orders_of is None:
            self._rest_checked_at = now
        if mirrored is None:
            return fresh
        difference = mirror_difference(mirrored, fresh)
        if streams is not None and difference:  # the reseed keeps its firing orders of ours
            log.warning("stream_mirror_differs", detail=difference)
            streams.reseed(fresh)
        return with_firing(fresh, mirrored)

    async def _orders(
        self, wanted: Set[str] | None
    ) -> tuple[tuple[Order, ...], frozenset[str] | None]:
        """The open conditional orders of `wanted` symbols and the symbols read, while they
        are STOPS_READ_PER_SYMBOL_AT_MOST at most (weight 1 each); of every symbol otherwise,
        or when `wanted` is None (weight 40: the full check, which alone finds a stray stop
        of ours on a symbol the book does not name). A symbol whose read fails is left out
        of those read: the planner acts on none of its orders this tick (keeper/settle.py `read`),
        so none is placed again or cancelled from a list it did not get."""
        if wanted is None or len(wanted) > STOPS_READ_PER_SYMBOL_AT_MOST:
            return tuple(await self._exchange.fetch_open_conditional_orders()), None
        read, failed = await read_orders_of(self._exchange, sorted(wanted))
        if failed:
            log.warning(
                "open_orders_read_failed",
                symbols=sorted(failed),
                error="; ".join(failed.values()),
                detail="nothing of theirs is planned this tick; read again at the next",
            )
        return tuple(o for orders in read.values() for o in orders), frozenset(read)

    def _sent(self, now: datetime) -> datetime:
        """The stamp of a read about to be sent: the streams' receipt clock, which a reseed
        compares each event's receipt with (the tick's `now` may be well before the read: a
        tick planned again from REST reads after its lookups; account_mirror.py)."""
        return self._streams.now() if self._streams is not None else now

    def _position_check_due(self, now: datetime) -> bool:
        """Whether the mirror's positions are to be checked against REST at `now`: once
        `rest_position_check_s` has passed since the last read of positions, held or not (a
        position opened by hand while nothing is held is one a lost event can hide too)."""
        last, every = self._positions_checked_at, self._settings.rest_position_check_s
        return last is None or now - last >= timedelta(seconds=every)

    async def _positions_unlike(
        self, mirrored: ExchangeSnapshot, now: datetime
    ) -> Mapping[str, ExchangePosition] | None:
        """The positions REST reports (positionRisk, weight 5) when they, or the open
        conditional orders of the few symbols held (`stops_difference`), differ from the
        mirror's; None when they agree, or could not be read (the mirror stands this tick and
        the check is made again at the next; orders unread wait for the next check)."""
        try:
            read = {p.symbol: p for p in await self._exchange.fetch_positions()}
        except (MarketDataError, RetryLater) as error:
            log.warning("position_check_failed", error=str(error))
            return None
        self._positions_checked_at = now
        if positions_difference(mirrored.positions, read):
            return read
        return read if await stops_difference(self._exchange, mirrored) else None

    async def recheck_after_trades(
        self, result: Plan, snapshot: ExchangeSnapshot, seen: Observation, *, moved: bool
    ) -> str | None:
        """Why `result`, planned with the account's trades, must be planned again from REST,
        said, or None: `rest_recheck_of_trades`, or the positions of the symbols whose trades
        were read moved since `snapshot`, read before them (`POSITIONS_MOVED`; not when the
        plan was made again for that already: `moved`)."""
        recheck = rest_recheck_of_trades(result, snapshot.source)
        if recheck is None and not moved:
            difference = await self.positions_moved(snapshot, seen.account_fills)
            if difference:
                log.info(POSITIONS_MOVED, detail=difference)
                return POSITIONS_MOVED
        if recheck is not None:
            log.info(recheck)
        return recheck

    async def positions_moved(self, snapshot: ExchangeSnapshot, symbols: Iterable[str]) -> str:
        """How the positions of `symbols` that `snapshot` holds read now (REST, weight 5)
        differ from it, or "": the account's trades, read after it, may list a trade it
        does not show (our stop filling in between, its market order's trade under an id
        not ours: the campaign with a person trading by hand, seed 33081). A read that
        fails: "" (the plan stands, as before)."""
        held = {s: snapshot.positions[s] for s in symbols if s in snapshot.positions}
        if not held:
            return ""
        try:
            read = {p.symbol: p for p in await self._exchange.fetch_positions()}
        except (MarketDataError, RetryLater) as error:
            log.warning("position_check_failed", error=str(error))
            return ""
        return positions_difference(held, {s: read[s] for s in held if s in read})

    def _echo_overdue(self, now: datetime, unechoed: Iterable[datetime]) -> bool:
        """The stream has not reported an order we booked from its answer (`unechoed`: when
        each such order was booked) within `stream_echo_timeout_s`: a missed event."""
        timeout = timedelta(seconds=self._settings.stream_echo_timeout_s)
        return any(now - booked >= timeout for booked in unechoed)

    async def look_up(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Order | None]:
        """Our orders in `wanted` by client order id, as the exchange answers (None: it does
        not know the order), told to the streams' mirror: an end the stream did not tell ends
        the mirror's order (one firing a reseed kept: execution/account_mirror.py)."""
        found: dict[str, Order | None] = {}
        for symbol, client_order_id in wanted:
            try:
                found[client_order_id] = await self._exchange.fetch_order(symbol, client_order_id)
            except (MarketDataError, RetryLater) as error:  # an unreadable answer: not found yet
                log.warning(
                    "order_lookup_failed", client_order_id=client_order_id, error=str(error)
                )
        if self._streams is not None and found:
            self._streams.apply_lookups(found)
        return found

    async def read_fills(self, wanted: Sequence[tuple[str, str]], *, again: bool = False) -> Reads:
        """The fills of each order in `wanted`, and the orders whose fills could not be read
        (unreachable, an answer the adapter cannot read, or no trade listed: each executed).
        `again`: orders whose fees are unread, read each tick until a bound; their failure was
        said when they were booked and their end will be (`fees_read`, `fees_unread_given_up`,
        `trade_fees_incomplete`), so each tick's is a debug line, not a warning an order a tick
        (`say_fills_unread`)."""
        fills: dict[str, list[Fill]] = {}
        failed: set[str] = set()
        for symbol, client_order_id in wanted:  # each ended with something executed
            read, why = await fills_of(self._exchange, symbol, client_order_id)
            if read is not None:
                fills[client_order_id] = read
                continue
            failed.add(client_order_id)
            say_fills_unread(client_order_id, why, again=again)
        return fills, frozenset(failed)

    async def marks(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal]:
        """The streamed marks that are fresh, and only the others read over REST (one stale
        symbol costs weight 1 a tick, not premiumIndex of all symbols: 10). What cannot be
        read is left out (`mark_prices_unavailable`)."""
        if not symbols:
            return {}
        streamed = self._streams.mark_prices(symbols, now) if self._streams is not None else None
        marks = dict(streamed or {})
        stale = [symbol for symbol in symbols if symbol not in marks]
        if not stale:
            return marks
        try:
            marks.update(await self._exchange.fetch_mark_prices(stale))
        except (MarketDataError, RetryLater) as error:
            log.warning("mark_prices_unavailable", symbols=stale, error=str(error))
        return marks
