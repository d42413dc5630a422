"""The position keeper: the one owner of orders and positions (the async shell).

Only the keeper writes order and position state. It holds the lock, the client-order-id
scheme and the books; the executor asks it to `enter`, the governor to `close_all`, and
everyone else reads `view()`, an immutable picture it publishes after every change.

`tick` is start-up reconciliation, crash recovery and the 5 s monitor step at once: read what
the exchange holds (the streams' mirror when usable, REST otherwise and every
`rest_check_interval_s` to check the mirror), look up our unsettled orders, read the fills of
those that ended, plan (keeper/plan.py, pure) and carry the plan out. An order whose outcome
is unknown triggers a tick at once and blocks entries on its symbol until it is settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ClosedTrade,
    ExchangeSnapshot,
    ExitReason,
    Fill,
    MarketRules,
    Order,
    OrderKind,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    ReasonCode,
    Regime,
    SizedOrder,
    SnapshotSource,
    StreamHealth,
)
from quantum_trader.errors import (
    MarketDataError,
    OrderRejected,
    QuantumTraderError,
    RetryLater,
)
from quantum_trader.keeper.answer import answered
from quantum_trader.keeper.book import Book, EntryPlan, Intent, is_unsettled
from quantum_trader.keeper.booking import finish_trade
from quantum_trader.keeper.ids import ClientOrderIds, Purpose, is_ours
from quantum_trader.keeper.orders import INTENTS, OrderDesk
from quantum_trader.keeper.plan import (
    Context,
    Observation,
    Plan,
    lookups_needed,
    orders_to_read_fills,
    plan,
)
from quantum_trader.keeper.protect import (
    CancelOrder,
    OrderAction,
    PlaceStop,
    PlaceTarget,
    SendExit,
)
from quantum_trader.keeper.settings import KeeperSettings
from quantum_trader.log import bound_context, get_logger
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import Exchange, ExchangeStreams, Repository

log = get_logger("keeper")
RUN_STATE = ("keeper", "run")
ConditionsFn = Callable[[], tuple[bool, Mapping[str, Regime]]]


@dataclass(frozen=True, slots=True)
class KeeperView:
    """What the keeper publishes: read by the executor, the governor, status and metrics."""

    positions: Mapping[str, Position] = field(default_factory=dict)
    blocked: Mapping[str, str] = field(default_factory=dict)
    unsettled: int = 0
    reconciled_at: datetime | None = None
    streams: StreamHealth = field(default_factory=StreamHealth)


@dataclass(frozen=True, slots=True)
class EntryResult:
    """How an entry went: the position, or why there is none (yet)."""

    position: Position | None
    detail: str = ""

    @property
    def unknown(self) -> bool:
        return self.position is None and self.detail.startswith("unknown")


class PositionKeeper:
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
    ) -> None:
        self._exchange = exchange
        self._repository = repository
        self._ledger = ledger
        self._rules = rules
        self._settings = settings
        self._monitor = monitor
        self._book = book
        self._ids = ids
        self._streams = streams
        self._admits = admits
        self._conditions = conditions
        self._desk = OrderDesk(exchange, repository)
        self._lock = asyncio.Lock()
        self._reconciled_at: datetime | None = None
        self._rest_checked_at: datetime | None = None
        self._last_regime: dict[str, Regime] = {}
        self.wake = asyncio.Event()  # set when a tick is wanted before the next interval

    @classmethod
    async def load(
        cls,
        exchange: Exchange,
        repository: Repository,
        ledger: Ledger,
        rules: Mapping[str, MarketRules],
        settings: KeeperSettings,
        monitor: MonitorSettings,
        **options: object,
    ) -> PositionKeeper:
        """The keeper as the last run left it: open positions and unsettled orders of ours."""
        positions = {p.symbol: p for p in await repository.open_positions()}
        extras = await repository.load_state(INTENTS)
        intents = {
            o.client_order_id: Intent.restore(o, extras.get(o.client_order_id))
            for o in await repository.open_orders()
            if is_ours(o.client_order_id) and is_unsettled(o)
        }
        run = int((await repository.load_state(RUN_STATE[0])).get(RUN_STATE[1], {}).get("n", 0))
        await repository.save_state(*RUN_STATE, {"n": run + 1})
        book = Book(positions, intents)
        return cls(
            exchange,
            repository,
            ledger,
            rules,
            settings,
            monitor,
            book,
            ClientOrderIds(run + 1),
            **options,  # type: ignore[arg-type]
        )

    # -- what everyone reads -----------------------------------------------------------------------

    def view(self) -> KeeperView:
        streams = self._streams.health() if self._streams is not None else StreamHealth()
        return KeeperView(
            dict(self._book.positions),
            blocked(self._book),
            len(self._book.intents),
            self._reconciled_at,
            streams,
        )

    @property
    def positions(self) -> Mapping[str, Position]:
        return self._book.positions

    # -- the tick ----------------------------------------------------------------------------------

    async def tick(self, now: datetime, *, rest: bool = False) -> None:
        """Reconcile with the exchange and manage every position once (see the module doc)."""
        async with self._lock:
            await self._tick(now, rest=rest)

    async def _tick(self, now: datetime, *, rest: bool = False) -> None:
        self.wake.clear()
        snapshot = await self._snapshot(now, rest=rest)
        found = await self._look_up(lookups_needed(self._book, snapshot))
        fills = await self._read_fills(orders_to_read_fills(self._book, snapshot, found))
        symbols = sorted(set(self._book.positions) | set(snapshot.positions))
        marks = await self._marks(symbols, now)
        observation = Observation(snapshot, found, fills, marks)
        await self._carry_out(plan(self._book, observation, now, self._context()), now)
        self._reconciled_at = now

    async def _snapshot(self, now: datetime, *, rest: bool) -> ExchangeSnapshot:
        streams = self._streams
        due = self._rest_checked_at is None or now - self._rest_checked_at >= timedelta(
            seconds=self._settings.rest_check_interval_s
        )
        mirrored = streams.snapshot(now) if streams is not None else None
        if mirrored is not None and not rest and not due:
            return mirrored
        fresh = ExchangeSnapshot(
            now,
            SnapshotSource.REST,
            {p.symbol: p for p in await self._exchange.fetch_positions()},
            tuple(await self._exchange.fetch_open_conditional_orders()),
        )
        self._rest_checked_at = now
        if streams is not None and mirrored is not None and _differs(mirrored, fresh):
            log.warning("stream_mirror_differs", detail=_difference(mirrored, fresh))
            streams.reseed(fresh)
        return fresh

    async def _look_up(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Order | None]:
        found: dict[str, Order | None] = {}
        for symbol, client_order_id in wanted:
            try:
                found[client_order_id] = await self._exchange.fetch_order(symbol, client_order_id)
            except RetryLater as error:
                log.warning(
                    "order_lookup_failed", client_order_id=client_order_id, error=str(error)
                )
        return found

    async def _read_fills(self, wanted: Sequence[tuple[str, str]]) -> dict[str, list[Fill]]:
        fills: dict[str, list[Fill]] = {}
        for symbol, client_order_id in wanted:
            try:
                fills[client_order_id] = await self._exchange.fetch_fills(symbol, client_order_id)
            except RetryLater as error:
                log.warning("fills_read_failed", client_order_id=client_order_id, error=str(error))
        return fills

    async def _marks(self, symbols: Sequence[str], now: datetime) -> dict[str, Decimal]:
        if not symbols:
            return {}
        if self._streams is not None:
            streamed = self._streams.mark_prices(symbols, now)
            if streamed is not None:
                return streamed
        try:
            return await self._exchange.fetch_mark_prices(symbols)
        except (MarketDataError, RetryLater) as error:
            log.warning("mark_prices_unavailable", error=str(error))
            return {}

    def _context(self, *, advance: bool = True) -> Context:
        """The planner's context; `advance` moves the regime memory on (once per tick)."""
        defensive, regimes = self._conditions()
        choppy = set()
        for symbol, regime in regimes.items():
            if self._last_regime.get(symbol) is Regime.TRENDING and regime is Regime.CHOPPY:
                choppy.add(symbol)
            if advance:
                self._last_regime[symbol] = regime
        return Context(self._rules, self._settings, self._monitor, defensive, frozenset(choppy))

    # -- carrying a plan out -----------------------------------------------------------------------

    async def _carry_out(self, result: Plan, now: datetime) -> None:
        """Persist the plan's bookings, then send its orders (each may change the books)."""
        before = self._book.positions
        for order, fills in result.records:
            await self._repository.save_order(order)
            if fills:
                await self._repository.record_fills(fills)
            if not is_unsettled(order):
                await self._desk.forget(order.client_order_id)
        await self._persist_positions(before, result.book.positions)
        self._book = result.book
        for draft in result.trades:
            await self._record_trade(
                finish_trade(draft, await self._funding(draft.position, now)), now
            )
        if result.events:
            await self._repository.record_position_events(result.events)
        for event in result.events:
            log.info(
                "position_event",
                symbol=event.symbol,
                reason=event.reason,
                detail=event.detail,
                price=str(event.price),
                new_stop_price=str(event.new_stop_price),
            )
        for note in result.notes:
            (log.error if note.error else log.info)(
                note.event, symbol=note.symbol, detail=note.detail
            )
        await self._act(result.actions, now)

    async def _persist_positions(
        self, before: Mapping[str, Position], after: Mapping[str, Position]
    ) -> None:
        for symbol, position in after.items():
            if before.get(symbol) != position:
                await self._repository.save_position(position)
        for symbol in before.keys() - after.keys():
            await self._repository.delete_position(symbol)

    async def _funding(self, position: Position, now: datetime) -> Decimal:
        try:
            return await self._exchange.fetch_funding_paid(position.symbol, position.opened_at)
        except RetryLater as error:
            log.warning("funding_unavailable", symbol=position.symbol, error=str(error))
            return Decimal(0)

    async def _record_trade(self, trade: ClosedTrade, now: datetime) -> None:
        await self._ledger.record_trade(trade, now)
        log.info(
            "position_closed",
            symbol=trade.symbol,
            side=trade.side,
            exit_reason=trade.exit_reason,
            exit_price=str(trade.exit_price),
            pnl_usdt=str(trade.pnl_usdt),
            r_multiple=round(trade.r_multiple, 3),
        )

    async def _act(self, actions: Sequence[OrderAction], now: datetime) -> None:
        failed: set[str] = set()  # symbols whose new stop failed: keep their old ones
        for action in actions:
            if action.symbol in failed:
                continue
            with bound_context(symbol=action.symbol):
                try:
                    if not await self._one(action, now):
                        failed.add(action.symbol)
                except RetryLater as error:
                    log.warning(
                        "order_action_failed", action=type(action).__name__, error=str(error)
                    )
                    failed.add(action.symbol)

    async def _one(self, action: OrderAction, now: datetime) -> bool:
        """Carry out one action; False when what follows it for the symbol must not happen."""
        if isinstance(action, CancelOrder):
            await self._cancel(action, now)
            return True
        if isinstance(action, SendExit):
            await self._send(
                Purpose.EXIT, action.symbol, action.side, action.quantity, now, reason=action.reason
            )
            return True
        if isinstance(action, PlaceTarget):
            try:
                await self._send(
                    Purpose.TARGET,
                    action.symbol,
                    action.side,
                    action.quantity,
                    now,
                    trigger=action.trigger,
                )
            except OrderRejected as error:  # the stop protects; the tick exits at the target
                log.warning("take_profit_order_failed", error=str(error))
            return True
        return await self._place_stop(action, now)

    async def _place_stop(self, action: PlaceStop, now: datetime) -> bool:
        try:
            answer = await self._send(
                Purpose.STOP,
                action.symbol,
                action.side,
                action.quantity,
                now,
                trigger=action.trigger,
            )
        except OrderRejected as error:
            log.error("protective_stop_failed", detail=str(error))
            position = self._book.positions.get(action.symbol)
            if position is not None:
                await self._send(
                    Purpose.EXIT,
                    action.symbol,
                    action.side,
                    position.quantity,
                    now,
                    reason=ExitReason.PROTECTION_FAILED,
                )
            return False
        if answer is None:
            return False  # unknown: the next tick finds it or places another
        log.info("protective_stop_placed", why=action.why, trigger=str(action.trigger))
        return True

    async def _cancel(self, action: CancelOrder, now: datetime) -> None:
        try:
            await self._exchange.cancel_conditional_order(action.symbol, action.client_order_id)
        except OrderRejected as error:  # already filled, expired or cancelled
            log.debug(
                "cancel_not_needed", client_order_id=action.client_order_id, detail=str(error)
            )

    async def _send(
        self,
        purpose: Purpose,
        symbol: str,
        side: OrderSide,
        quantity: Decimal,
        now: datetime,
        *,
        trigger: Decimal | None = None,
        reason: ExitReason | None = None,
        plan_: EntryPlan | None = None,
    ) -> Order | None:
        """Send one order of ours and book the answer; None when the outcome is unknown.

        Raises OrderRejected (recorded) when the exchange refuses it, or when it would add
        exposure while the governor allows only reducing orders.
        """
        request = OrderRequest(
            self._ids.next(purpose, symbol, now),
            symbol,
            side,
            _KINDS[purpose],
            quantity,
            trigger_price=trigger,
            reduce_only=purpose is not Purpose.ENTRY,
        )
        if not self._admits(request):
            raise OrderRejected(
                ReasonCode.REDUCING_ONLY, f"{request.client_order_id} adds exposure"
            )
        intent = Intent(Order.pending(request, now), now, plan_, reason)
        self._book = self._book.with_intent(intent)
        try:
            answer = await self._desk.send(intent, now)
        except OrderRejected:
            self._book = self._book.without_intent(intent.client_order_id)
            raise
        if answer is None:
            unknown = replace(intent.order, status=OrderStatus.UNKNOWN, updated_at=now)
            self._book = self._book.with_intent(replace(intent, order=unknown))
            self.wake.set()
            return None
        fills = await self._answer_fills(answer)
        echo = self._streams is not None
        context = self._context(advance=False)
        await self._carry_out(
            answered(self._book, intent, answer, fills, now, context, echo=echo), now
        )
        return answer

    async def _answer_fills(self, answer: Order) -> list[Fill]:
        if answer.filled_quantity <= 0:
            return []
        try:
            return await self._exchange.fetch_fills(answer.symbol, answer.client_order_id)
        except RetryLater as error:  # booked from the answer; its fees stay unknown
            log.warning(
                "fills_read_failed", client_order_id=answer.client_order_id, error=str(error)
            )
            return []

    # -- what the executor and the governor ask for ------------------------------------------

    async def enter(self, sized: SizedOrder, now: datetime) -> EntryResult:
        """Enter at market and protect the fill at once (stop, then take-profit).

        An unknown outcome triggers a REST reconciliation at once: a fill is then adopted with
        the sizer's stop, and the symbol stays blocked until the order is settled. Raises
        OrderRejected when the exchange (or the governor's state) refuses the entry.
        """
        async with self._lock:
            symbol = sized.symbol
            if symbol in self._book.positions or blocked(self._book).get(symbol):
                why = blocked(self._book).get(symbol, "a position is open")
                raise OrderRejected(ReasonCode.ORDER_UNSETTLED, f"{symbol}: {why}")
            await self._exchange.set_leverage(symbol, sized.leverage)
            answer = await self._send(
                Purpose.ENTRY,
                symbol,
                sized.side.entry_order_side,
                sized.quantity,
                now,
                plan_=EntryPlan.of(sized),
            )
            if answer is None:
                await self._reconcile_now(now)
                return EntryResult(self._book.positions.get(symbol), "unknown outcome")
            return EntryResult(self._book.positions.get(symbol), str(answer.status))

    async def _reconcile_now(self, now: datetime) -> None:
        try:
            await self._tick(now, rest=True)
        except QuantumTraderError as error:
            log.warning("reconcile_deferred", error=str(error))

    async def close_all(self, reason: ExitReason, now: datetime) -> None:
        """Close every position at market and cancel every conditional order of ours."""
        async with self._lock:
            await self._reconcile_now(now)
            for position in list(self._book.positions.values()):
                if any(i.purpose is Purpose.EXIT for i in self._book.intents_for(position.symbol)):
                    continue
                with bound_context(symbol=position.symbol):
                    try:
                        await self._send(
                            Purpose.EXIT,
                            position.symbol,
                            position.side.exit_order_side,
                            position.quantity,
                            now,
                            reason=reason,
                        )
                    except (OrderRejected, RetryLater) as error:
                        log.error("close_failed", error=str(error))
            for order in await self._exchange.fetch_open_conditional_orders():
                if is_ours(order.client_order_id):
                    await self._act([CancelOrder(order.symbol, order.client_order_id)], now)
        log.warning("flattened", reason=reason)


