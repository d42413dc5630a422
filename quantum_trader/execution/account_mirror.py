"""The account as Binance's user-data stream reports it, mirrored in memory. Pure and
synchronous: the streams adapter feeds it events and REST snapshots, the keeper reads
`snapshot()`.

Events are applied idempotently, so a duplicated or late event never overwrites a newer
state: a position is replaced only by an ACCOUNT_UPDATE whose transaction time is at or after
the one it holds (per symbol); a plain order only by an update with a greater key (final or
not, cumulative executed quantity, update time); a conditional order only by a later stage of
its lifecycle (NEW < TRIGGERING < TRIGGERED < final), update time breaking ties, and never
by a plain order's update under the same client id (the market order a triggered conditional
order became, should Binance give it the conditional order's id: ALGO_UPDATE alone reports a
conditional order, its execution included).

The open conditional orders are those not ended: resting (NEW) and firing (TRIGGERING,
TRIGGERED: met the trigger, their market order on its way or running; `Order.triggered_at` set,
as the adapter reads such an order from REST: execution/binance_wire.py). A stop of ours that
is firing stays listed until its end (FINISHED, CANCELED, EXPIRED, REJECTED), so the keeper
sees it executing and neither replaces it nor closes beside it (keeper/protect.py), and counts
it as no protection once it stays so `monitor.stop_stuck_after_s`. Was: only NEW orders were
listed, so a stop firing dropped out of the snapshot for the 100–200 ms before its fill and the
keeper placed another (MISSING), which Binance refused as immediately triggering, then closed
at market racing the stop's own order (an outside probe on the stand-in, 2026-12-06).

`seed(snapshot)` replaces the mirror with a REST snapshot, then re-applies the events the
snapshot's reads may not show (a bounded log of recent events is kept for this): the snapshot
closes the gap, the newer events stay. A seed keeps the final states of orders (they cannot
change) and forgets open ones the snapshot does not list: their fate is for REST to tell. But
not a conditional order of ours it holds firing: GET openAlgoOrders may leave firing orders
out (Binance does not say; keeper/recheck.py `mirror_difference` counts none as a
difference), so it stays listed firing until its end event, or until a lookup by id says it
ended (`apply_lookups`, the keeper's each tick: its end event may be lost in the gap the seed
closes). Was: a seed for another reason (a reconnect, a position that differed) dropped it,
and the keeper saw the stop executing as missing.

Which events a seed re-applies. A REST snapshot is several reads, each stamped when it was
sent on the clock that stamps each event's receipt (`ExchangeSnapshot.taken_at` for the
positions, `conditional_orders_taken_at` for the open conditional orders; the caller stamps
them before sending, with `ExchangeStreams.now`). An event received before a read was sent
happened before it, so the read shows it, or shows what came after it: re-applying it could
only move the mirror back (an entry's ACCOUNT_UPDATE re-applied over a read that showed the
person's close 0.2 s later, the close's event dropped: the position came back — the
hand-trading campaign, seed 30079). An event received after a read was sent may have happened
after the read was answered: it is re-applied, even though the read may show it already (if
so, and the event of a later change was lost, the mirror is behind until the next check, as
after any lost event). So, by the kind of event: an
ACCOUNT_UPDATE (and a leverage change) is re-applied when received at or after `taken_at`, an
ALGO_UPDATE at or after `conditional_orders_taken_at`, an ORDER_TRADE_UPDATE at or after
`taken_at` (no read lists plain orders; their updates only move forward). Receipt times, not
Binance's `E` (event time) or `T` (transaction time): those are Binance's clock, which ours is
not synchronised with to the millisecond, and a read's answer carries no time of its own (a
flat position is not even listed). `T` still orders one symbol's position events (Binance
orders the events of one type on a connection by `T` and `E`): a position event at or before
the largest `T` of the symbol's events received before the read is not applied on the seeded
state, so a late copy of one the read reflects (a duplicate, a reordered event) cannot move it
back; so for
a conditional order the read no longer lists whose end the mirror did not see (cancelled by
hand, its event dropped), no event of it at or before the latest `T` received before the read
brings it back, unless final. What this assumes: a REST read shows a change by the time its
event reaches us; should a read lag the stream, the mirror keeps the read's older state until
the symbol's next event or the keeper's next check against REST.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.clock import ms_from_utc, utc_from_ms
from quantum_trader.domain import (
    ZERO,
    ExchangePosition,
    ExchangeSnapshot,
    Order,
    Side,
    SnapshotSource,
    StreamMoves,
)
from quantum_trader.execution.binance_events import (
    AccountUpdate,
    AlgoUpdate,
    LeverageUpdate,
    OrderUpdate,
    PositionState,
    TradeReported,
    UserEvent,
)
from quantum_trader.keeper.ids import is_ours
from quantum_trader.record import record

_ALGO_STAGE = {"NEW": 0, "TRIGGERING": 1, "TRIGGERED": 2}
_FINAL_STAGE = 3
_NEVER = -1


@record
class _Held:
    """A mirrored order with the key that orders its updates."""

    order: Order
    key: tuple[int, Decimal, int]  # (stage, executed quantity, update time ms)
    open: bool = False  # a conditional order not ended: resting (NEW) or firing


class AccountMirror:
    """Positions, open conditional orders and the latest order states of one account."""

    def __init__(self, replay_s: float, keep_final_s: float) -> None:
        self._replay = timedelta(seconds=replay_s)
        self._keep_final = timedelta(seconds=keep_final_s)
        self._positions: dict[str, tuple[int, PositionState]] = {}
        # By symbol, the transaction time (ms) the last seed's REST read reflects: no position
        # event at or before it moves the mirror.
        self._seeded_at_ms: dict[str, int] = {}
        # By client id, the conditional orders the last seed's read no longer lists and whose
        # end the mirror did not see, with the latest transaction time (ms) of their events
        # before the read: an event not final at or before it is older than their end.
        self._gone_at_ms: dict[str, int] = {}
        self._orders: dict[str, _Held] = {}
        self._leverage: dict[str, int] = {}
        self._log: deque[tuple[datetime, UserEvent]] = deque()
        # By symbol, when the latest event about its position or a fill on it was received,
        # applied or not: the keeper reads the trades of a symbol it read flat before and
        # again since where one was (a round trip by hand between two looks).
        self._moved: dict[str, datetime] = {}
        self._lost_before: datetime | None = None  # the last seed's read: see `moved`
        self._lost_since: datetime | None = None  # where its gap began: see `moved`
        # The receipt of the latest event since the last seed (or that seed's read), and the
        # earliest such instant at a gap or a connection's end not seeded over yet: events
        # come in order on a connection, so those before it came.
        self._heard_at: datetime | None = None
        self._unheard_since: datetime | None = None
        self.needs_seed = True

    def apply(self, event: UserEvent, received_at: datetime) -> bool:
        """Record `event` (received at `received_at`); True if the mirror changed."""
        self._log.append((received_at, event))
        self._moved.update((symbol, received_at) for symbol in _symbols_moved(event))
        self._heard_at = received_at
        while self._log and self._log[0][0] < received_at - self._replay:
            self._log.popleft()
        return self._apply(event)

    def _apply(self, event: UserEvent) -> bool:
        if isinstance(event, AccountUpdate):
            applied = [self._apply_position(p, event.time_ms) for p in event.positions]
            return any(applied)  # every position applied, none short-circuited
        if isinstance(event, OrderUpdate):
            order = event.order
            held = self._orders.get(order.client_order_id)
            if held is not None and held.order.kind.is_conditional:
                return False
            key = (int(order.status.is_final), order.filled_quantity, event.time_ms)
            return self._apply_order(_Held(order, key))
        if isinstance(event, AlgoUpdate):
            stage = _ALGO_STAGE.get(event.raw_status, _FINAL_STAGE)
            gone_at = self._gone_at_ms.get(event.order.client_order_id, _NEVER)
            if stage < _FINAL_STAGE and event.time_ms <= gone_at:
                return False  # a late copy: the seed's read showed the order ended since
            key = (stage, event.order.filled_quantity, event.time_ms)
            return self._apply_order(_Held(event.order, key, stage < _FINAL_STAGE))
        if isinstance(event, LeverageUpdate):
            changed = self._leverage.get(event.symbol) != event.leverage
            self._leverage[event.symbol] = event.leverage
            return changed
        return False

    def _apply_position(self, state: PositionState, time_ms: int) -> bool:
        held = self._positions.get(state.symbol)
        if held is not None and held[0] > time_ms:
            return False
        if time_ms <= self._seeded_at_ms.get(state.symbol, _NEVER):
            return False  # the seed's read shows it already, or what came after it
        self._positions[state.symbol] = (time_ms, state)
        if state.amount != 0 and state.symbol not in self._leverage:
            self.needs_seed = True  # a position on a symbol whose leverage we never learnt
        return held is None or held[1] != state

    def _apply_order(self, update: _Held) -> bool:
        held = self._orders.get(update.order.client_order_id)
        if held is not None and held.key >= update.key:
            return False
        self._orders[update.order.client_order_id] = update
        return True

    @property
    def moved(self) -> StreamMoves:
        """By symbol, when the latest event about its position (ACCOUNT_UPDATE) or a fill on
        it (an order's update with a quantity executed, or a fill of an order not mirrored:
        a person's LIMIT order, a liquidation) was received, applied or not; and
        when the last seed's read was sent: a seed follows a (re)connect or a gap, whose
        events were lost, so before then any symbol may have moved unseen — since the last
        event received before the gap (`lost`); and the trades reported among the events
        kept, by symbol and trade id, at their transaction time (a person's may not be
        listed by GET userTrades yet), whatever the order's type."""
        traded: dict[str, dict[str, datetime]] = {}
        for _, event in self._log:
            reported = _trade_of(event)
            if reported is not None:
                symbol, trade_id, time_ms = reported
                traded.setdefault(symbol, {})[trade_id] = utc_from_ms(time_ms)
        return StreamMoves(self._moved, self._lost_before, self._lost_since, traded)

    def lost(self) -> None:
        """The connection ended, or a gap was found on it: events after the last one received
        may have been lost (told to the next seed's `moved`)."""
        heard, unheard = self._heard_at, self._unheard_since
        if heard is not None:
            self._unheard_since = heard if unheard is None else min(unheard, heard)

    def seed(self, snapshot: ExchangeSnapshot, leverage: Mapping[str, int]) -> None:
        """Replace the mirror with `snapshot`, then re-apply the events its reads may not show
        (received at or after the read of their kind was sent: see the module doc).
        `leverage` (by symbol) completes what the snapshot's positions say. A seed with no
        gap told (`lost`) before it — a REST check that found the mirror off — takes the
        last event received as where the gap began (one lost before it is not looked for)."""
        self.lost()
        self._lost_before, self._lost_since = snapshot.taken_at, self._unheard_since
        self._heard_at, self._unheard_since = snapshot.taken_at, None
        self._leverage.update(leverage)
        self._leverage.update({s: p.leverage for s, p in snapshot.positions.items()})
        self._seeded_at_ms = self._before(snapshot.taken_at, AccountUpdate)
        self._positions = {s: (_NEVER, _state_of(p)) for s, p in snapshot.positions.items()}
        self._orders = {
            cid: held
            for cid, held in self._orders.items()
            if held.order.status.is_final or _firing_ours(held)  # firing: unless the read ends it
        }
        for order in snapshot.open_conditional_orders:  # resting, or firing where listed
            stage = _ALGO_STAGE["NEW" if order.triggered_at is None else "TRIGGERING"]
            self._orders[order.client_order_id] = _Held(order, (stage, ZERO, _NEVER), True)
        for cid, order in snapshot.orders.items():
            if order.status.is_final:
                self._orders[cid] = _Held(order, (_FINAL_STAGE, order.filled_quantity, _NEVER))
        before = self._before(snapshot.conditional_orders_taken_at, AlgoUpdate)
        self._gone_at_ms = {c: t for c, t in before.items() if c not in self._orders}
        self.needs_seed = False
        for received_at, event in self._log:
            if received_at >= _read_sent(snapshot, event):
                self._apply(event)

    def apply_lookups(self, found: Mapping[str, Order | None]) -> None:
        """Our orders as a lookup by id `found` them (None: the exchange no longer knows it):
        one that ended ends the mirror's open conditional order, as its end event would (lost,
        or not come yet); one the exchange no longer knows is dropped where the mirror holds
        it firing. Nothing for an order the mirror does not hold open, nor from a state not
        final (the stream's word)."""
        for cid, order in found.items():
            held = self._orders.get(cid)
            if held is None or not held.open:
                continue
            if order is None:
                if _firing_ours(held):
                    del self._orders[cid]
            elif order.status.is_final:
                time_ms = ms_from_utc(order.updated_at or order.created_at)
                self._apply_order(_Held(order, (_FINAL_STAGE, order.filled_quantity, time_ms)))

    def _before(
        self, read_sent: datetime, kind: type[AccountUpdate | AlgoUpdate]
    ) -> dict[str, int]:
        """The latest transaction time (ms) of the events of `kind` received before a read
        sent at `read_sent` (which shows them), by symbol for positions, by client order id
        for conditional orders."""
        latest: dict[str, int] = {}
        for received_at, event in self._log:
            if received_at >= read_sent:
                continue
            if isinstance(event, AccountUpdate) and kind is AccountUpdate:
                keys = [state.symbol for state in event.positions]
            elif isinstance(event, AlgoUpdate) and kind is AlgoUpdate:
                keys = [event.order.client_order_id]
            else:
                continue
            for key in keys:
                latest[key] = max(event.time_ms, latest.get(key, _NEVER))
        return latest

    def snapshot(self, now: datetime) -> ExchangeSnapshot:
        """The mirrored account at `now`; final orders older than `keep_final_s` are dropped."""
        horizon = now - self._keep_final
        self._orders = {
            cid: held
            for cid, held in self._orders.items()
            if not held.order.status.is_final
            or (held.order.updated_at or held.order.created_at) >= horizon
        }
        positions = {}
        for symbol, (_, state) in self._positions.items():
            if state.amount != 0 and symbol in self._leverage:
                positions[symbol] = _position_of(state, self._leverage[symbol])
        return ExchangeSnapshot(
            taken_at=now,
            source=SnapshotSource.STREAM,
            positions=positions,
            open_conditional_orders=tuple(h.order for h in self._orders.values() if h.open),
            orders={cid: held.order for cid, held in self._orders.items()},
        )


def _firing_ours(held: _Held) -> bool:
    """`held` is a conditional order of ours that met its trigger and has not ended."""
    return held.open and held.order.triggered_at is not None and is_ours(held.order.client_order_id)


def _symbols_moved(event: UserEvent) -> tuple[str, ...]:
    """The symbols `event` says a position changed or an order filled on."""
    if isinstance(event, AccountUpdate):
        return tuple(state.symbol for state in event.positions)
    if isinstance(event, TradeReported):
        return (event.symbol,)
    if isinstance(event, (OrderUpdate, AlgoUpdate)) and event.order.filled_quantity > 0:
        return (event.order.symbol,)
    return ()


def _trade_of(event: UserEvent) -> tuple[str, str, int] | None:
    """The trade `event` reports with its id, any order's: (symbol, trade id, time ms)."""
    if isinstance(event, OrderUpdate) and event.trade_id is not None:
        return event.order.symbol, event.trade_id, event.time_ms
    if isinstance(event, TradeReported) and event.trade_id is not None:
        return event.symbol, event.trade_id, event.time_ms
    return None


def _read_sent(snapshot: ExchangeSnapshot, event: UserEvent) -> datetime:
    """When the read of `snapshot` that shows what `event` is about was sent."""
    if isinstance(event, AlgoUpdate):
        return snapshot.conditional_orders_taken_at
    return snapshot.taken_at


def _state_of(position: ExchangePosition) -> PositionState:
    return PositionState(
        symbol=position.symbol,
        amount=position.quantity * position.side.sign,
        entry_price=position.entry_price,
        margin_usdt=position.margin_usdt,
        unrealized_pnl_usdt=position.unrealized_pnl_usdt,
    )


def _position_of(state: PositionState, leverage: int) -> ExchangePosition:
    return ExchangePosition(
        symbol=state.symbol,
        side=Side.LONG if state.amount > 0 else Side.SHORT,
        quantity=abs(state.amount),
        entry_price=state.entry_price,
        leverage=leverage,
        margin_usdt=state.margin_usdt,
        unrealized_pnl_usdt=state.unrealized_pnl_usdt,
    )
