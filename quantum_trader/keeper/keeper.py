"""The position keeper: the one owner of orders and positions (the async shell).

Only the keeper writes order and position state. It holds the lock, the client-order-id
scheme and the books; the executor asks it to `enter` (keeper/entry.py), the governor to
`close_all`, and everyone else reads `view()`, an immutable picture of the books.

`tick` is start-up reconciliation, crash recovery and the 5 s monitor step at once: read what
the exchange holds (the streams' mirror when usable, checked against REST: keeper/reads.py),
look up our unsettled orders, read the fills of
those that ended and of those booked without them (keeper/fees.py), plan (keeper/plan.py,
pure) and carry the plan out (keeper/carry.py). An order whose outcome is unknown triggers a
tick at once and blocks entries on its symbol until it is settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ExchangePosition,
    ExchangeSnapshot,
    ExitReason,
    MarketRules,
    Order,
    OrderRequest,
    Position,
    Regime,
    StreamHealth,
    StreamMoves,
)
from quantum_trader.errors import OrderRejected, QuantumTraderError, RetryLater
from quantum_trader.keeper.alerts import AlertListener
from quantum_trader.keeper.before_entry import read_before_entries
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.carry import Carrier
from quantum_trader.keeper.checks import ProtectionChecks
from quantum_trader.keeper.entry import Entering
from quantum_trader.keeper.entry_fresh import Now
from quantum_trader.keeper.external import (
    EXTERNAL_NOTES,
    closed_positions,
    held_as_booked,
    own_trades,
    read_account_fills,
    unread_external_exits,
)
from quantum_trader.keeper.external_saved import ExternalBooked
from quantum_trader.keeper.fees import fee_reads
from quantum_trader.keeper.flat_before import FlatBefore
from quantum_trader.keeper.flat_reads import FlatReads, closes_at
from quantum_trader.keeper.forced import read_force_orders
from quantum_trader.keeper.ids import ClientOrderIds, Purpose, is_ours
from quantum_trader.keeper.last_stand import stops_to_place
from quantum_trader.keeper.plan import (
    Context,
    Observation,
    as_looked_up,
    lookups_needed,
    orders_to_read_fills,
    plan,
)
from quantum_trader.keeper.protect import CancelOrder
from quantum_trader.keeper.reads import ExchangeReads, Reads, symbols_of_ours
from quantum_trader.keeper.recheck import POSITIONS_MOVED, rest_recheck
from quantum_trader.keeper.restore import restored
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.keeper.steady import plans_nothing, steady
from quantum_trader.keeper.views import EntryListener, KeeperView
from quantum_trader.log import bound_context, get_logger
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import Exchange, ExchangeStreams, Repository

log = get_logger("keeper")
# Compared per symbol at each tick: kept here, not read through their class (domain/enums.py).
_CHOPPY, _TRENDING = Regime.CHOPPY, Regime.TRENDING
ConditionsFn = Callable[[], tuple[bool, Mapping[str, Regime]]]


class PositionKeeper(Entering):
    def __init__(
        self,
        exchange: Exchange,
        repository: Repository,
        ledger: Ledger,
        rules: Mapping[str, MarketRules],
        settings: KeeperSettings,
        monitor: MonitorSettings,
        book: Book,
        ids: ClientOrderIds,
        *,
        streams: ExchangeStreams | None = None,
        admits: Callable[[OrderRequest], bool] = lambda request: True,
        conditions: ConditionsFn = lambda: (False, {}),
        external: ExternalBooked | None = None,
        clock: Now | None = None,
        flat_reads: FlatReads | None = None,
        flat_before: FlatBefore | None = None,
    ) -> None:
        self._exchange = exchange
        self._repository = repository
        self._rules = rules
        self._settings = settings
        self._monitor = monitor
        self._streams = streams
        self._conditions = conditions
        self._clock = clock  # the time an entry is sent at, not its cycle's (keeper/entry_fresh.py)
        self._lock = asyncio.Lock()
        self._reconciled_at: datetime | None = None
        # By symbol, the last tick that found the exchange holding the position as booked: where
        # a reduction with no order of ours is looked for (keeper/external.py).
        self._held_as_booked: dict[str, datetime] = {}
        # The positions an earlier run booked that no whole tick has found held as booked.
        self._restored_unseen = frozenset(book.positions)
        self._reads = ExchangeReads(exchange, streams, settings)  # and their cadence
        self._last_regime: dict[str, Regime] = {}
        # The regimes last moved into that memory (the market view's own mapping, which the
        # views of an hour share), and the contexts that then see no turn, by `defensive`.
        self._absorbed: Mapping[str, Regime] | None = None
        self._calm = {
            defensive: Context(rules, settings, monitor, defensive, frozenset())
            for defensive in (False, True)
        }
        self._filled_known: frozenset[str] = frozenset()  # see keeper/recheck.py
        # The last tick's time and the positions it read; by entry of ours sent when that read
        # showed its symbol flat, that time (keeper/flat_before.py).
        self._last_read: tuple[datetime, Mapping[str, ExchangePosition]] | None = None
        self._flat_before = flat_before or FlatBefore()
        # By symbol, the last whole tick that read it flat (keeper/flat_reads.py).
        self._flat_reads = flat_reads or FlatReads()
        self._checks = ProtectionChecks()  # a cache of a pure function: plans do not change
        self._ids = ids  # the carrier issues every other id; `enter` its entry's, told first
        self.entry_listeners: list[EntryListener] = []
        self.wake = asyncio.Event()  # set when a tick is wanted before the next interval
        self._carrier = Carrier(
            exchange,
            repository,
            ledger,
            ids,
            book,
            admits=admits,
            echo=streams is not None,
            wake=self.wake,
            external=external,  # the trades booked for reductions (keeper/external_saved.py)
        )

    @classmethod
    async def load(
        cls,
        exchange: Exchange,
        repository: Repository,
        ledger: Ledger,
        rules: Mapping[str, MarketRules],
        settings: KeeperSettings,
        monitor: MonitorSettings,
        *,
        streams: ExchangeStreams | None = None,
        admits: Callable[[OrderRequest], bool] = lambda request: True,
        conditions: ConditionsFn = lambda: (False, {}),
        clock: Now | None = None,
        beside_a_person: bool = True,
    ) -> PositionKeeper:
        """The keeper as the last run left it (keeper/restore.py). `beside_a_person`: a
        person may trade on the account (the daemon's; not a backtest's), so where it read
        each symbol flat is saved for the next run (keeper/flat_reads.py) and the trades of
        positions gone are kept left out (keeper/external_saved.py)."""
        book, ids, external = await restored(repository, keep_closed=beside_a_person)
        flat_reads, flat_before = None, None
        if beside_a_person:
            booked = book.positions.keys() | book.unpriced.keys()
            ours = {s for s, p in book.positions.items() if is_ours(p.entry_order_id)}
            flat_reads = await FlatReads.restored(repository, rules, booked, ours)
            flat_before = await FlatBefore.restored(repository, book)
        return cls(
            exchange,
            repository,
            ledger,
            rules,
            settings,
            monitor,
            book,
            ids,
            streams=streams,
            admits=admits,
            conditions=conditions,
            external=external,
            clock=clock,
            flat_reads=flat_reads,
            flat_before=flat_before,
        )

    # -- what everyone reads ---------------------------------------------------------------------

    def view(self) -> KeeperView:
        book = self._carrier.book
        streams = self._streams.health() if self._streams is not None else StreamHealth()
        return KeeperView(
            dict(book.positions),
            dict(book.blocked()),
            len(book.intents),
            self._reconciled_at,
            streams,
        )

    def wake_events(self) -> tuple[asyncio.Event, ...]:
        """What should make the monitor tick at once: the keeper's own request (an order's
        outcome is unknown) and, with streams, any user-data event (a fill, a triggered stop)."""
        if self._streams is None:
            return (self.wake,)
        return (self.wake, self._streams.updated)

    @property
    def positions(self) -> Mapping[str, Position]:
        return self._carrier.book.positions

    def blocked_symbols(self) -> Mapping[str, str]:
        """`view().blocked` alone (the executor asks every cycle; the rest of a view is not
        needed there)."""
        return self._carrier.book.blocked()

    @property
    def book(self) -> Book:
        return self._carrier.book

    def quiet_at(
        self, now: datetime, snapshot: ExchangeSnapshot, marks: Mapping[str, Decimal]
    ) -> bool:
        """Whether a tick at `now` reading `snapshot` and `marks` would leave everything as it
        is (keeper/steady.py `plans_nothing`)."""
        context = self._context(advance=False)
        known = self._filled_known
        return plans_nothing(self._carrier.book, snapshot, marks, now, context, self._checks, known)

    def steady_at(
        self, now: datetime, listed: Mapping[str, Sequence[Order]], marks: Mapping[str, Decimal]
    ) -> dict[str, Position] | None:
        """After a tick that changed nothing: the positions a tick at `now` finding the exchange
        as then but for `marks` would leave — its own, or with new highs or lows recorded — or
        None when it would do more (keeper/steady.py)."""
        context = self._context(advance=False)
        return steady(self._carrier.book, listed, marks, now, context, self._checks)

    async def record_steady_tick(self, now: datetime, positions: Mapping[str, Position]) -> None:
        """What a tick at `now` changes that `steady_at` (or `quiet_at`) found would only leave
        `positions`: those positions (saved where a new high or low was recorded), and what a
        tick that changes nothing changes (`repeat_quiet_tick`). A backtest steps so instead
        of ticking."""
        async with self._lock:
            self.repeat_quiet_tick(now)
            await self._carrier.keep_positions(positions)

    def repeat_quiet_tick(self, now: datetime) -> None:
        """What a tick that changes nothing changes in the keeper: its regime memory and when
        it last reconciled (a backtest repeats such ticks: replay_quiet.py). Only without
        streams: every tick then reads the exchange; with streams only when due."""
        if self._streams is not None:
            raise RuntimeError("repeat_quiet_tick: only for a keeper without streams")
        self._context(advance=True)
        self._filled_known = frozenset()
        self._reconciled_at = now
        self._reads.checked(now)
        self._held_as_booked = dict.fromkeys(self._carrier.book.positions, now)

    @property
    def alert_listeners(self) -> list[AlertListener]:
        """Called with every position the keeper could not protect as planned (alerts.py)."""
        return self._carrier.alert_listeners

    # -- the tick ----------------------------------------------------------------------------------

    async def tick(self, now: datetime, *, rest: bool = False) -> None:
        """Reconcile with the exchange and manage every position once (see the module doc)."""
        async with self._lock:
            await self._tick(now, rest=rest)

    async def _tick(
        self, now: datetime, *, rest: bool = False, fees: Reads | None = None, moved: bool = False
    ) -> None:
        """One tick; `fees`: the fills of the orders whose fees are unread, when this tick read
        them already (a plan made again reads them no second time); `moved`: planned again
        because the positions moved after the account's trades were read (once a tick)."""
        for event in self.wake_events():
            event.clear()
        book, known = self._carrier.book, self._filled_known  # known before this read
        reads = self._reads
        unechoed = (booked for _, booked in book.unechoed.values())
        snapshot = await reads.snapshot(now, unechoed, rest=rest, ours=symbols_of_ours(book))
        self._last_read = now, snapshot.positions
        found = await reads.look_up(lookups_needed(book, snapshot))
        snapshot = as_looked_up(snapshot, found, book)
        filled = orders_to_read_fills(book, snapshot, found)
        self._filled_known = frozenset(cid for _, cid in filled)
        fills, not_read = await reads.read_fills(filled)
        if fees is None:
            fees = await reads.read_fills(fee_reads(book, filled), again=True)
        fills, not_read = {**fills, **fees[0]}, not_read | fees[1]
        symbols = sorted(set(book.positions) | set(snapshot.positions) | set(book.unpriced))
        marks = await reads.marks(symbols, now)
        context = self._context(advance=True)
        last_exits = self._carrier.external.last_exits()
        moves = self._streams.moved() if self._streams is not None else StreamMoves()
        # Asked with `moves`, not after the awaits below: a seed landing meanwhile would let
        # the flat reads move past what `moves` could not show yet (campaign seed 34423).
        watched = self._streams is None or self._streams.health().usable
        flat = self._flat_reads.unbooked(book.positions, moves)
        again = self._flat_reads.again(book.positions, moves)
        before = self._flat_reads.before_entry(book.positions)
        seen = Observation(
            snapshot,
            found,
            fills,
            marks,
            known,
            not_read,
            last_exits=last_exits,
            flat_at=flat,
            flat_again=again,
            restored_unseen=self._restored_unseen,
        )
        if before:  # round trips by hand before an entry of ours (keeper/before_entry.py)
            left_out, rules = self._carrier.external.left_out(), self._rules
            seen = await read_before_entries(
                self._exchange, self._repository, seen, before, book, rules, left_out, now
            )
        result = plan(book, seen, now, context, self._checks)
        recheck = rest_recheck(result, snapshot.source, known)
        if recheck is not None:  # the plan is pure: drop it and plan again (keeper/recheck.py)
            log.info(recheck)
            await self._tick(now, rest=True, fees=fees, moved=moved)
            return
        external = unread_external_exits(result, seen)
        if external:  # booked from the account's own trades (keeper/external.py)
            positions, at = closed_positions(book, self._held_as_booked, result)
            ours = await own_trades(self._repository, positions, external, seen.fills)
            booked = ours.left_out(self._carrier.external.left_out())
            since = self._flat_before.since(ours.entered, positions)
            since = self._flat_reads.before_close(since, positions, moves)
            first = ours.entered  # the round trips before it told apart (external.py)
            seen = await read_account_fills(
                self._exchange, seen, positions, external, at, now, booked, since, moves, first
            )
            result = plan(book, seen, now, context, self._checks)
            recheck = await reads.recheck_after_trades(result, snapshot, seen, moved=moved)
            if recheck is not None:
                moved = moved or recheck == POSITIONS_MOVED
                await self._tick(now, rest=True, fees=fees, moved=moved)
                return
            took = result.reducing_trades  # our own exits' too: only the closes by hand named
            reduced = {n.symbol for n in result.notes if n.event in EXTERNAL_NOTES}
            by_hand = {s: took[s] for s in external if s in took and s in reduced}
            named = await read_force_orders(self._exchange, seen, by_hand)
            if named is not None:  # a liquidation or ADL (keeper/forced.py)
                result = plan(book, named, now, context, self._checks)
        closed = closes_at(book.positions.keys(), result, seen)  # the book changes next
        restored = self._restored_unseen
        await self._carrier.carry_out(result, now, context)
        answered = self._carrier.answered_closes()  # the tick's positions still show them
        closed |= answered
        await self._entries_void(result)
        self._held_as_booked = held_as_booked(
            self._held_as_booked, self._carrier.book.positions, snapshot, now
        )
        if self._restored_unseen:
            still = self._carrier.book.positions.keys() - self._held_as_booked.keys()
            self._restored_unseen = self._restored_unseen & still
        self._flat_reads.after_tick(
            self._rules,
            {s: p for s, p in snapshot.positions.items() if s not in answered},
            self._carrier.book.positions,
            now,
            seen.account_unread | result.flat_kept,
            closed,
            restored,
            watched=watched,
            moves=moves,
            before_read=seen.before_entry.keys(),
        )
        await self._flat_reads.save()
        self._reconciled_at = now

    def _context(self, *, advance: bool) -> Context:
        """The planner's context; `advance` moves the regime memory on (once per tick), so a
        TRENDING → CHOPPY turn is seen by exactly one tick."""
        defensive, regimes = self._conditions()
        if regimes is self._absorbed:  # the memory holds these already: no turn to see
            return self._calm[defensive]
        last = self._last_regime
        choppy = frozenset(
            symbol
            for symbol, regime in regimes.items()
            if regime is _CHOPPY and last.get(symbol) is _TRENDING
        )
        if advance:
            last.update(regimes)
            self._absorbed = regimes
        return Context(self._rules, self._settings, self._monitor, defensive, choppy)

    # -- what the governor asks for (the executor's `enter`: keeper/entry.py) ----------------------

    async def _reconcile_now(self, now: datetime) -> None:
        try:
            await self._tick(now, rest=True)
        except QuantumTraderError as error:
            log.warning("reconcile_deferred", error=str(error))

    async def protect_unbooked(self, now: datetime) -> int:
        """Nothing can be booked any more (the daemon stops on a StorageFailed): read the
        exchange, plan as a tick would, and send the protective stops the plan places without
        saving their intents (keeper/last_stand.py). Returns how many were placed."""
        async with self._lock:
            book, reads = self._carrier.book, self._reads
            snapshot = await reads.snapshot(now, (), rest=True, ours=symbols_of_ours(book))
            found = await reads.look_up(lookups_needed(book, snapshot))
            snapshot = as_looked_up(snapshot, found, book)
            fills, not_read = await reads.read_fills(orders_to_read_fills(book, snapshot, found))
            marks = await reads.marks(sorted(set(book.positions) | set(snapshot.positions)), now)
            seen = Observation(snapshot, found, fills, marks, self._filled_known, not_read)
            context = self._context(advance=False)
            result = plan(book, seen, now, context, self._checks)
            placed = 0
            for stop in stops_to_place(result, snapshot):
                try:
                    await self._carrier.place_stop_unbooked(
                        stop, now, context.rules.get(stop.symbol)
                    )
                except QuantumTraderError as error:
                    log.error("protective_stop_failed", symbol=stop.symbol, detail=str(error))
                    continue
                placed += 1
                log.warning(
                    "protective_stop_placed_unbooked", symbol=stop.symbol, why=stop.why,
                    trigger=str(stop.trigger), quantity=str(stop.quantity),
                )  # fmt: skip
            return placed

    async def close_all(self, reason: ExitReason, now: datetime) -> None:
        """Close every position at market and cancel our conditional orders, but not those of
        positions still open (a close refused or unsettled): their stops protect them. Logs
        `flattened` with the symbols it sent closes for (`closing`: those it found held)."""
        async with self._lock:
            await self._reconcile_now(now)
            context = self._context(advance=False)
            book = self._carrier.book
            closing = [
                p
                for p in book.positions.values()
                if all(i.purpose is not Purpose.EXIT for i in book.intents_for(p.symbol))
            ]
            for position in closing:
                with bound_context(symbol=position.symbol):
                    try:
                        await self._carrier.send_exit(
                            position.symbol,
                            position.side.exit_order_side,
                            position.quantity,
                            now,
                            context,
                            reason,
                        )
                    except (OrderRejected, RetryLater) as error:
                        log.error("close_failed", error=str(error))
            ours = [
                CancelOrder(o.symbol, o.client_order_id)
                for o in await self._exchange.fetch_open_conditional_orders()
                if is_ours(o.client_order_id)
                and o.symbol not in self._carrier.book.positions
                and o.triggered_at is None  # executing: Binance refuses to cancel it
            ]
            await self._carrier.act(ours, now, context)
        log.warning("flattened", reason=reason, closing=[p.symbol for p in closing])
