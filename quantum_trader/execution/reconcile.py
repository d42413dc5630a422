"""Reconciliation (SPEC §9): the database against the exchange, at startup and after a crash.

One code path for both, run before the first trade:
1. intents: orders the database holds as PENDING/UNKNOWN are looked up by client order id; what
   the exchange has is recorded with its fills, what it never got is closed (REJECTED/EXPIRED);
2. positions the exchange holds and the ledger does not are adopted: an open stop of ours on
   the exchange is kept as their stop, else a default stop `adopt_stop_pct` from the entry is
   placed through `Trader.protect`;
3. ledger positions the exchange no longer holds, or holds less of, are booked from the order
   that explains it (a protective order or an exit of ours that filled), else as closed outside
   this program (MANUAL) at the mark price;
4. anything else (more on the exchange than in the ledger, the other side, a reduction of a
   position still held that no order explains) cannot be resolved safely: `halt_reason` says
   why and the caller blocks new entries (fail closed).
Missing protective stops of known positions are left to the monitor's first tick, which
re-places them. Every action is one log line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import (
    ZERO,
    ClosedTrade,
    ExchangePosition,
    ExitReason,
    Order,
    OrderKind,
    OrderStatus,
    Position,
)
from quantum_trader.execution.settings import ReconcileSettings
from quantum_trader.execution.trader import Trader
from quantum_trader.log import get_logger
from quantum_trader.monitor import stops
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.ports import Exchange, Repository

log = get_logger("reconcile")
OUR_ID_PREFIX = "qt-"
_OPEN_INTENTS = (OrderStatus.PENDING, OrderStatus.UNKNOWN)


class ReconcileStep(StrEnum):
    """What reconciliation did; stable, written to the log."""

    ORDER_RECOVERED = "ORDER_RECOVERED"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    POSITION_ADOPTED = "POSITION_ADOPTED"
    EXIT_BOOKED = "EXIT_BOOKED"
    EXTERNAL_EXIT_BOOKED = "EXTERNAL_EXIT_BOOKED"
    MISMATCH = "MISMATCH"


@dataclass(frozen=True, slots=True)
class ReconcileAction:
    step: ReconcileStep
    symbol: str
    detail: str
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    """Everything reconciliation did; `halt_reason` is set when it could not resolve a state."""

    actions: tuple[ReconcileAction, ...] = ()
    halt_reason: str | None = None

    @property
    def blocks_entries(self) -> bool:
        """True when new entries must stay blocked until an operator has looked."""
        return self.halt_reason is not None

    def steps(self, step: ReconcileStep) -> list[ReconcileAction]:
        return [action for action in self.actions if action.step is step]


async def reconcile(
    exchange: Exchange,
    repository: Repository,
    trader: Trader,
    now: datetime,
    settings: ReconcileSettings | None = None,
) -> ReconciliationReport:
    """Bring the database and the ledger in line with the exchange (see the module docstring)."""
    run = _Reconciler(exchange, repository, trader, now, settings or ReconcileSettings())
    for order in await repository.orders():
        if order.status in _OPEN_INTENTS:
            await run.resolve_intent(order)
    await run.match_positions()
    report = run.report()
    log.info(
        "reconcile_done",
        actions=len(report.actions),
        blocks_entries=report.blocks_entries,
        halt_reason=report.halt_reason,
    )
    return report


class _Reconciler:
    def __init__(
        self,
        exchange: Exchange,
        repository: Repository,
        trader: Trader,
        now: datetime,
        settings: ReconcileSettings,
    ) -> None:
        self._exchange = exchange
        self._repository = repository
        self._trader = trader
        self._now = now
        self._settings = settings
        self._actions: list[ReconcileAction] = []
        self._mismatches: list[str] = []
        self._entries: dict[str, Order] = {}
        self._exits: dict[str, list[Order]] = defaultdict(list)

    def report(self) -> ReconciliationReport:
        halt = "; ".join(self._mismatches) if self._mismatches else None
        return ReconciliationReport(tuple(self._actions), halt)

    def _act(
        self, step: ReconcileStep, symbol: str, detail: str, client_order_id: str | None = None
    ) -> None:
        self._actions.append(ReconcileAction(step, symbol, detail, client_order_id))
        emit = log.error if step is ReconcileStep.MISMATCH else log.info
        emit(
            f"reconcile_{step.lower()}",
            symbol=symbol,
            detail=detail,
            client_order_id=client_order_id,
        )

    # -- 1. intents --------------------------------------------------------------------------

    async def resolve_intent(self, intent: Order) -> None:
        """Look an unsettled order up by client id; record what the exchange knows."""
        found = await self._exchange.fetch_order(intent.symbol, intent.client_order_id)
        if found is None:
            status = OrderStatus.REJECTED if intent.status is OrderStatus.PENDING else (
                OrderStatus.EXPIRED
            )  # fmt: skip
            detail = f"{intent.status} order not on the exchange at reconciliation"
            await self._repository.save_order(
                replace(intent, status=status, detail=detail, updated_at=self._now)
            )
            self._act(ReconcileStep.ORDER_NOT_FOUND, intent.symbol, detail, intent.client_order_id)
            return
        await self._record(found)
        if found.status is OrderStatus.FILLED and found.reduce_only:
            self._exits[found.symbol].append(found)
        elif found.status is OrderStatus.FILLED and not found.kind.is_conditional:
            self._entries[found.symbol] = found
        detail = f"{intent.status} → {found.status} {found.kind} filled {found.filled_quantity}"
        self._act(ReconcileStep.ORDER_RECOVERED, found.symbol, detail, found.client_order_id)

    async def _record(self, order: Order) -> None:
        await self._repository.save_order(order)
        if order.filled_quantity > 0:
            fills = await self._exchange.fetch_fills(order.symbol, order.client_order_id)
            await self._repository.record_fills(fills)

    # -- 2.-4. positions ---------------------------------------------------------------------

    async def match_positions(self) -> None:
        held = {p.symbol: p for p in await self._exchange.fetch_positions()}
        ours = dict(self._trader.ledger.positions)
        unknown = sorted(held.keys() - ours.keys())
        if unknown:
            open_conditional = await self._exchange.fetch_open_conditional_orders()
            for symbol in unknown:
                await self._adopt(held[symbol], open_conditional)
        differing = [s for s, p in ours.items() if not _same(p, held.get(s))]
        prices = await self._exchange.fetch_mark_prices(differing) if differing else {}
        for symbol in differing:
            await self._settle(ours[symbol], held.get(symbol), prices.get(symbol))

    async def _adopt(self, held: ExchangePosition, open_conditional: Sequence[Order]) -> None:
        mine = [
            o
            for o in open_conditional
            if o.symbol == held.symbol
            and o.side is held.side.exit_order_side
            and o.client_order_id.startswith(OUR_ID_PREFIX)
        ]
        stop = next((o for o in mine if o.kind is OrderKind.STOP_MARKET), None)
        target = next((o for o in mine if o.kind is OrderKind.TAKE_PROFIT_MARKET), None)
        rules = (await self._exchange.load_markets()).get(held.symbol)
        position = adopted_position(
            held, self._entries.get(held.symbol), self._now, self._settings, stop, target
        )
        if rules is not None:
            position = replace(
                position,
                stop_price=rules.round_price(position.stop_price),
                initial_stop_price=rules.round_price(position.initial_stop_price),
                take_profit_price=rules.round_price(position.take_profit_price),
            )
        await self._trader.ledger.save_position(position)
        how = f"kept stop {stop.client_order_id}" if stop else "default stop placed"
        self._act(
            ReconcileStep.POSITION_ADOPTED,
            held.symbol,
            f"{held.side} {held.quantity} @ {held.entry_price}, stop {position.stop_price} ({how})",
            position.entry_order_id,
        )
        if stop is None:
            await self._trader.protect(position, self._now)

    async def _settle(
        self, position: Position, held: ExchangePosition | None, price: Decimal | None
    ) -> None:
        """Book what the exchange did to a ledger position; a state no order explains halts."""
        if held is not None and (
            held.side is not position.side or held.quantity > position.quantity
        ):
            self._mismatch(position, held)
            return
        remaining = held.quantity if held is not None else ZERO
        for order in await self._explaining_orders(position):
            if position.quantity - order.filled_quantity < remaining:
                continue
            booked = await self._trader.settle_exit(
                position, order, self._reason_for(position, order), self._now
            )
            detail = f"{order.kind} filled {order.filled_quantity} @ {order.average_price}"
            self._act(ReconcileStep.EXIT_BOOKED, position.symbol, detail, order.client_order_id)
            if isinstance(booked, ClosedTrade):
                return
            position = booked
        if position.quantity == remaining:
            return
        if held is not None:
            self._mismatch(position, held)
            return
        await self._trader.settle_external_exit(position, None, price, self._now)
        detail = f"{position.side} {position.quantity} gone from the exchange, booked at {price}"
        self._act(ReconcileStep.EXTERNAL_EXIT_BOOKED, position.symbol, detail)

    async def _explaining_orders(self, position: Position) -> list[Order]:
        """Filled exits of ours for the position: recovered intents, then protective orders."""
        orders = list(self._exits.pop(position.symbol, []))
        known = {o.client_order_id for o in orders}
        for order_id in (position.stop_order_id, position.take_profit_order_id):
            if order_id is None or order_id in known:
                continue
            order = await self._exchange.fetch_order(position.symbol, order_id)
            if order is not None and order.status is OrderStatus.FILLED:
                await self._record(order)
                orders.append(order)
        return orders

    def _reason_for(self, position: Position, order: Order) -> ExitReason:
        if order.kind is OrderKind.TAKE_PROFIT_MARKET:
            return ExitReason.TP_HIT
        if order.kind is OrderKind.STOP_MARKET:
            level = stops.break_even_level(position, MonitorSettings())
            return stops.stop_exit_reason(position, level)
        return ExitReason.MANUAL  # an exit of ours whose reason was lost with the crash

    def _mismatch(self, position: Position, held: ExchangePosition) -> None:
        detail = (
            f"{position.symbol}: exchange holds {held.side} {held.quantity}, the ledger "
            f"{position.side} {position.quantity}, and no order of ours explains it"
        )
        self._mismatches.append(detail)
        self._act(ReconcileStep.MISMATCH, position.symbol, detail)


def _same(position: Position, held: ExchangePosition | None) -> bool:
    return held is not None and held.side is position.side and held.quantity == position.quantity


def adopted_position(
    held: ExchangePosition,
    entry: Order | None,
    now: datetime,
    settings: ReconcileSettings,
    stop: Order | None = None,
    target: Order | None = None,
) -> Position:
    """A ledger position for an exchange position we have no record of.

    The stop is `stop`'s trigger when an open stop of ours exists, else `adopt_stop_pct` from
    the entry; the take-profit `adopt_reward_risk` times that distance. `atr_pct` is what the
    math sizer would have assumed for that stop (stop = 1.5 × ATR).
    """
    sign = held.side.sign
    distance = held.entry_price * Decimal(repr(settings.adopt_stop_pct))
    reward = distance * Decimal(repr(settings.adopt_reward_risk))
    stop_price = stop.trigger_price if stop and stop.trigger_price else None
    target_price = target.trigger_price if target and target.trigger_price else None
    stop_price = stop_price or held.entry_price - distance * sign
    base = held.symbol.split("/", 1)[0]
    return Position(
        symbol=held.symbol,
        side=held.side,
        quantity=held.quantity,
        entry_price=held.entry_price,
        leverage=held.leverage,
        stop_price=stop_price,
        take_profit_price=target_price or held.entry_price + reward * sign,
        opened_at=entry.created_at if entry else now,
        entry_order_id=entry.client_order_id if entry else f"adopted-{base}-{ms_from_utc(now)}",
        initial_stop_price=stop_price,
        initial_quantity=held.quantity,
        atr_pct=settings.adopt_stop_pct / 1.5,
        stop_order_id=stop.client_order_id if stop else None,
        take_profit_order_id=target.client_order_id if target else None,
        stop_replaced_at=now if stop else None,
        fees_usdt=entry.fee_usdt if entry else ZERO,
        highest_price=held.entry_price,
        lowest_price=held.entry_price,
    )
