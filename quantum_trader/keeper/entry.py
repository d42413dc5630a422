"""Entering a position, what the executor asks of the keeper: the entry sent and its fill
protected at once, a stop placed blind when its outcome is unknown, and its listeners told of
it (`EntryListener`: before it is sent, and when it opened nothing — at once, or at the tick
that settles it). A part of `PositionKeeper` (keeper/keeper.py), which holds the lock, the
books and the ids; apart from it because the entry is the one order a caller sends, the rest of
the keeper the tick that reconciles and manages what is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from quantum_trader.domain import ExchangePosition, MarketRules, ReasonCode, SizedOrder
from quantum_trader.errors import OrderRejected, RetryLater
from quantum_trader.keeper.book import EntryPlan, is_unsettled
from quantum_trader.keeper.carry import Carrier
from quantum_trader.keeper.entry_fresh import Now, held_outside_books
from quantum_trader.keeper.flat_before import FlatBefore
from quantum_trader.keeper.ids import ClientOrderIds, Purpose, purpose_of
from quantum_trader.keeper.plan import Context, Plan
from quantum_trader.keeper.protect import stop_trigger
from quantum_trader.keeper.views import EntryListener, EntryResult
from quantum_trader.log import get_logger
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.ports import Exchange, ExchangeStreams

log = get_logger("keeper")


class Entering:
    """The entry of `PositionKeeper`, which sets these attributes and gives `_context` (the
    planner's context) and `_reconcile_now` (a REST tick at once)."""

    _exchange: Exchange
    _streams: ExchangeStreams | None
    _clock: Now | None
    _monitor: MonitorSettings
    _rules: Mapping[str, MarketRules]
    _lock: asyncio.Lock
    _ids: ClientOrderIds
    _carrier: Carrier
    _last_read: tuple[datetime, Mapping[str, ExchangePosition]] | None
    _flat_before: FlatBefore
    entry_listeners: list[EntryListener]
    wake: asyncio.Event

    if TYPE_CHECKING:

        def _context(self, *, advance: bool) -> Context: ...

        async def _reconcile_now(self, now: datetime) -> None: ...

    async def enter(
        self, sized: SizedOrder, now: datetime, *, risk_cap_usdt: Decimal | None = None
    ) -> EntryResult:
        """Enter at market and protect the fill at once (stop, then take-profit).

        The fill is checked against the plan (keeper/fill_check.py): one at or past its target
        or stop is exited at once; one risking more than approved is said, and its excess over
        `risk_cap_usdt` (the risk guard's per-trade cap now; None: none) sold.

        An unknown outcome triggers a REST reconciliation at once: a fill is then adopted with
        the sizer's stop, and the symbol stays blocked until the order is settled. Raises
        OrderRejected when the exchange (or the governor's state) refuses the entry, or when
        the symbol already holds a position or an unsettled order — in the books, or on the
        exchange where a fresh look shows one the books do not (keeper/entry_fresh.py).

        `entry_listeners` are told the entry's client order id before it is sent, and again
        when it opened nothing (refused, not sent, answered with nothing executed).
        """
        async with self._lock:
            symbol = sized.symbol
            book = self._carrier.book
            if symbol in book.positions:
                raise OrderRejected(ReasonCode.POSITION_ALREADY_OPEN, symbol)
            unsettled = book.blocked().get(symbol)
            if unsettled is not None:
                raise OrderRejected(ReasonCode.ORDER_UNSETTLED, unsettled)
            await self._refuse_held_outside(symbol)
            await self._exchange.set_leverage(symbol, sized.leverage)
            client_order_id = self._ids.next(Purpose.ENTRY, symbol, now)
            await self._flat_before.record(client_order_id, symbol, self._last_read)
            for listener in self.entry_listeners:  # before: the trade may close within `send`
                await listener.on_entry_sending(sized, client_order_id, now)
            try:
                answer = await self._carrier.send(
                    Purpose.ENTRY,
                    symbol,
                    sized.side.entry_order_side,
                    sized.quantity,
                    now,
                    self._context(advance=False),
                    plan=EntryPlan.of(sized, risk_cap_usdt),
                    client_order_id=client_order_id,
                )
            except (OrderRejected, RetryLater):
                await self._entry_void(client_order_id)
                raise
            if answer is None or is_unsettled(answer):
                await self._protect_blind(sized, now)
                await self._reconcile_now(now)
                position = self._carrier.book.positions.get(symbol)
                return EntryResult(position, "outcome unknown", unknown=True)
            if answer.filled_quantity <= 0:
                await self._entry_void(client_order_id)
            position = self._carrier.book.positions.get(symbol)
            detail = str(answer.status)
            if position is None and answer.filled_quantity > 0:  # keeper/fill_check.py
                detail += " and closed at once: see this symbol's keeper warning or error"
            return EntryResult(position, detail)

    async def _refuse_held_outside(self, symbol: str) -> None:
        """Raise OrderRejected when the exchange is seen holding `symbol` though the books do
        not (a person opened it since the last read); the next tick adopts it, and is woken."""
        last_read_at = self._last_read[0] if self._last_read is not None else None
        held = await held_outside_books(
            symbol,
            self._exchange,
            self._streams,
            self._clock,
            last_read_at,
            timedelta(seconds=2 * self._monitor.interval_s),
        )
        if held is None:
            return
        log.warning(
            "entry_refused_position_outside",
            symbol=symbol,
            side=held.side.value,
            quantity=str(held.quantity),
            detail="the exchange holds a position the keeper's books do not (opened outside "
            "the program since its last read): not entered; the next tick adopts it",
        )
        self.wake.set()
        raise OrderRejected(
            ReasonCode.POSITION_ALREADY_OPEN,
            f"{symbol}: the exchange holds {held.side.value} {held.quantity} that the books do "
            "not (opened outside the program?); not entered, the keeper adopts it",
        )

    async def _entry_void(self, client_order_id: str) -> None:
        for listener in self.entry_listeners:
            await listener.on_entry_void(client_order_id)

    async def _entries_void(self, result: Plan) -> None:
        """Entries of ours a tick settled with nothing executed (their outcome unknown to
        `enter`: lost on the way, never accepted, expired): told as `enter` tells of those it
        knows at once."""
        for order, _ in result.records:
            ended_empty = order.status.is_final and order.filled_quantity <= 0
            if ended_empty and purpose_of(order.client_order_id) is Purpose.ENTRY:
                await self._entry_void(order.client_order_id)

    async def _protect_blind(self, sized: SizedOrder, now: datetime) -> None:
        """After an entry whose outcome is unknown, place its reduce-only stop at once: if the
        entry filled, it is protected even while the exchange cannot be read; if not, the stop
        can close nothing and is cancelled once the entry is settled."""
        rules = self._rules.get(sized.symbol)
        tick = rules.tick_size if rules else None
        try:
            await self._carrier.send(
                Purpose.STOP,
                sized.symbol,
                sized.side.exit_order_side,
                sized.quantity,
                now,
                self._context(advance=False),
                trigger=stop_trigger(sized.side, sized.stop_price, tick),
            )
        except (OrderRejected, RetryLater) as error:
            log.warning("blind_stop_failed", symbol=sized.symbol, error=str(error))
