"""Carrying out a plan's order actions (keeper/protect.py): stops and take-profits placed, exits
sent, our orders cancelled, and what follows when the exchange refuses one — a stop refused
closes the position at market, an exit refused while no stop of ours covers it places one, a
take-profit refused is tried again later; and an exit sent in slices of the market-order
maximum (`send_exit`). A part of `Carrier` (keeper/carry.py), which sends one order and books
its answer (`send`); apart from it because these are the decisions about each action and its
refusal, carry.py the persisting of a plan and the sending of one order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quantum_trader.domain import (
    ExitReason,
    LotSize,
    Order,
    OrderSide,
    OrderStatus,
    ReasonCode,
)
from quantum_trader.errors import MarketDataError, OrderRejected, OrderStateUnknown, RetryLater
from quantum_trader.keeper.alerts import AlertListener, ProtectionAlert, tell
from quantum_trader.keeper.book import Book
from quantum_trader.keeper.carry_close_all import Cancelled, CloseAllStops
from quantum_trader.keeper.ids import Purpose
from quantum_trader.keeper.plan import Context
from quantum_trader.keeper.protect import (
    CancelOrder,
    OrderAction,
    PlaceStop,
    PlaceTarget,
    SendExit,
    StopWhy,
    fits_quantity_stop,
)
from quantum_trader.log import bound_context, get_logger
from quantum_trader.ports import Exchange, Repository, Writes
from quantum_trader.record import replace

log = get_logger("keeper")

RETRY_CLOSE_NOT_TAKEN = timedelta(seconds=60)


class ActionCarrying(CloseAllStops):
    """The order actions of `Carrier`, which sets these attributes and gives `send` (declared
    in carry_close_all.py)."""

    _exchange: Exchange
    _repository: Repository
    book: Book
    alert_listeners: list[AlertListener]
    # By symbol, when a close of the position held (its entry order id) was taken in neither
    # form (`_send_close`): tried again every RETRY_CLOSE_NOT_TAKEN (`_exit`).
    _closes_not_taken: dict[str, tuple[datetime, str]]

    async def act(self, actions: Sequence[OrderAction], now: datetime, context: Context) -> None:
        """Carry out the actions in order. When a symbol's new stop fails, nothing after it
        for that symbol happens (its old stop is not cancelled)."""
        failed: set[str] = set()
        for action in actions:
            if action.symbol in failed:
                continue
            with bound_context(symbol=action.symbol):
                try:
                    if not await self._one(action, now, context):
                        failed.add(action.symbol)
                except (MarketDataError, RetryLater) as error:  # unreadable: tried next tick
                    kind = type(action).__name__
                    log.warning("order_action_failed", action=kind, error=str(error))
                    failed.add(action.symbol)

    async def _one(self, action: OrderAction, now: datetime, context: Context) -> bool:
        if isinstance(action, CancelOrder):
            if not self.spared_cancel(action.client_order_id):
                await self._cancel(action, now)
            return True
        if isinstance(action, SendExit):
            await self._exit(action, now, context)
            return True
        if isinstance(action, PlaceTarget):
            await self._place_target(action, now, context)
            return True
        return await self._place_stop(action, now, context)

    async def _place_target(self, action: PlaceTarget, now: datetime, context: Context) -> None:
        """Place a take-profit. Refused, or kept from going out by a rate limit: the stop
        protects and the stop maths exits at the target; tried again
        `monitor.take_profit_retry_s` later (keeper/target.py), said once until one is placed."""
        refused = self.book.targets_refused
        try:
            answer = await self.send(
                Purpose.TARGET, action.symbol, action.side, action.quantity, now, context,
                trigger=action.trigger,
            )  # fmt: skip
        except (OrderRejected, RetryLater) as error:
            retry = f"tried again every {context.monitor.take_profit_retry_s:g} s"
            emit = log.info if action.symbol in refused else log.warning
            emit("take_profit_order_failed", error=str(error), detail=retry)
            since = {**self.book.targets_refused, action.symbol: now}
            self.book = replace(self.book, targets_refused=since)
            return
        if answer is not None and action.symbol in self.book.targets_refused:
            log.info("take_profit_placed_after_refusal", trigger=str(action.trigger))
            left = {s: t for s, t in self.book.targets_refused.items() if s != action.symbol}
            self.book = replace(self.book, targets_refused=left)

    async def _exit(self, action: SendExit, now: datetime, context: Context) -> None:
        """Send an exit; when the exchange refuses it, the stop maths retries it every tick,
        and a position no stop of ours covers gets one now (`action.if_refused`). A close the
        exchange took in neither form (`_send_close`) while a stop of ours covers the position
        is said once and tried again every `RETRY_CLOSE_NOT_TAKEN` (was: two refusals and an
        error line every tick for as long as the exit was due)."""
        stop = next((a for a in action.if_refused if isinstance(a, PlaceStop)), None)
        last = self._not_taken_since(action.symbol)
        if stop is None and last is not None and now - last < RETRY_CLOSE_NOT_TAKEN:
            log.info("exit_waits", reason=action.reason, detail=f"refused at {last.isoformat()}")
            return
        try:
            await self.send_exit(
                action.symbol, action.side, action.quantity, now, context, action.reason
            )
            self._closes_not_taken.pop(action.symbol, None)
            return
        except OrderRejected as error:
            refusal = str(error)
        if stop is None:  # a stop of ours covers the position: it protects meanwhile
            if self._not_taken_since(action.symbol) != now:
                log.error("exit_rejected", reason=action.reason, error=refusal)
            elif last is None:
                detail = (
                    "neither what is held nor the smallest quantity that fits above it was "
                    "taken: the close-all stop protects; tried again every "
                    f"{RETRY_CLOSE_NOT_TAKEN.total_seconds():g} s. Close it by hand to leave now"
                )
                log.error("exit_rejected", reason=action.reason, error=refusal, detail=detail)
            else:
                log.info("exit_still_rejected", reason=action.reason, error=refusal)
            return
        detail = (
            f"no stop of ours covers {action.quantity}: placing a reduce-only stop at "
            f"{stop.trigger} now; the exit is retried every tick. Check why the exchange "
            "refuses it (symbol status, price filters, reduce-only) and close by hand if "
            "it persists"
        )
        log.error("exit_rejected_unprotected", reason=action.reason, error=refusal, detail=detail)
        self._alert(now, action.symbol, "exit_rejected_unprotected", f"{refusal}; {detail}")
        await self.act(action.if_refused, now, context)

    async def _place_stop(self, action: PlaceStop, now: datetime, context: Context) -> bool:
        """Place a stop: a close-all one where no stop of its quantity fits the symbol's lot
        filters (keeper/protect.py `fits_quantity_stop`), after cancelling any other close-all
        stop of ours on that side, which Binance would not keep beside it (-4130)."""
        close_all = not fits_quantity_stop(action.quantity, context.rules.get(action.symbol))
        cancelled: list[Order] = []
        if close_all:
            if self.waits_beside_another(action, now):
                return False
            moved = await self.cancel_close_all(action, now)
            if moved is None:
                return False  # one not confirmed cancelled: Binance would refuse ours beside it
            cancelled = moved
        try:
            answer = await self.send(
                Purpose.STOP, action.symbol, action.side, action.quantity, now, context,
                trigger=action.trigger, close_position=close_all,
            )  # fmt: skip
        except OrderRejected as error:
            await self._stop_refused(action, error, cancelled, now, context)
            return False
        except (RetryLater, MarketDataError) as error:
            if cancelled:  # not sent: the cancelled one goes back on
                await self.put_back(action, cancelled[0], error, now, context)
            raise
        if answer is None:
            return False  # unknown: the next tick finds it working, or places another
        self.placed(action.symbol)
        log.info(
            "protective_stop_placed", why=action.why, trigger=str(action.trigger),
            close_all=close_all,
        )  # fmt: skip
        return True

    async def _stop_refused(
        self,
        action: PlaceStop,
        error: OrderRejected,
        cancelled: list[Order],
        now: datetime,
        context: Context,
    ) -> None:
        """A stop refused: closed at market (no position stays without a stop) but where an
        exit was refused just now, another close-all order holds the side (it protects), the
        position is gone (a close-all needs one, -4509: the next tick books it), or a close-all
        stop of ours cancelled for it can go back on."""
        if error.reason is ReasonCode.CLOSE_ALL_EXISTS:
            self.held_by_another(action, error, now)
            return
        if error.reason is ReasonCode.NO_POSITION_FOR_CLOSE_ALL:  # closed before it went on
            log.info("protective_stop_not_needed", why=action.why, detail=str(error))
            return
        log.error("protective_stop_failed", why=action.why, detail=str(error))
        if cancelled:
            await self.put_back(action, cancelled[0], error, now, context)
            return
        closing = action.why is not StopWhy.EXIT_REFUSED  # else an exit was refused just now
        then = "closing the position at market" if closing else "retried next tick"
        detail = f"stop ({action.why}) at {action.trigger} refused: {error}; {then}"
        self._alert(now, action.symbol, "protective_stop_failed", detail)
        if closing:
            await self._exit_unprotected(action, now, context)

    def _alert(self, now: datetime, symbol: str, event: str, detail: str) -> None:
        tell(self.alert_listeners, ProtectionAlert(now, symbol, event, detail))

    async def _exit_unprotected(self, action: PlaceStop, now: datetime, context: Context) -> None:
        """No position stays open without a stop: close it at market (unless an exit of ours
        is in flight); the next tick places a stop or exits again if that is refused."""
        position = self.book.positions.get(action.symbol)
        exiting = any(i.purpose is Purpose.EXIT for i in self.book.intents_for(action.symbol))
        if position is None or exiting:
            return
        try:
            await self.send_exit(
                action.symbol, action.side, position.quantity, now, context,
                ExitReason.PROTECTION_FAILED,
            )  # fmt: skip
        except OrderRejected as error:
            log.error("exit_rejected", reason=ExitReason.PROTECTION_FAILED, error=str(error))

    async def _cancel(self, action: CancelOrder, now: datetime) -> Cancelled:
        """Cancel one of ours; one that is already gone is looked up by the next tick."""
        try:
            await self._exchange.cancel_conditional_order(action.symbol, action.client_order_id)
        except OrderRejected as error:  # already filled, expired or cancelled
            log.info("cancel_not_needed", client_order_id=action.client_order_id, detail=str(error))
            return Cancelled.ENDED
        except OrderStateUnknown as error:  # not confirmed: the next tick looks it up
            log.warning(
                "cancel_unconfirmed", client_order_id=action.client_order_id, error=str(error)
            )
            return Cancelled.UNCONFIRMED
        order = self.book.working.get(action.client_order_id) or (
            await self._repository.get_order(action.client_order_id)
        )
        if order is not None:
            await self._repository.save_order(
                replace(order, status=OrderStatus.CANCELED, updated_at=now)
            )
        working = {c: o for c, o in self.book.working.items() if c != action.client_order_id}
        self.book = replace(self.book, working=working)
        position = self.book.positions.get(action.symbol)
        if position is not None and position.take_profit_order_id == action.client_order_id:
            # its own take-profit, larger than the position (protect.py): placed again for
            # what is held by a later tick (keeper/target.py)
            unnamed = replace(position, take_profit_order_id=None)
            await self._repository.write(Writes(positions=[unnamed]))
            self.book = self.book.with_position(unnamed)
        return Cancelled.YES

    async def send_exit(
        self,
        symbol: str,
        side: OrderSide,
        quantity: Decimal,
        now: datetime,
        context: Context,
        reason: ExitReason,
    ) -> Order | None:
        """Send a reduce-only market exit of `quantity` in slices of at most the market-order
        maximum (MARKET_LOT_SIZE maxQty: Binance refuses a larger market order, closes
        included, with -4005), each booked as it is answered; one order when no maximum binds.

        The last slice of a whole position's close is `_send_close`: one below the minimum or
        off the step (a reduction by hand, a minimum raised) is closed by a quantity that fits.

        Stops after a slice that did not fill in full (unknown, still filling, partly
        executed): the ticks settle it, and the stop maths, or the stop, covers the rest.
        Raises OrderRejected when a slice is refused (the slices before it stay booked)."""
        rules = context.rules.get(symbol)
        held = self.book.positions.get(symbol)
        whole = held is not None and quantity >= held.quantity
        remaining = quantity
        while True:
            part = rules.market_lot_size.cap(remaining) if rules is not None else remaining
            part = part if part > 0 else remaining  # a maximum below one step: Binance decides
            if whole and part == remaining and rules is not None:  # the last slice
                lot = rules.market_order_lot.lot
                return await self._send_close(symbol, side, part, lot, now, context, reason)
            answer = await self.send(Purpose.EXIT, symbol, side, part, now, context, reason=reason)
            remaining -= part
            if (
                remaining <= 0
                or answer is None
                or answer.status is not OrderStatus.FILLED
                or answer.filled_quantity < part
                or symbol not in self.book.positions
            ):
                return answer
            log.info("exit_sliced", sent=str(part), left=str(remaining), reason=reason)

    async def _send_close(
        self,
        symbol: str,
        side: OrderSide,
        quantity: Decimal,
        lot: LotSize,
        now: datetime,
        context: Context,
        reason: ExitReason,
    ) -> Order | None:
        """Close what is held, `quantity`, where no market order of it may fit the lot: its
        own quantity first, and when the exchange refuses that below the minimum, the smallest
        that fits above it, reduce-only (off the step, that at once: the adapter would round it
        down and leave a rest). A public bot closes positions below the minimum by their own
        quantity, and Binance's FAQ exempts a reduce-only market order of the position's size
        or more from its refusal of larger ones (KEEPER.md), so both are tried; the paper
        exchange and the stand-in take the second (was: the first alone, refused on every tick,
        so such a position left only at its stop or by hand)."""
        fitted = lot.round_up_to_fit(quantity)
        if fitted != quantity and lot.is_on_step(quantity):
            try:
                return await self.send(
                    Purpose.EXIT, symbol, side, quantity, now, context, reason=reason
                )
            except OrderRejected as error:
                if error.reason is not ReasonCode.BELOW_MIN_QUANTITY:
                    raise
                log.info("exit_refitted", quantity=str(quantity), sent=str(fitted))
        try:
            return await self.send(Purpose.EXIT, symbol, side, fitted, now, context, reason=reason)
        except OrderRejected:
            position = self.book.positions.get(symbol)
            if fitted != quantity and position is not None:  # larger than what is held
                self._closes_not_taken[symbol] = (now, position.entry_order_id)
            raise

    def _not_taken_since(self, symbol: str) -> datetime | None:
        """When a close of the position held on `symbol` was last taken in neither form
        (`_send_close`), None if it was not."""
        refused = self._closes_not_taken.get(symbol)
        position = self.book.positions.get(symbol)
        if refused is None or position is None or refused[1] != position.entry_order_id:
            return None
        return refused[0]
