"""The trader: sized orders → positions, positions → closed trades, every step recorded.

Every order is written as PENDING before its request leaves, so a crash leaves an intent that
startup reconciliation resolves by client order id. After an ambiguous failure the order is
looked up by that id before anything else happens; nothing is ever sent twice blindly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ZERO,
    ClosedTrade,
    ExchangePosition,
    ExitReason,
    Order,
    OrderKind,
    OrderRequest,
    OrderStatus,
    Position,
    ReasonCode,
    SizedOrder,
)
from quantum_trader.errors import OrderRejected, OrderStateUnknown
from quantum_trader.execution.ids import ClientOrderIds
from quantum_trader.log import get_logger
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.ports import Exchange, Repository

log = get_logger("trader")


class Trader:
    def __init__(
        self,
        exchange: Exchange,
        repository: Repository,
        ledger: Ledger,
        ids: ClientOrderIds,
        admits: Callable[[OrderRequest], bool] = lambda request: True,
    ) -> None:
        self._exchange = exchange
        self._repository = repository
        self.ledger = ledger
        self._ids = ids
        self._admits = admits
        # One writer of position state at a time: the executor's entry and its protection, the
        # monitor's tick and a flatten each hold it, so no task sees a half-opened position.
        self.lock = asyncio.Lock()

    async def submit(self, request: OrderRequest, now: datetime) -> Order:
        """Record the intent, send it, record the answer and its fills.

        Raises OrderRejected (recorded as REJECTED) or OrderStateUnknown (recorded as UNKNOWN
        when a lookup by client order id could not settle it).
        """
        if not self._admits(request):  # the governor is not ACTIVE: only reducing orders pass
            raise OrderRejected(
                ReasonCode.REDUCING_ONLY, f"{request.client_order_id} adds exposure"
            )
        pending = Order.pending(request, now)
        await self._repository.save_order(pending)
        try:
            order = await self._exchange.place_order(request)
        except OrderRejected as error:
            await self._repository.save_order(
                replace(pending, status=OrderStatus.REJECTED, detail=str(error), updated_at=now)
            )
            raise
        except OrderStateUnknown as error:
            order = await self._resolve_unknown(pending, error, now)
        await self._repository.save_order(order)
        if order.filled_quantity > 0:
            fills = await self._exchange.fetch_fills(order.symbol, order.client_order_id)
            await self._repository.record_fills(fills)
        return order

    async def _resolve_unknown(
        self, pending: Order, error: OrderStateUnknown, now: datetime
    ) -> Order:
        found = await self._exchange.fetch_order(pending.symbol, pending.client_order_id)
        if found is None:
            await self._repository.save_order(
                replace(pending, status=OrderStatus.UNKNOWN, detail=str(error), updated_at=now)
            )
            raise error
        log.warning("order_state_recovered", client_order_id=pending.client_order_id)
        return found

    async def open_position(self, sized: SizedOrder, now: datetime) -> Position | None:
        """Enter at market, then protect with reduce-only stop and take-profit orders.

        Returns None when the entry did not fill. If the stop cannot be placed the position is
        closed at market at once: no position is left without a protective stop.
        """
        await self._exchange.set_leverage(sized.symbol, sized.leverage)
        request = OrderRequest(
            self._ids.next("e", sized.symbol, now),
            sized.symbol,
            sized.side.entry_order_side,
            OrderKind.MARKET,
            sized.quantity,
        )
        entry = await self.submit(request, now)
        if entry.status is not OrderStatus.FILLED or entry.average_price is None:
            log.warning("entry_not_filled", client_order_id=entry.client_order_id)
            return None
        position = _position_from_entry(sized, entry, now)
        await self.ledger.save_position(position)
        log.info(
            "position_opened",
            symbol=position.symbol,
            side=position.side,
            quantity=str(position.quantity),
            entry_price=str(position.entry_price),
            stop_price=str(position.stop_price),
            take_profit_price=str(position.take_profit_price),
            leverage=position.leverage,
            client_order_id=entry.client_order_id,
        )
        return await self.protect(position, now)

    async def protect(self, position: Position, now: datetime) -> Position | None:
        """Place the protective stop (and take-profit); close at market if the stop fails."""
        try:
            stop = await self.place_conditional(position, OrderKind.STOP_MARKET, now)
        except (OrderRejected, OrderStateUnknown) as error:
            log.error("protective_stop_failed", symbol=position.symbol, error=str(error))
            await self.close_position(position, ExitReason.PROTECTION_FAILED, now)
            return None
        position = replace(position, stop_order_id=stop.client_order_id, stop_replaced_at=now)
        try:
            target = await self.place_conditional(position, OrderKind.TAKE_PROFIT_MARKET, now)
            position = replace(position, take_profit_order_id=target.client_order_id)
        except (OrderRejected, OrderStateUnknown) as error:
            # The stop protects the position; the monitor still exits at the target price.
            log.warning("take_profit_order_failed", symbol=position.symbol, error=str(error))
        await self.ledger.save_position(position)
        return position

    async def place_conditional(self, position: Position, kind: OrderKind, now: datetime) -> Order:
        trigger = (
            position.stop_price if kind is OrderKind.STOP_MARKET else position.take_profit_price
        )
        request = OrderRequest(
            self._ids.next("s" if kind is OrderKind.STOP_MARKET else "t", position.symbol, now),
            position.symbol,
            position.side.exit_order_side,
            kind,
            position.quantity,
            trigger_price=trigger,
            reduce_only=True,
        )
        return await self.submit(request, now)

    async def cancel_conditional(
        self, symbol: str, client_order_id: str | None, now: datetime
    ) -> None:
        """Cancel a protective order; one that is already gone is not an error."""
        if client_order_id is None:
            return
        try:
            await self._exchange.cancel_conditional_order(symbol, client_order_id)
        except OrderRejected as error:  # already filled, expired or cancelled: nothing to do
            log.debug("cancel_not_needed", client_order_id=client_order_id, detail=str(error))
        known = await self._repository.get_order(client_order_id)
        if known is not None and not known.status.is_final:
            await self._repository.save_order(
                replace(known, status=OrderStatus.CANCELED, updated_at=now)
            )

    async def close_position(
        self, position: Position, reason: ExitReason, now: datetime, quantity: Decimal | None = None
    ) -> Position | ClosedTrade:
        """Reduce-only market exit of `quantity` (all by default).

        A partial exit returns the smaller position; a full one cancels the protective orders,
        records the closed trade and returns it.
        """
        size = position.quantity if quantity is None else min(quantity, position.quantity)
        request = OrderRequest(
            self._ids.next("x", position.symbol, now),
            position.symbol,
            position.side.exit_order_side,
            OrderKind.MARKET,
            size,
            reduce_only=True,
        )
        exit_order = await self.submit(request, now)
        return await self.settle_exit(position, exit_order, reason, now)

    async def settle_exit(
        self, position: Position, exit_order: Order, reason: ExitReason, now: datetime
    ) -> Position | ClosedTrade:
        """Book an exit that happened (our market order or a triggered conditional order)."""
        price = exit_order.average_price or position.stop_price
        size = exit_order.filled_quantity
        gross = (price - position.entry_price) * position.side.sign * size
        position = replace(
            position,
            quantity=position.quantity - size,
            realized_pnl_usdt=position.realized_pnl_usdt + gross,
            fees_usdt=position.fees_usdt + exit_order.fee_usdt,
        )
        if position.quantity > 0:
            await self.ledger.save_position(position)
            return position
        for order_id in (position.stop_order_id, position.take_profit_order_id):
            if order_id != exit_order.client_order_id:
                await self.cancel_conditional(position.symbol, order_id, now)
        funding = await self._exchange.fetch_funding_paid(position.symbol, position.opened_at)
        trade = _closed_trade(position, price, reason, now, funding)
        await self.ledger.record_trade(trade, now)
        log.info(
            "position_closed",
            symbol=trade.symbol,
            side=trade.side,
            exit_reason=trade.exit_reason,
            exit_price=str(trade.exit_price),
            pnl_usdt=str(trade.pnl_usdt),
            r_multiple=round(trade.r_multiple, 3),
        )
        return trade

    async def settle_external_exit(
        self,
        position: Position,
        held: ExchangePosition | None,
        price: Decimal | None,
        now: datetime,
    ) -> Position | ClosedTrade:
        """Book a reduction no order of ours explains (closed by hand, liquidated) at the mark."""
        remaining = held.quantity if held is not None else ZERO
        external = Order(
            client_order_id=f"external-{position.entry_order_id}",
            symbol=position.symbol,
            side=position.side.exit_order_side,
            kind=OrderKind.MARKET,
            quantity=position.quantity - remaining,
            status=OrderStatus.FILLED,
            created_at=now,
            filled_quantity=position.quantity - remaining,
            average_price=price or position.stop_price,
            detail="closed outside this program",
        )
        return await self.settle_exit(position, external, ExitReason.MANUAL, now)


def _position_from_entry(sized: SizedOrder, entry: Order, now: datetime) -> Position:
    assert entry.average_price is not None
    return Position(
        symbol=sized.symbol,
        side=sized.side,
        quantity=entry.filled_quantity,
        entry_price=entry.average_price,
        leverage=sized.leverage,
        stop_price=sized.stop_price,
        take_profit_price=sized.take_profit_price,
        opened_at=now,
        entry_order_id=entry.client_order_id,
        initial_stop_price=sized.stop_price,
        initial_quantity=entry.filled_quantity,
        atr_pct=sized.atr_pct,
        exit_mode=sized.exit_mode,
        fees_usdt=entry.fee_usdt,
        highest_price=entry.average_price,
        lowest_price=entry.average_price,
    )


def _closed_trade(
    position: Position, exit_price: Decimal, reason: ExitReason, now: datetime, funding: Decimal
) -> ClosedTrade:
    pnl = position.realized_pnl_usdt - position.fees_usdt - funding
    initial_risk = (
        abs(position.entry_price - position.initial_stop_price) * position.initial_quantity
    )
    r_multiple = float(pnl / initial_risk) if initial_risk > ZERO else 0.0
    return ClosedTrade(
        symbol=position.symbol,
        side=position.side,
        quantity=position.initial_quantity,
        entry_price=position.entry_price,
        exit_price=exit_price,
        opened_at=position.opened_at,
        closed_at=now,
        exit_reason=reason,
        pnl_usdt=pnl,
        fees_usdt=position.fees_usdt,
        funding_usdt=funding,
        r_multiple=r_multiple,
        entry_order_id=position.entry_order_id,
    )