_KINDS = {
    Purpose.ENTRY: OrderKind.MARKET,
    Purpose.EXIT: OrderKind.MARKET,
    Purpose.STOP: OrderKind.STOP_MARKET,
    Purpose.TARGET: OrderKind.TAKE_PROFIT_MARKET,
}


def blocked(book: Book) -> dict[str, str]:
    """Symbols with an unsettled order of ours, and why no entry may go there now."""
    return {
        i.symbol: f"order {i.client_order_id} unsettled since {i.sent_at.isoformat()}"
        for i in sorted(book.intents.values(), key=lambda i: i.sent_at)
    }


def _differs(mirrored: ExchangeSnapshot, fresh: ExchangeSnapshot) -> bool:
    return _difference(mirrored, fresh) != ""


def _difference(mirrored: ExchangeSnapshot, fresh: ExchangeSnapshot) -> str:
    def positions(s: ExchangeSnapshot) -> dict[str, tuple[str, Decimal]]:
        return {k: (p.side.value, p.quantity) for k, p in s.positions.items()}

    def orders(s: ExchangeSnapshot) -> set[str]:
        return {o.client_order_id for o in s.open_conditional_orders}

    parts = []
    if positions(mirrored) != positions(fresh):
        parts.append(f"positions stream {positions(mirrored)} rest {positions(fresh)}")
    if orders(mirrored) != orders(fresh):
        parts.append(
            f"open orders stream-only {sorted(orders(mirrored) - orders(fresh))} "
            f"rest-only {sorted(orders(fresh) - orders(mirrored))}"
        )
    return "; ".join(parts)
