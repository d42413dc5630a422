"""The position monitor's tick (SPEC §6): one batched mark-price request, then for each open
position: book exits the exchange already made, apply the stop maths, keep the protective stop
on the exchange in step. The 5 s loop around it lives in app.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from quantum_trader.domain import (
    ClosedTrade,
    ExchangePosition,
    ExitReason,
    MarketRules,
    Order,
    OrderKind,
    OrderStatus,
    Position,
    Regime,
)
from quantum_trader.errors import OrderRejected, OrderStateUnknown
from quantum_trader.execution.trader import Trader
from quantum_trader.log import bound_context, get_logger
from quantum_trader.monitor import stops
from quantum_trader.monitor.protection import (
    CancelOrder,
    CloseAtMarket,
    on_placement_failed,
    on_stop_placed,
    plan_protection,
)
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.ports import Exchange, Repository

log = get_logger("monitor")
RegimesFn = Callable[[], Mapping[str, Regime]]
DefensiveFn = Callable[[], bool]


class PositionMonitor:
    def __init__(
        self,
        exchange: Exchange,
        repository: Repository,
        trader: Trader,
        rules: Mapping[str, MarketRules],
        settings: MonitorSettings,
        regimes: RegimesFn = dict,
        defensive_exit: DefensiveFn = lambda: False,
    ) -> None:
        self._exchange = exchange
        self._repository = repository
        self._trader = trader
        self._rules = rules
        self._settings = settings
        self._regimes = regimes
        self._defensive_exit = defensive_exit
        self._last_regime: dict[str, Regime] = {}

    async def tick(self, now: datetime) -> None:
        """Manage every open position once. One symbol's failure never stops the others."""
        async with self._trader.lock:  # never while an entry is still being protected
            await self._tick(now)

    async def _tick(self, now: datetime) -> None:
        positions = dict(self._trader.ledger.positions)
        if not positions:
            return
        prices = await self._exchange.fetch_mark_prices(list(positions))
        held = {p.symbol: p for p in await self._exchange.fetch_positions()}
        protective: dict[str, list[Order]] = defaultdict(list)
        for order in await self._exchange.fetch_open_conditional_orders():
            protective[order.symbol].append(order)
        regimes = self._regimes()
        for symbol, position in positions.items():
            with bound_context(symbol=symbol):
                try:
                    await self._manage(
                        position,
                        prices.get(symbol),
                        held.get(symbol),
                        protective[symbol],
                        now,
                        self._turned_choppy(symbol, regimes.get(symbol)),
                    )
                except Exception:
                    log.exception("monitor_position_failed")

    def _turned_choppy(self, symbol: str, regime: Regime | None) -> bool:
        previous = self._last_regime.get(symbol)
        if regime is not None:
            self._last_regime[symbol] = regime
        return previous is Regime.TRENDING and regime is Regime.CHOPPY

    async def _manage(
        self,
        position: Position,
        price: Decimal | None,
        held: ExchangePosition | None,
        protective: Sequence[Order],
        now: datetime,
        turned_choppy: bool,
    ) -> None:
        if held is None or held.quantity < position.quantity:
            await self._book_exchange_exit(position, held, price, now)
            return
        if price is None:
            log.warning("mark_price_missing")
            return
        trail = stops.base_trail_mode(
            position.exit_mode, self._settings, defensive_exit=self._defensive_exit()
        )
        decision = stops.manage_position(
            position,
            price,
            now,
            atr_pct=position.atr_pct,
            trail_mode=trail,
            regime_turned_choppy=turned_choppy,
            settings=self._settings,
        )
        await self._record_events(decision, now)
        result = await self._act(decision, now)
        if isinstance(result, Position):
            await self._protect(result, protective, now)

    async def _act(self, decision: stops.PositionDecision, now: datetime) -> Position | ClosedTrade:
        """Carry out the decision's intents; persist the position only when it changed."""
        before = self._trader.ledger.positions.get(decision.position.symbol)
        position = decision.position
        for intent in decision.intents:
            if isinstance(intent, stops.ExitAll):
                return await self._trader.close_position(position, intent.reason, now)
            if isinstance(intent, stops.PartialClose):
                step = self._rules[position.symbol].round_quantity_down(intent.quantity)
                if step > 0:
                    closed = await self._trader.close_position(position, intent.reason, now, step)
                    if isinstance(closed, ClosedTrade):
                        return closed
                    position = replace(closed, partial_taken=True)
        if before is None or _material_change(before, position) or decision.intents:
            await self._trader.ledger.save_position(position)
        return position

    async def _protect(
        self, position: Position, protective: Sequence[Order], now: datetime
    ) -> None:
        """Keep the exchange-side stop in step; a stop that cannot be placed closes the position."""
        tick = self._rules[position.symbol].tick_size
        plan = plan_protection(position, protective, now, self._settings, tick_size=tick)
        for action in plan:
            if isinstance(action, CancelOrder):
                await self._trader.cancel_conditional(action.symbol, action.client_order_id, now)
                continue
            if isinstance(action, CloseAtMarket):
                await self._trader.close_position(position, action.reason, now)
                return
            try:
                await self._trader.submit(action.request(), now)
            except (OrderRejected, OrderStateUnknown) as error:
                failed = on_placement_failed(position, error)
                log.error("protective_stop_failed", detail=failed.detail)
                await self._trader.close_position(position, failed.reason, now)
                return
            position = on_stop_placed(position, action, now)
            await self._trader.ledger.save_position(position)
            log.info(
                "protective_stop_placed",
                why=action.why,
                trigger=str(action.trigger),
                client_order_id=action.client_order_id,
            )

    async def _book_exchange_exit(
        self,
        position: Position,
        held: ExchangePosition | None,
        price: Decimal | None,
        now: datetime,
    ) -> None:
        """The exchange closed (part of) the position: a protective order fired, or a person
        or a liquidation did it. Book it from the order that filled: the position's own stop and
        target first, then any other conditional order of ours still live for the symbol."""
        own = [position.stop_order_id, position.take_profit_order_id]
        others = [
            o.client_order_id
            for o in await self._repository.orders(position.symbol)
            if o.kind.is_conditional and not o.status.is_final and o.client_order_id not in own
        ]
        for order_id in (*own, *others):
            if order_id is None:
                continue
            order = await self._exchange.fetch_order(position.symbol, order_id)
            if order is not None and order.status is OrderStatus.FILLED:
                await self._repository.save_order(order)
                fills = await self._exchange.fetch_fills(position.symbol, order_id)
                await self._repository.record_fills(fills)
                await self._trader.settle_exit(
                    position, order, self._reason_for(position, order), now
                )
                return
        log.error("position_closed_externally", held=str(held.quantity if held else 0))
        await self._trader.settle_external_exit(position, held, price, now)

    async def _record_events(self, decision: stops.PositionDecision, now: datetime) -> None:
        events = decision.events(now)
        if events:
            await self._repository.record_position_events(events)
        for event in events:
            log.info(
                "position_event",
                reason=event.reason,
                detail=event.detail,
                price=str(event.price),
                new_stop_price=str(event.new_stop_price),
            )

    def _reason_for(self, position: Position, order: Order) -> ExitReason:
        if order.kind is OrderKind.TAKE_PROFIT_MARKET:
            return ExitReason.TP_HIT
        return stops.stop_exit_reason(position, stops.break_even_level(position, self._settings))


def _material_change(before: Position, after: Position) -> bool:
    """Anything but the price extremes, which are tracking data a restart may lose safely."""
    return (
        replace(after, highest_price=before.highest_price, lowest_price=before.lowest_price)
        != before
    )
